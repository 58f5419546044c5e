"""The contract's test vectors (docs/contract.md), read once from docs/contract-vectors.yaml.

The PolicyV2 vector's YAML text is not repeated there: the file names
``tools/cap_ops/localenv/lksg_v1.policy.yml`` (the policy ``make up`` seeds), read here as is.
A missing entry, or one of the wrong type, raises :class:`VectorError` (a KeyError) when this
module is imported, so no test can run against a half-read vectors file.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any, Final, TypeVar

from ruamel.yaml import YAML

ROOT: Final = Path(__file__).resolve().parents[2]
VECTORS_FILE: Final = ROOT / "docs" / "contract-vectors.yaml"

_T = TypeVar("_T")


class VectorError(KeyError):
    """The vectors file lacks an entry, or holds one of the wrong type."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


def _load(path: Path) -> dict[str, Any]:
    loaded = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise VectorError(f"{path}: expected a mapping of vectors, got {type(loaded).__name__}")
    return loaded


_VECTORS: Final = _load(VECTORS_FILE)


def _entry(dotted: str, kind: type[_T]) -> _T:
    """The value at ``dotted`` (keys joined by dots); VectorError if absent or not ``kind``."""
    node: Any = _VECTORS
    walked: list[str] = []
    for key in dotted.split("."):
        walked.append(key)
        if not isinstance(node, dict) or key not in node:
            raise VectorError(f"{VECTORS_FILE}: missing key {'.'.join(walked)!r}")
        node = node[key]
    if not isinstance(node, kind):
        raise VectorError(
            f"{VECTORS_FILE}: {dotted} must be a {kind.__name__}, got {type(node).__name__}"
        )
    return node


def _str(dotted: str) -> str:
    return _entry(dotted, str)


def _object(dotted: str) -> dict[str, Any]:
    return copy.deepcopy(_entry(dotted, dict))


def _str_list(dotted: str) -> list[str]:
    items = _entry(dotted, list)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise VectorError(f"{VECTORS_FILE}: {dotted}[{i}] must be a str")
    return list(items)


# --- contract 2.1: the v1 LkSG policy --------------------------------------------------------

V1_POLICY: Final[dict[str, Any]] = _object("policy_v1.policy")
V1_HASH: Final[str] = _str("policy_v1.policy_hash")

# --- contract 2.2: the PolicyV2 lksg.v1, compiled strict --------------------------------------

LKSG_YAML_FILE: Final[Path] = ROOT / _str("policy_v2.yaml_file")
LKSG_YAML: Final[str] = LKSG_YAML_FILE.read_text(encoding="utf-8")
"""The YAML text, as ``make up`` seeds it."""
LKSG_YAML_B64: Final[str] = base64.b64encode(LKSG_YAML.encode("utf-8")).decode("ascii")
"""Standard base64 of the YAML text, the ``policy_yaml`` of a compile request."""
LKSG_JSON: Final[dict[str, Any]] = _object("policy_v2.json")
"""The same policy as the JSON object sent as ``policy``."""
LKSG_POLICY_HASH: Final[str] = _str("policy_v2.policy_hash")
LKSG_IR_HASH: Final[str] = _str("policy_v2.ir_hash")
LKSG_ETAG: Final[str] = _str("policy_v2.etag")
LKSG_IR_TEXT: Final[str] = _str("policy_v2.ir_text")
"""The compact IR v1, byte for byte."""

# --- contract 3.3: verification ---------------------------------------------------------------

VERIFY_CONTEXT: Final[dict[str, Any]] = _object("verification.context")
VERIFY_SUPPLIERS: Final[list[str]] = _str_list("verification.context.supplier_hashes")
VERIFY_UBOS: Final[list[str]] = _str_list("verification.context.ubo_hashes")
COMPANY_ROOT: Final[str] = _str("verification.company_commitment_root")
PROOF_HASH: Final[str] = _str("verification.proof_hash")
