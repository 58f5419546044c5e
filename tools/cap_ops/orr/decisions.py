"""The ORR lines no test proves here, and what a person does for each (``orr/decisions.yaml``).

Every checklist line is either claimed by a test or decided here, never both, with one
exception: a deliberate deviation from the checklist (``equivalent``) names the tests that prove
the equivalent as its evidence, and those may claim the line. The classes:

- ``manual``: a ``step`` a person (``owner``) does, e.g. a sign-off or a real cloud account;
- ``mitigation`` (Requires Mitigation): something missing, with the ``plan`` and its ``owner``;
- ``blocker``: the service must not go live without it (``reason``, ``owner``);
- ``equivalent``: the checklist's way replaced by another (``reason``), approved only when its
  ``evidence`` passed in the run: test node-id prefixes (starting ``tests/``) or files of the
  repository.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from cap_ops.orr.items import Item, OrrId, load_items
from cap_verifier.typed_yaml import ConfigError, convert, read_yaml

ROOT = Path(__file__).resolve().parents[3]
DECISIONS = ROOT / "orr" / "decisions.yaml"
TESTS = "tests/"
"""Evidence that starts so is a test node-id prefix; any other evidence is a file path."""

Kind = Literal["manual", "mitigation", "blocker", "equivalent"]
Owner = Literal[
    "Tech Lead",
    "DevOps Lead",
    "Security Lead",
    "Product Manager",
    "Team Lead",
    "Engineering Manager",
    "on-call engineer",
]
"""The roles of the checklist's sign-off table and escalation path (runbooks/contacts.md)."""
Text = Annotated[str, Meta(min_length=10)]

_REQUIRED: dict[Kind, tuple[str, ...]] = {
    "manual": ("step", "owner"),
    "mitigation": ("plan", "owner"),
    "blocker": ("reason", "owner"),
    "equivalent": ("reason", "evidence"),
}
_OPTIONAL: dict[Kind, tuple[str, ...]] = {"equivalent": ("owner",)}


class Decision(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One checklist line decided without a test of its own (``class`` in the file)."""

    id: OrrId
    kind: Kind = field(name="class")
    owner: Owner | None = None
    step: Text | None = None
    plan: Text | None = None
    reason: Text | None = None
    evidence: tuple[Annotated[str, Meta(min_length=1)], ...] = ()

    def __post_init__(self) -> None:
        allowed = _REQUIRED[self.kind] + _OPTIONAL.get(self.kind, ())
        for name in _REQUIRED[self.kind]:
            if not getattr(self, name):
                raise ValueError(f"{name}: class {self.kind} needs it")
        for name in ("owner", "step", "plan", "reason", "evidence"):
            if name not in allowed and getattr(self, name):
                raise ValueError(f"{name}: not a key of class {self.kind}")

    @property
    def evidence_tests(self) -> tuple[str, ...]:
        """The node-id prefixes among the evidence."""
        return tuple(e for e in self.evidence if e.startswith(TESTS))

    @property
    def evidence_files(self) -> tuple[str, ...]:
        """The repository files among the evidence."""
        return tuple(e for e in self.evidence if not e.startswith(TESTS))


def names_test(prefix: str, nodeid: str) -> bool:
    """Whether the evidence ``prefix`` names the test ``nodeid``: the same node id, or a prefix
    ending at a boundary (a folder, a file, a class, a parametrized family)."""
    if not nodeid.startswith(prefix):
        return False
    rest = nodeid[len(prefix) :]
    return not rest or prefix.endswith(("/", "::")) or rest.startswith(("/", "::", "["))


def load_decisions(
    path: Path = DECISIONS, items: Mapping[str, Item] | None = None
) -> dict[str, Decision]:
    """The decisions by id, in file order; an id that is not a checklist line (``items``,
    default ``orr/items.yaml``) or is listed twice is a one-line error."""
    decisions = convert(read_yaml(path), tuple[Decision, ...], str(path))
    items = load_items() if items is None else items
    by_id: dict[str, Decision] = {}
    for index, decision in enumerate(decisions):
        if decision.id not in items:
            raise ConfigError(f"{path}: [{index}].id: {decision.id} is not a line of the checklist")
        if decision.id in by_id:
            raise ConfigError(f"{path}: [{index}].id: {decision.id} is listed twice")
        by_id[decision.id] = decision
    return by_id


def mapping_problems(
    items: Iterable[str],
    claims: Mapping[str, Iterable[str]],
    decisions: Mapping[str, Decision],
    nodeids: Iterable[str],
    root: Path = ROOT,
) -> list[str]:
    """One line per rule broken by the checklist ``items``, the ids each test claims (``claims``
    by node id), the ``decisions`` and the collected ``nodeids``: every line is claimed or
    decided; a line claimed is decided only as an equivalent whose evidence names every test
    that claims it; evidence names a collected test or a file under ``root``."""
    claimed_by: dict[str, list[str]] = {}
    for nodeid, ids in claims.items():
        for orr_id in ids:
            claimed_by.setdefault(orr_id, []).append(nodeid)
    lines, collected = list(items), list(nodeids)
    problems = []
    for orr_id in lines:
        decision, tests = decisions.get(orr_id), claimed_by.get(orr_id, [])
        if decision is None:
            if not tests:
                problems.append(f"ORR {orr_id}: claimed by no test and not in the decisions")
            continue
        if tests and decision.kind != "equivalent":
            problems.append(
                f"ORR {orr_id}: decided as {decision.kind} but claimed by {tests[0]}"
                + (f" and {len(tests) - 1} more" if len(tests) > 1 else "")
            )
        elif unnamed := [
            t for t in tests if not any(names_test(p, t) for p in decision.evidence_tests)
        ]:
            problems.append(f"ORR {orr_id}: claimed by {unnamed[0]}, which its evidence omits")
        problems += [
            f"ORR {orr_id}: evidence {p} names no collected test"
            for p in decision.evidence_tests
            if not any(names_test(p, t) for t in collected)
        ]
        problems += [
            f"ORR {orr_id}: evidence {f} is not a file of the repository"
            for f in decision.evidence_files
            if not (root / f).is_file()
        ]
    known = set(lines)
    problems += [f"ORR {i}: decided but not a checklist line" for i in decisions if i not in known]
    return problems
