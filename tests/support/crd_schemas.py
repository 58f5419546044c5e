"""Custom resources validated with jsonschema against the pinned CRDs of ``infra/crds.lock``.

The CRD files are read from the verified cache that ``make crds`` fills (a missing file fails
with that command). Each is read once per session (they are large); the served version's
``openAPIV3Schema`` is made strict (unknown fields fail, as ``kubernetes_validate`` strict does
for core kinds) unless the schema preserves unknown fields.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jsonschema

from cap_ops import crds

_GO_FLAGS = re.compile(r"^\^\(\?([a-z]+)\)")
_IMPLICIT_ROOT = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object"},
}


class NoSchemaError(LookupError):
    """Neither Kubernetes nor any pinned CRD defines this apiVersion/kind."""


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


@functools.cache
def _lock() -> crds.CrdLock:
    return crds.load_lock()


@functools.cache
def _crd(group: str, kind: str) -> dict[str, Any] | None:
    pin = _lock().pin(group, kind)
    return None if pin is None else crds.read_parsed(pin)


@functools.cache
def validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """A jsonschema validator for the served version ``api_version`` of ``kind``."""
    group, _, version = api_version.rpartition("/")
    crd = _crd(group, kind) if group else None
    if crd is None:
        raise NoSchemaError(f"no pinned CRD for {kind} in group {group or '(core)'}")
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    if version not in served:
        raise NoSchemaError(f"{kind}: version {version} not served (served: {sorted(served)})")
    schema = _strict(served[version]["schema"]["openAPIV3Schema"])
    # The API server accepts these on every object whether the schema lists them or not
    # (policy.sigstore.dev's CRDs list only spec and status); it checks metadata itself.
    schema["properties"] = {**_IMPLICIT_ROOT, **schema.get("properties", {})}
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
