"""``token | jwt_header_kid``: the key id in an access token's (unverified) header.

Used to follow a signing-key rotation; the signature is checked by the verifier, not here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError
from joserfc.errors import JoseError
from joserfc.jws import extract_compact


def jwt_header_kid(token: str) -> str:
    try:
        header = extract_compact(token.encode("ascii")).headers()
    except (JoseError, UnicodeEncodeError, ValueError):
        raise AnsibleFilterError("jwt_header_kid: not a compact JWS") from None
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise AnsibleFilterError("jwt_header_kid: the token names no key (kid)")
    return kid


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"jwt_header_kid": jwt_header_kid}
