"""Digests of canonical text: SHA3-256 (FIPS 202) and BLAKE3, as lower-case hex."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import blake3

from cap_verifier.domain.identifiers import HEX_PREFIX, SHA3_PREFIX


def _as_bytes(data: str | bytes) -> bytes:
    """UTF-8 bytes of `data` (bytes pass through)."""
    return data.encode("utf-8") if isinstance(data, str) else data


def sha3_hex(data: str | bytes) -> str:
    """Lower-case hex SHA3-256 (FIPS 202, not Keccak) of `data`."""
    return hashlib.sha3_256(_as_bytes(data)).hexdigest()


def sha3_ref(data: str | bytes) -> str:
    """`sha3-256:` followed by the SHA3-256 hex digest of `data`."""
    return SHA3_PREFIX + sha3_hex(data)


def sha3_hex32(data: str | bytes) -> str:
    """`0x` followed by the SHA3-256 hex digest of `data` (a hex32 value)."""
    return HEX_PREFIX + sha3_hex(data)


def blake3_hex(data: str | bytes) -> str:
    """Lower-case hex BLAKE3 (32 bytes) of `data`."""
    digest: str = blake3.blake3(_as_bytes(data)).hexdigest()
    return digest


def blake3_root(parts: Iterable[str]) -> str:
    """`0x` + BLAKE3 of the concatenation of `parts`."""
    return HEX_PREFIX + blake3_hex("".join(parts))
