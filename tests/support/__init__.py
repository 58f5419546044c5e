"""Test helpers: PKI, tokens, a JWKS server and the service as a real process."""
