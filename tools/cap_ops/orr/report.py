"""The ORR as code: a Go/No-Go report decided from one run's evidence (``make orr ENV=<env>``).

``python -m cap_ops.orr.report --env local [--results PATH] [--run] [--allow-dirty]`` reads the
results a ``make test`` of this commit wrote (:mod:`cap_ops.orr.evidence`), or with ``--run``
runs the whole suite first, decides every line of ``orr/items.yaml`` and writes
``orr-report/<env>.json`` (the source), ``.md`` and ``.html`` (both rendered from the JSON).
Results of another commit are refused in one line; results from a dirty tree, or a tree dirty
now, too unless ``--allow-dirty`` (the report then says so). Exit status: 0 GO, 1 NO-GO,
2 refused.

A line's status, the first rule that holds (``orr/decisions.yaml`` is the decision file):

1. **Blocker** when a test claiming it failed in this run (the failed node ids are named), or
   its decision is ``blocker`` (with the reason);
2. **Approved (equivalent)** for an ``equivalent`` decision when every evidence entry holds in
   this run: an entry under ``tests/`` is a node-id prefix, holding when a matching test passed
   and none failed; any other entry is a file of the repository, holding when it exists; else a
   **Blocker** naming what failed or is missing;
3. **Approved** when tests claim it and every one that ran passed: the passed node ids are its
   evidence; skipped tests are no evidence;
4. **Requires Mitigation** with its plan, or **Manual** with its step and owner, by decision;
5. **Blocker** "no evidence in this run" when every test claiming it was skipped;
6. **Blocker** "unclassified" otherwise: no test claims it and no decision covers it.

The verdict, the checklist's rule 9.3: **NO-GO** when any line is a Blocker ("any blocker
remaining"). Otherwise **GO**, read as "GO once the Manual steps are signed": every line is
Approved by this run, Approved as an equivalent, Requires Mitigation with a plan ("mitigation
plans for the items needing mitigation") or Manual, and the Manual steps, each with its owner,
are the human part of the sign-off (checklist 10). A failed test that claims no line does not
decide the verdict; the report lists it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import msgspec
from msgspec import Struct

from cap_ops.orr.decisions import TESTS, Decision, load_decisions, names_test
from cap_ops.orr.evidence import (
    DEFAULT_RESULTS,
    RESULTS_ENV,
    ROOT,
    RunResults,
    TestOutcome,
    git_state,
    load_results,
)
from cap_ops.orr.items import Item, load_items
from cap_ops.orr.risks import Risk, load_risks
from cap_verifier.typed_yaml import ConfigError

OUT = ROOT / "orr-report"
ENVIRONMENTS = ("local", "dev", "staging", "prod")
SIGN_OFF_ROLES = ("Tech Lead", "DevOps Lead", "Security Lead", "Product Manager")
TO_FILL = "—"
PYTEST_WORKERS = "2"


class Status(StrEnum):
    APPROVED = "approved"
    EQUIVALENT = "equivalent"
    MANUAL = "manual"
    MITIGATION = "mitigation"
    BLOCKER = "blocker"


LABELS = {
    Status.APPROVED: "Approved",
    Status.EQUIVALENT: "Approved (equivalent)",
    Status.MANUAL: "Manual",
    Status.MITIGATION: "Requires Mitigation",
    Status.BLOCKER: "Blocker",
}
GO = "GO"
NO_GO = "NO-GO"


class ReportError(Exception):
    """Input the report refuses; ``str(err)`` is one line."""


# --- the inputs, as much of them as the report reads ------------------------------------------


# --- the report (the JSON) --------------------------------------------------------------------


class Line(Struct, frozen=True, kw_only=True):
    """One checklist line as decided: ``evidence`` is what supports it (passed node ids, or an
    equivalent's files), ``failed`` and ``skipped`` the node ids that did not pass."""

    id: str
    section: str
    title: str
    status: Status
    detail: str
    owner: str | None = None
    evidence: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()


class Totals(Struct, frozen=True, kw_only=True):
    """Lines by status; ``completed`` (checklist 9.1) is approved plus equivalent."""

    total: int
    completed: int
    approved: int
    equivalent: int
    manual: int
    mitigation: int
    blocker: int


class Section(Struct, frozen=True, kw_only=True):
    section: str
    anchor: str
    totals: Totals


class RiskRow(Struct, frozen=True, kw_only=True):
    """A risk of 9.2 with its lines and tests; ``proven``: every line Approved (or equivalent)
    and every test prefix passed in this run."""

    risk: str
    severity: str
    mitigation: str
    owner: str
    orr: tuple[str, ...]
    tests: tuple[str, ...]
    evidence: tuple[str, ...]
    failed: tuple[str, ...]
    proven: bool


class SignOff(Struct, frozen=True, kw_only=True):
    role: str
    name: str = TO_FILL
    signature: str = TO_FILL
    date: str = TO_FILL


class Run(Struct, frozen=True, kw_only=True):
    """The run the report decides from: when, what it selected, how pytest exited."""

    started: datetime
    finished: datetime
    selection: str
    args: tuple[str, ...]
    exit_status: int
    tests: int


class Report(Struct, frozen=True, kw_only=True):
    env: str
    commit: str
    dirty: bool
    run: Run
    verdict: str
    verdict_note: str
    summary: Totals
    sections: tuple[Section, ...]
    lines: tuple[Line, ...]
    risks: tuple[RiskRow, ...]
    signoff: tuple[SignOff, ...]
    failed_outside_checklist: tuple[str, ...]


# --- deciding ---------------------------------------------------------------------------------


def _tests_of(tests: Sequence[TestOutcome], outcome: str) -> tuple[str, ...]:
    return tuple(t.nodeid for t in tests if t.outcome == outcome)


def _equivalent(item: Item, decision: Decision, tests: Sequence[TestOutcome], root: Path) -> Line:
    """An equivalent holds when every evidence entry holds (see the module's rules)."""
    evidence: list[str] = []
    failed: list[str] = []
    skipped: list[str] = []
    missing: list[str] = []
    for entry in decision.evidence:
        if entry.startswith(TESTS):
            found = [t for t in tests if names_test(entry, t.nodeid)]
            passed = _tests_of(found, "passed")
            failed += _tests_of(found, "failed")
            skipped += _tests_of(found, "skipped")
            evidence += passed
            if not passed:
                missing.append(entry)
        elif (root / entry).exists():
            evidence.append(entry)
        else:
            missing.append(entry)
    fields = {"owner": decision.owner, "failed": tuple(failed), "skipped": tuple(skipped)}
    if failed:
        detail = f"the equivalent's evidence failed in this run: {len(failed)} tests"
    elif missing or not decision.evidence:
        detail = f"the equivalent's evidence is missing in this run: {', '.join(missing) or '—'}"
    else:
        return _line(
            item, Status.EQUIVALENT, decision.reason or "", evidence=tuple(evidence), **fields
        )
    return _line(item, Status.BLOCKER, detail, evidence=tuple(evidence), **fields)


def _line(item: Item, status: Status, detail: str, **fields: object) -> Line:
    return msgspec.convert(
        {"id": item.id, "section": item.section, "title": item.title, "status": status,
         "detail": detail, **fields},
        Line,
    )  # fmt: skip


def decide(
    item: Item,
    tests: Sequence[TestOutcome],
    decision: Decision | None,
    run: Sequence[TestOutcome],
    *,
    root: Path = ROOT,
) -> Line:
    """The status of one line from the ``tests`` claiming it and its decision (the module's
    rules); an equivalent's evidence is looked up among all tests of the ``run``."""
    passed, failed, skipped = (_tests_of(tests, o) for o in ("passed", "failed", "skipped"))
    ran = {"evidence": passed, "failed": failed, "skipped": skipped}
    kind, owner = (decision.kind, decision.owner) if decision else (None, None)
    if failed:
        return _line(item, Status.BLOCKER, f"failed in this run: {len(failed)} tests", **ran)
    if decision and kind == "blocker":
        reason = f"the decision file: {decision.reason}"
        return _line(item, Status.BLOCKER, reason, owner=owner, **ran)
    if decision and kind == "equivalent":
        return _equivalent(item, decision, run, root)
    if passed:
        note = f", {len(skipped)} skipped" if skipped else ""
        return _line(item, Status.APPROVED, f"{len(passed)} tests passed{note}", **ran)
    if decision and kind == "mitigation":
        return _line(item, Status.MITIGATION, decision.plan or "", owner=owner, **ran)
    if decision and kind == "manual":
        return _line(item, Status.MANUAL, decision.step or "", owner=owner, **ran)
    if skipped:
        detail = f"no evidence in this run: its {len(skipped)} tests were skipped"
        return _line(item, Status.BLOCKER, detail, **ran)
    return _line(item, Status.BLOCKER, "unclassified: no test claims it and no decision covers it")


def totals(lines: Iterable[Line]) -> Totals:
    counts = dict.fromkeys(Status, 0)
    for line in lines:
        counts[line.status] += 1
    done = counts[Status.APPROVED] + counts[Status.EQUIVALENT]
    by_status = {s.value: counts[s] for s in Status}
    return Totals(total=sum(counts.values()), completed=done, **by_status)


def anchor(section: str) -> str:
    """``1.1 Kubernetes cluster`` → ``s-1-1``."""
    return "s-" + section.split(" ", 1)[0].replace(".", "-")


def _risk_row(risk: Risk, status: Mapping[str, Status], tests: Sequence[TestOutcome]) -> RiskRow:
    found = [t for t in tests if any(names_test(p, t.nodeid) for p in risk.tests)]
    evidence, failed = _tests_of(found, "passed"), _tests_of(found, "failed")
    tested = all(any(names_test(p, n) for n in evidence) for p in risk.tests)
    lines_ok = all(status[i] in (Status.APPROVED, Status.EQUIVALENT) for i in risk.orr)
    return RiskRow(
        risk=risk.risk, severity=risk.severity.value, mitigation=risk.mitigation,
        owner=risk.owner, orr=risk.orr, tests=risk.tests, evidence=evidence, failed=failed,
        proven=lines_ok and tested and not failed,
    )  # fmt: skip


def verdict(lines: Sequence[Line]) -> tuple[str, str]:
    """The verdict and its one-sentence reason, by rule 9.3 (module docstring)."""
    blockers = sum(line.status == Status.BLOCKER for line in lines)
    if blockers:
        return NO_GO, f"NO-GO: {blockers} Blocker lines remain (checklist 9.3)."
    manual = sum(line.status == Status.MANUAL for line in lines)
    return GO, (
        f"GO once the {manual} Manual steps are signed: no Blocker, every other line is "
        "Approved by this run, Approved as an equivalent or Requires Mitigation with a plan."
    )


def build_report(
    env: str,
    items: Mapping[str, Item],
    results: RunResults,
    decisions: Mapping[str, Decision],
    risks: Sequence[Risk],
    *,
    root: Path = ROOT,
) -> Report:
    """Decide every line of ``items`` from ``results`` and ``decisions``; one-line errors for
    ids that are not checklist lines."""
    unknown = sorted({i for t in results.tests for i in t.orr} - items.keys())
    unknown += sorted(set(decisions) - items.keys())
    if unknown:
        raise ReportError(f"not lines of orr/items.yaml: {', '.join(unknown)}")
    claims: dict[str, list[TestOutcome]] = {i: [] for i in items}
    for test in results.tests:
        for i in dict.fromkeys(test.orr):
            claims[i].append(test)
    lines = tuple(
        decide(item, claims[i], decisions.get(i), results.tests, root=root)
        for i, item in items.items()
    )
    by_section: dict[str, list[Line]] = {}
    for line in lines:
        by_section.setdefault(line.section, []).append(line)
    status = {line.id: line.status for line in lines}
    decided, note = verdict(lines)
    return Report(
        env=env,
        commit=results.commit,
        dirty=results.dirty,
        run=Run(
            started=results.started,
            finished=results.finished,
            selection=results.selection,
            args=results.args,
            exit_status=results.exit_status,
            tests=len(results.tests),
        ),
        verdict=decided,
        verdict_note=note,
        summary=totals(lines),
        sections=tuple(
            Section(section=s, anchor=anchor(s), totals=totals(ls)) for s, ls in by_section.items()
        ),
        lines=lines,
        risks=tuple(_risk_row(r, status, results.tests) for r in risks),
        signoff=tuple(SignOff(role=role) for role in SIGN_OFF_ROLES),
        failed_outside_checklist=tuple(
            t.nodeid for t in results.tests if t.outcome == "failed" and not t.orr
        ),
    )


# --- provenance -------------------------------------------------------------------------------


def check_provenance(
    results: RunResults, head: str, dirty_now: bool, allow_dirty: bool, label: str
) -> None:
    """Results must be of ``head``; from a clean tree, and the tree clean now, unless
    ``allow_dirty``."""
    if results.commit != head:
        raise ReportError(
            f"{label}: results of commit {results.commit[:12]}, not of HEAD {head[:12]}: "
            "run make test (or make orr RUN=1) on this commit"
        )
    if not allow_dirty and (results.dirty or dirty_now):
        where = "were run on a dirty tree" if results.dirty else "are fine but the tree is dirty"
        raise ReportError(f"{label}: results {where}: commit first, or pass --allow-dirty")


# --- writing ----------------------------------------------------------------------------------


def encode(report: Report) -> bytes:
    return msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n"


def decode(data: bytes) -> Report:
    return msgspec.json.decode(data, type=Report)


def write(report: Report, out: Path) -> list[Path]:
    """``<env>.json``, then ``.md`` and ``.html`` rendered from the JSON written."""
    from cap_ops.orr import render_html, render_md  # noqa: PLC0415 (they import this module)

    out.mkdir(parents=True, exist_ok=True)
    source = out / f"{report.env}.json"
    source.write_bytes(encode(report))
    again = decode(source.read_bytes())
    pages = [out / f"{report.env}.md", out / f"{report.env}.html"]
    pages[0].write_text(render_md.render(again), encoding="utf-8")
    pages[1].write_text(render_html.render(again), encoding="utf-8")
    return [source, *pages]


# --- the command ------------------------------------------------------------------------------


def run_suite(results: Path, pytest_args: Sequence[str]) -> None:
    """The whole suite (or ``pytest_args``) on two workers, its evidence to ``results``."""
    argv = [sys.executable, "-m", "pytest", "-n", PYTEST_WORKERS, "-p", "cap_ops.orr.evidence"]
    argv += ["--orr-results", str(results), *pytest_args]
    print(f"orr: {' '.join(argv[1:])}", file=sys.stderr)
    status = subprocess.run(argv, cwd=ROOT, check=False).returncode
    if status not in (0, 1):  # 1: tests failed, which the report shows
        raise ReportError(f"pytest exited {status} (interrupted or not run): no report")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cap_ops.orr.report", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--env", choices=ENVIRONMENTS, default="local")
    parser.add_argument(
        "--results", type=Path, help=f"the run's results (default: {DEFAULT_RESULTS})"
    )
    parser.add_argument("--run", action="store_true", help="run the suite first (pytest -n 2)")
    parser.add_argument("--allow-dirty", action="store_true", help="accept a dirty tree")
    parser.add_argument("--out", type=Path, default=OUT, help="default: orr-report/")
    parser.add_argument("pytest_args", nargs="*", help="after --: pytest's, with --run only")
    args = parser.parse_args(argv)
    results_path: Path = args.results or Path(os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS)
    try:
        if args.pytest_args and not args.run:
            raise ReportError("pytest arguments are for --run only")
        head, dirty_now = git_state(ROOT)
        if args.run:
            if dirty_now and not args.allow_dirty:
                raise ReportError("the tree is dirty: commit first, or pass --allow-dirty")
            run_suite(results_path, args.pytest_args)
        results = load_results(results_path)
        check_provenance(results, head, dirty_now, args.allow_dirty, str(results_path))
        items = load_items()
        report = build_report(
            args.env, items, results, load_decisions(items=items), load_risks(items)
        )
        written = write(report, args.out)
    except (ReportError, ConfigError) as err:
        print(f"orr: {err}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{getattr(report.summary, s.value)} {LABELS[s]}" for s in Status)
    print(f"{written[-1]}: {report.verdict} ({counts})")
    return 0 if report.verdict == GO else 1


if __name__ == "__main__":
    sys.exit(main())
