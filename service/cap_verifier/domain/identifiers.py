"""The identifier formats of the contract, each defined once.

- hex32: `0x` + 64 hex digits (context hashes, roots, v1 policy hashes, proof and manifest hashes);
- sha3 refs: `sha3-256:` + 64 hex digits (PolicyV2 and IR hashes, policy source digests);
- PolicyV2 ids and rule ids;
- UUIDs (the ids of v1 policies).

Upper-case hex is accepted wherever a value comes in and stored or compared in lower case.
"""

from __future__ import annotations

import re
import uuid

from cap_verifier.domain.errors import BadRequest
from cap_verifier.domain.json_input import shape_error, where

HEX_PREFIX = "0x"
SHA3_PREFIX = "sha3-256:"

HEX32_LEN = len(HEX_PREFIX) + 64
SHA3_REF_LEN = len(SHA3_PREFIX) + 64
UUID_LEN = 36
POLICY_ID_MAX_LEN = 255
"""The longest PolicyV2 id (the registry's column width)."""

HEX32_RE = re.compile(r"0x[0-9a-fA-F]{64}")
SHA3_REF_RE = re.compile(r"sha3-256:[0-9a-fA-F]{64}")
POLICY_ID_RE = re.compile(rf"[a-z0-9._-]{{1,{POLICY_ID_MAX_LEN}}}")
RULE_ID_RE = re.compile(r"[a-z0-9_]+")


def is_hex32(value: object) -> bool:
    """True when `value` is `0x` + 64 hex digits (either case)."""
    return isinstance(value, str) and HEX32_RE.fullmatch(value) is not None


def _lower_hex(value: object, path: str, pattern: re.Pattern[str], prefix: str) -> str:
    """`prefix` + 64 hex digits in lower case; a non-string is 422, a malformed string 400."""
    if not isinstance(value, str):
        raise shape_error(path, f"a string ({prefix} followed by 64 hex digits)", value)
    if pattern.fullmatch(value) is None:
        raise BadRequest(f"{where(path)}: expected {prefix} followed by 64 hex digits")
    return value.lower()


def normalize_hex32(value: object, path: str) -> str:
    """A hex32 value in lower case; a non-string is 422, a malformed string 400."""
    return _lower_hex(value, path, HEX32_RE, HEX_PREFIX)


def normalize_sha3_ref(value: object, path: str) -> str:
    """A `sha3-256:` + 64 hex value in lower case; a non-string is 422, a malformed one 400."""
    return _lower_hex(value, path, SHA3_REF_RE, SHA3_PREFIX)


def canonical_uuid(text: str) -> str | None:
    """The canonical form (lower case, hyphenated) of a UUID written in any form, else None."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None
