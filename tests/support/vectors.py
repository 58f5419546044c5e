"""The contract's PolicyV2 test vector (spec §2.2), once: YAML as `make up` seeds it, and JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LKSG_YAML = (
    Path(__file__).resolve().parents[2] / "tools" / "cap_ops" / "localenv" / "lksg_v1.policy.yml"
).read_text()

LKSG_JSON: dict[str, Any] = {
    "id": "lksg.v1",
    "version": "1.0",
    "legal_basis": [{"directive": "LkSG"}],
    "description": "Minimal LkSG supplier check",
    "inputs": {
        "supplier_hashes": {"type": "array", "items": "hex"},
        "sanctions_root": {"type": "hex"},
    },
    "rules": [
        {
            "id": "no_sanctions",
            "op": "non_membership",
            "lhs": "supplier_hashes",
            "rhs": "sanctions_root",
        }
    ],
}
