"""cap_dev_idp: a development OAuth2 authorization server for the CAP Verifier.

FOR THE LOCAL AND CI ENVIRONMENTS ONLY. This package is never deployed to staging or
production: those environments use the real identity provider. It issues RS256 JWT access
tokens through the client-credentials grant, in the shape the verifier accepts
(``docs/contract.md`` section 4).
"""

__all__: list[str] = []
