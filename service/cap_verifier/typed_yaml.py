"""YAML files read into typed msgspec structs, with one-line errors naming the key.

The one way this repository reads a configuration or data file: unknown keys are refused by the
struct (``forbid_unknown_fields``), bounds and patterns sit on its fields, cross-field rules in
its ``__post_init__``, and every failure is a :class:`ConfigError` of one line,
``<file>: <key>: <what is wrong>``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

T = TypeVar("T")

_RELATIVE_KEY = re.compile(r"^([A-Za-z0-9_.\[\]]+): (.*)$", re.DOTALL)
_FIELD_PROBLEMS = {
    "Object missing required field": "required key is missing",
    "Object contains unknown field": "unknown key",
}


class ConfigError(Exception):
    """An invalid file or value; ``str(err)`` is the one-line message for the operator."""


def yaml_loader() -> YAML:
    """YAML 1.2, safe: ``yes``/``no``/``on`` stay strings."""
    return YAML(typ="safe", pure=True)


def describe(err: msgspec.ValidationError) -> str:
    """Turn msgspec's ``detail - at `$.a.b``` into ``a.b: detail``."""
    detail, sep, where = str(err).rpartition(" - at `$")
    if not sep:
        detail, where = str(err), ""
    key = where.rstrip("`").lstrip(".")
    for prefix, problem in _FIELD_PROBLEMS.items():
        if detail.startswith(prefix):
            name = detail[len(prefix) :].strip(" `")
            return f"{key + '.' if key else ''}{name}: {problem}"
    relative = _RELATIVE_KEY.match(detail)
    if relative and key:  # a __post_init__ message naming a key of its own struct
        return f"{key}.{relative[1]}: {relative[2]}"
    first_word = detail.split(" ", 1)[0]
    if "." in first_word and not first_word.endswith(":"):
        return detail  # a __post_init__ message naming its own full key
    return f"{key}: {detail}" if key else detail


def read_yaml(path: Path, label: str | None = None) -> Any:
    """The YAML document of ``path``; unreadable or invalid YAML is one line naming ``label``
    (default: the path)."""
    label = label or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read: {exc.strerror}") from None
    try:
        return yaml_loader().load(text)
    except YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"{label}: not valid YAML{where}") from None


def _decode_extra(type_: type, value: Any) -> Any:
    """The types msgspec does not know itself: a ``Path`` is written as a non-empty string."""
    if type_ is Path:
        if isinstance(value, str) and value:
            return Path(value)
        raise ValueError("Expected a non-empty path")
    raise NotImplementedError(f"typed_yaml cannot read a {type_!r}")


def convert(data: Any, type_: type[T], label: str) -> T:
    """``data`` as ``type_``; a mismatch is ``<label>: <key>: <problem>``."""
    try:
        return msgspec.convert(data, type_, dec_hook=_decode_extra)
    except msgspec.ValidationError as err:
        raise ConfigError(f"{label}: {describe(err)}") from None


def load_typed(path: Path, type_: type[T], label: str | None = None) -> T:
    """Read ``path`` into ``type_``; errors name ``label`` (default: the path)."""
    return convert(read_yaml(path, label), type_, label or str(path))
