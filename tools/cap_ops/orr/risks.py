"""The risks of the readiness review (checklist 9.2), read from ``orr/risks.yaml``.

Each risk names the ORR lines that mitigate it (ids of ``orr/items.yaml``) and, optionally, test
node-id prefixes under ``tests/`` proving the mechanism where no line covers it; the ORR report
shows their status from the same run.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from msgspec import Meta, Struct

from cap_ops.orr.items import ITEMS, Item, OrrId
from cap_verifier.typed_yaml import ConfigError, load_typed

RISKS = ITEMS.with_name("risks.yaml")


class Severity(StrEnum):
    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"


TestPrefix = Annotated[str, Meta(pattern=r"^tests/\S+$")]


class Risk(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One accepted risk, its mitigation and owner, and the evidence of the mitigation."""

    risk: Annotated[str, Meta(min_length=3)]
    severity: Severity
    mitigation: Annotated[str, Meta(min_length=10)]
    owner: Annotated[str, Meta(min_length=2)]
    orr: Annotated[tuple[OrrId, ...], Meta(min_length=1)]
    tests: tuple[TestPrefix, ...] = ()


def load_risks(items: Mapping[str, Item], path: Path = RISKS) -> tuple[Risk, ...]:
    """The risks in file order; an id that is not a checklist line is a one-line error."""
    risks = load_typed(path, tuple[Risk, ...])
    for index, risk in enumerate(risks):
        unknown = [i for i in risk.orr if i not in items]
        if unknown:
            raise ConfigError(
                f"{path}: [{index}].orr: {', '.join(unknown)} is not a line of the checklist"
            )
    return risks
