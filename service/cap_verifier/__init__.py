"""CAP Verifier API: supply-chain compliance (LkSG) policy compilation and verification."""

__version__ = "0.11.0"
CONTRACT_VERSION = "0.11.0"

__all__ = ["CONTRACT_VERSION", "__version__"]
