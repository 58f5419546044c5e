"""Custom resources validated with jsonschema against the CRD schemas in /work/shared/crds.

Each CRD file is read once per session (they are large); the served version's
``openAPIV3Schema`` is made strict (unknown fields fail, as ``kubernetes_validate`` strict does
for core kinds) unless the schema preserves unknown fields.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
from ruamel.yaml import YAML

CRD_DIR = Path(os.environ.get("CAP_CRD_DIR", "/work/shared/crds"))


_GO_FLAGS = re.compile(r"^\^\(\?([a-z]+)\)")


class NoSchemaError(LookupError):
    """Neither Kubernetes nor any CRD in CRD_DIR defines this apiVersion/kind."""


def _plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        return lower[:-1] + "ies"
    if lower.endswith(("s", "x")):
        return lower + "es"
    return lower + "s"


def _strict(schema: Any) -> Any:
    """Copy of ``schema`` with ``additionalProperties: false`` on closed objects."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        # Go (RE2) allows `^(?i)...`; Python wants global flags first.
        out["pattern"] = _GO_FLAGS.sub(r"(?\1)^", pattern)
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def _crd(group: str, kind: str) -> dict[str, Any] | None:
    path = CRD_DIR / group / f"{_plural(kind)}.yaml"
    if not path.is_file():
        return None
    # ruamel's YAML 1.2 safe loader reads a bare `=` as the string "=".
    crd: dict[str, Any] = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    return crd if crd["spec"]["names"]["kind"] == kind else None


@functools.cache
def validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """A jsonschema validator for the served version ``api_version`` of ``kind``."""
    group, _, version = api_version.rpartition("/")
    crd = _crd(group, kind) if group else None
    if crd is None:
        raise NoSchemaError(f"no CRD for {kind} in group {group or '(core)'} under {CRD_DIR}")
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    if version not in served:
        raise NoSchemaError(f"{kind}: version {version} not served (served: {sorted(served)})")
    schema = _strict(served[version]["schema"]["openAPIV3Schema"])
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def errors(obj: dict[str, Any]) -> list[str]:
    """Schema violations of a custom resource; raises NoSchemaError for an unknown kind."""
    found = validator(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in sorted(found.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    ]
