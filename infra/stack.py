"""The stack config from the Pulumi runtime: every ``cap-verifier-ops:*`` key of this stack.

The Pulumi CLI hands the program each config value as text: the sections (maps) and lists as
JSON, scalars as plain strings. Sections are decoded from JSON (inside them strings stay strings,
so ``'1.29'`` is never the float 1.29); msgspec then converts what is left by the field's type
(``strict=False``: ``"3"`` for an integer field is 3). Validation is the one of
:func:`infra.config.from_values`, so a bad key fails with the same one-line
:class:`~infra.config.ConfigError` as ``config.load``, before any resource exists.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from infra.config import KEY_PREFIX, EnvConfig, from_values


def decode(raw: Any) -> Any:
    """One CLI config value: JSON for maps and lists, anything else as it came."""
    if isinstance(raw, str) and raw[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except ValueError:
            return raw  # left for the validator's one-line error
    return raw


def config_values() -> dict[str, Any]:
    """Every ``cap-verifier-ops:*`` value of the running stack, decoded, by bare key."""
    names = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return {
        name.removeprefix(KEY_PREFIX): decode(runtime_config.get_config(name))
        for name in sorted(names)
        if name.startswith(KEY_PREFIX)
    }


def stack_config() -> EnvConfig:
    """The typed config of the current stack; raises ConfigError naming the file and key."""
    stack = pulumi.get_stack()
    return from_values(stack, config_values(), f"Pulumi.{stack}.yaml", strict=False)
