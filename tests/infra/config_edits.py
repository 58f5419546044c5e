"""Changed copies of an :class:`~infra.config.EnvConfig`, by dotted key (``edge.require_mtls``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)


def _set(struct: S, path: str, value: Any, *, check: bool) -> S:
    head, _, rest = path.partition(".")
    new_value = _set(getattr(struct, head), rest, value, check=check) if rest else value
    if check:
        return msgspec.structs.replace(struct, **{head: new_value})
    changed = copy.copy(struct)
    msgspec.structs.force_setattr(changed, head, new_value)
    return changed


def changed(cfg: S, changes: Mapping[str, Any]) -> S:
    """A valid variant of ``cfg``: every level is validated again (a bad change raises)."""
    for path, value in changes.items():
        cfg = _set(cfg, path, value, check=True)
    return cfg


def unchecked(cfg: S, changes: Mapping[str, Any]) -> S:
    """A deliberately bad variant of ``cfg``: no validation, so the model can be built from a
    config the loader would refuse, and a policy shown to catch it."""
    for path, value in changes.items():
        cfg = _set(cfg, path, value, check=False)
    return cfg
