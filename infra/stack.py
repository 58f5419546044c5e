"""The stack config from the Pulumi runtime: every ``cap-verifier-ops:*`` key of this stack.

The Pulumi CLI hands the program each config value as a string: strings as they are, booleans,
numbers, lists and maps as JSON text. A YAML string that looks like a number (``'1.29'``) arrives
exactly like the number would, so decoding follows the type of the :class:`EnvConfig` field:
text fields keep the string, every other value is decoded from JSON when it parses. Validation
is :func:`infra.config.from_values`, so a bad key fails with the same one-line
:class:`~infra.config.ConfigError` as ``config.load`` names, before any resource exists.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from functools import cache
from typing import Any, Literal

import pulumi
from pulumi.runtime import config as runtime_config

from infra.config import PROJECT, DatabaseConfig, EnvConfig, from_values

PREFIX = f"{PROJECT}:"
# DatabaseConfig fields are read from keys with this prefix (``postgresql_instances``) or bare.
DATABASE_PREFIX = "postgresql_"


def _is_text(annotation: Any) -> bool:
    """``str``, ``str | None`` or a ``Literal`` of strings."""
    if annotation is str:
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return all(isinstance(a, str) for a in args)
    if origin in (typing.Union, types.UnionType):
        return all(a is type(None) or _is_text(a) for a in args)
    return False


@cache
def text_keys() -> frozenset[str]:
    """Config keys whose value is a string whatever it looks like."""
    keys: set[str] = set()
    for cls, prefixes in ((EnvConfig, ("",)), (DatabaseConfig, ("", DATABASE_PREFIX))):
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if _is_text(hints[field.name]):
                keys.update(f"{prefix}{field.name}" for prefix in prefixes)
    return frozenset(keys)


def decode(key: str, raw: Any) -> Any:
    """One CLI config value as the type its key wants (see the module docstring)."""
    if not isinstance(raw, str) or key in text_keys():
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def config_values() -> dict[str, Any]:
    """Every ``cap-verifier-ops:*`` value of the running stack, decoded, by bare key."""
    names = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return {
        name[len(PREFIX) :]: decode(name[len(PREFIX) :], runtime_config.get_config(name))
        for name in sorted(names)
        if name.startswith(PREFIX)
    }


def stack_config() -> EnvConfig:
    """The typed config of the current stack; raises ConfigError naming the file and key."""
    stack = pulumi.get_stack()
    return from_values(stack, config_values(), f"Pulumi.{stack}.yaml")
