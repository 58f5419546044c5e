"""The checklist lines of ``orr/items.yaml`` and the ids that tests claim to prove.

A test proves ORR lines by its name (``test_orr_1_2_09_…`` proves ``1.2-09``) or by the marker
``@pytest.mark.orr("1.2-09", …)``; every id it names must be a line of the checklist.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated

from msgspec import Meta, Struct

from cap_verifier.typed_yaml import ConfigError, convert, read_yaml

ITEMS = Path(__file__).resolve().parents[3] / "orr" / "items.yaml"
ID_PATTERN = r"^[1-9]\.[1-9]-[0-9]{2}$"
TEST_PREFIX = "test_orr_"
_ID_IN_NAME = re.compile(r"^test_orr_([1-9])_([1-9])_([0-9]{2})(?![0-9])")

OrrId = Annotated[str, Meta(pattern=ID_PATTERN)]


class Item(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One checklist line."""

    id: OrrId
    section: Annotated[str, Meta(pattern=r"^[1-9]\.[1-9] \S")]
    title: Annotated[str, Meta(min_length=3)]

    def __post_init__(self) -> None:
        if not self.section.startswith(self.id.split("-")[0] + " "):
            raise ValueError(f"section: {self.section!r} is not the section of {self.id}")


def load_items(path: Path = ITEMS) -> dict[str, Item]:
    """Every checklist line by id, in checklist order; a duplicate id is a one-line error."""
    items = convert(read_yaml(path), tuple[Item, ...], str(path))
    by_id: dict[str, Item] = {}
    for index, item in enumerate(items):
        if item.id in by_id:
            raise ConfigError(f"{path}: [{index}].id: {item.id} is listed twice")
        by_id[item.id] = item
    return by_id


def id_in_test_name(name: str) -> str | None:
    """The ORR id a ``test_orr_…`` name claims (``test_orr_1_2_09_x`` → ``1.2-09``)."""
    found = _ID_IN_NAME.match(name)
    return f"{found[1]}.{found[2]}-{found[3]}" if found else None


def unknown_claims(
    tests: Iterable[tuple[str, str, Iterable[str]]], items: Mapping[str, Item]
) -> list[str]:
    """One line per test (node id, function name, marker ids) that claims a line that does not
    exist, or whose ``test_orr_`` name carries no id."""
    problems = []
    for node_id, name, marked in tests:
        claimed = list(marked)
        if name.startswith(TEST_PREFIX):
            from_name = id_in_test_name(name)
            if from_name is None:
                problems.append(
                    f"{node_id}: a test_orr_ name must start with an id (test_orr_1_2_09_…)"
                )
                continue
            claimed.append(from_name)
        problems += [
            f"{node_id}: ORR {i} is not a line of the checklist" for i in claimed if i not in items
        ]
    return problems
