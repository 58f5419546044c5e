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
import yaml

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
        if "(?i)" in out["pattern"] and not out["pattern"].startswith("(?i)"):
            # Go scopes a mid-pattern `(?i)` to its group; Python only takes global flags
            # first. Case-insensitive throughout is the closest (slightly looser) equivalent.
            out["pattern"] = "(?i)" + out["pattern"].replace("(?i)", "")
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


class _Loader(yaml.CSafeLoader):
    """libyaml's safe loader, reading a bare ``=`` (YAML 1.1's "value" tag) as the string ``=``.

    libyaml parses the 10 MB of CRDs ten times faster than a pure-Python loader; every pinned
    CRD loads to the same data under both (checked when this loader was chosen).
    """


_Loader.add_constructor(
    "tag:yaml.org,2002:value",
    lambda loader, node: loader.construct_scalar(node),  # type: ignore[arg-type]
)


@functools.cache
def _crd(group: str, kind: str) -> dict[str, Any] | None:
    path = CRD_DIR / group / f"{_plural(kind)}.yaml"
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as stream:
        crd: dict[str, Any] = yaml.load(stream, Loader=_Loader)
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
    _compile_patterns(schema, kind)
    return cls(schema)


def _compile_patterns(schema: Any, where: str) -> None:
    """Every ``pattern`` must compile (a full metaschema check costs seconds per CRD)."""
    if isinstance(schema, list):
        for item in schema:
            _compile_patterns(item, where)
    elif isinstance(schema, dict):
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise NoSchemaError(
                    f"{where}: pattern {pattern!r} does not compile: {exc}"
                ) from None
        for value in schema.values():
            _compile_patterns(value, where)


def errors(obj: dict[str, Any]) -> list[str]:
    """Schema violations of a custom resource; raises NoSchemaError for an unknown kind."""
    found = validator(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in sorted(found.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    ]
