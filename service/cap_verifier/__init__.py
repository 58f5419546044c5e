"""CAP Verifier API: supply-chain compliance (LkSG) policy compilation and verification."""

from importlib.metadata import version

__version__ = version("cap-verifier-ops")
"""The service version: the version of the installed distribution (``pyproject.toml``).

It is also the version of the contract the service implements (``docs/contract.md``,
``openapi/openapi.yaml``); a test keeps the three equal.
"""

__all__ = ["__version__"]
