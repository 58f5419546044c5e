"""The ORR report as Markdown (``orr-report/<env>.md``), rendered from its JSON."""

from __future__ import annotations

from collections.abc import Iterable

from cap_ops.orr.report import GO, LABELS, Line, Report, Status


def cell(text: str) -> str:
    """Text safe in a table cell: pipes escaped, line breaks folded."""
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


def table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(head)
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def codes(node_ids: Iterable[str]) -> str:
    return "<br>".join(f"`{n}`" for n in node_ids) or "—"


def _evidence(line: Line) -> str:
    failed = [f"failed: `{n}`" for n in line.failed]
    return "<br>".join([*failed, codes(line.evidence)] if failed else [codes(line.evidence)])


def render(report: Report) -> str:
    s = report.summary
    status_of = {line.id: line.status for line in report.lines}
    run = report.run
    out = [
        f"# ORR report: {report.env}",
        "",
        f"## Verdict: {report.verdict}",
        "",
        report.verdict_note,
        "",
        f"Commit `{report.commit}`{' (dirty tree)' if report.dirty else ''}; run "
        f"{run.started:%Y-%m-%d %H:%M:%S} to {run.finished:%H:%M:%S} UTC, {run.tests} tests, "
        f"pytest exit {run.exit_status}"
        + (f", selection `{run.selection}`" if run.selection else "")
        + (f", arguments `{' '.join(run.args)}`" if run.args else "")
        + ".",
        "",
        "## 9.1 Summary",
        "",
        *table(
            ["Total", "Completed", *(LABELS[x] for x in Status)],
            [[str(s.total), str(s.completed), *(str(getattr(s, x.value)) for x in Status)]],
        ),
        "",
        "## Sections",
        "",
        *table(
            ["Section", "Total", *(LABELS[x] for x in Status)],
            [
                [sec.section, str(sec.totals.total)]
                + [str(getattr(sec.totals, x.value)) for x in Status]
                for sec in report.sections
            ],
        ),
        "",
    ]
    blockers = [line for line in report.lines if line.status == Status.BLOCKER]
    if blockers:
        out += ["## Blockers", ""]
        out += [f"- **{b.id}** {cell(b.title)}: {cell(b.detail)}" for b in blockers] + [""]
    if report.failed_outside_checklist:
        out += ["## Failed tests that prove no checklist line", ""]
        out += [f"- `{n}`" for n in report.failed_outside_checklist] + [""]
    manual = [line for line in report.lines if line.status == Status.MANUAL]
    heading = "GO once these are signed" if report.verdict == GO else "to sign as well"
    out += [f"## Manual steps ({heading})", ""]
    out += [
        *table(
            ["ORR", "Step", "Owner", "Done by (name, date)"],
            [[m.id, m.detail, m.owner or "—", "—"] for m in manual],
        ),
        "",
    ]
    out += ["## 9.2 Risk assessment", ""]
    out += [
        *table(
            ["Risk", "Severity", "Mitigation", "Owner", "ORR lines", "Proven in this run"],
            [
                [
                    r.risk,
                    r.severity,
                    r.mitigation,
                    r.owner,
                    ", ".join(f"{i} ({LABELS[status_of[i]]})" for i in r.orr),
                    "yes" if r.proven else "no",
                ]
                for r in report.risks
            ],
        ),
        "",
    ]
    out += ["## 10. Sign-off", ""]
    out += [
        *table(
            ["Role", "Name", "Signature", "Date"],
            [[x.role, x.name, x.signature, x.date] for x in report.signoff],
        ),
        "",
    ]
    out += ["## Lines", ""]
    for sec in report.sections:
        out += [f"### {sec.section}", ""]
        out += [
            *table(
                ["ORR", "Line", "Status", "Why", "Evidence"],
                [
                    [x.id, x.title, LABELS[x.status], x.detail, _evidence(x)]
                    for x in report.lines
                    if x.section == sec.section
                ],
            ),
            "",
        ]
    return "\n".join(out)
