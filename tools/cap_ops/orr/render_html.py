"""The ORR report as one self-contained HTML page (``orr-report/<env>.html``), from its JSON.

For people: the verdict big at the top, one screen of section totals in the status colours
(each section name links to its lines), then the blockers, the Manual steps, the risks, the
sign-off and one row per line with its evidence in ``<details>``. Inline CSS only: no script,
no external link. Every text is escaped. The totals carry ``data-section`` and ``data-count``
attributes so that a check can read them back from the rendered page.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from cap_ops.orr.report import GO, LABELS, Line, Report, Status

COLOURS = {
    Status.APPROVED: "#1a7f37",
    Status.EQUIVALENT: "#0f766e",
    Status.MANUAL: "#1d4ed8",
    Status.MITIGATION: "#b45309",
    Status.BLOCKER: "#b91c1c",
}

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:8px 16px;
 color:#1f2328}
h1{font-size:16px;margin:4px 0}h2{font-size:16px;margin:18px 0 6px}
.verdict{font-size:44px;font-weight:800;margin:0;padding:4px 16px;color:#fff;border-radius:6px;
 display:inline-block}
.go{background:#1a7f37}.no-go{background:#b91c1c}
.note{font-size:15px;margin:4px 0}.meta{color:#59636e;font-size:12px;margin:2px 0}
nav a{margin-right:12px}
table{border-collapse:collapse;width:100%}table.totals{line-height:1.25}
th,td{border-bottom:1px solid #d1d9e0;padding:1px 6px;text-align:left;vertical-align:top}
table.totals td,table.totals th.n{text-align:right;width:7em}
table.totals td.zero{color:#b0b8c0}
.bar{display:flex;height:10px;min-width:160px;border-radius:3px;overflow:hidden}
.bar span{display:block;height:100%}
.badge{color:#fff;border-radius:4px;padding:0 6px;white-space:nowrap;font-size:12px}
code{font-size:12px}details summary{cursor:pointer;color:#59636e}
td.id{white-space:nowrap;font-family:monospace}
""" + "".join(
    f".{s.value}{{background:{c}}}.c-{s.value}{{color:{c};font-weight:700}}"
    for s, c in COLOURS.items()
)


def line_anchor(orr_id: str) -> str:
    """``1.1-01`` → ``l-1-1-01``."""
    return "l-" + orr_id.replace(".", "-")


def e(text: object) -> str:
    return escape(str(text), quote=True)


def _count_cells(section: str, counts: dict[str, int]) -> str:
    out = []
    for name, value in counts.items():
        style = "zero" if value == 0 else f"c-{name}" if name != "total" else ""
        out.append(
            f'<td class="{style}" data-section="{e(section)}" data-count="{name}">{value}</td>'
        )
    return "".join(out)


def _bar(counts: dict[str, int]) -> str:
    total = counts["total"] or 1
    spans = "".join(
        f'<span class="{s.value}" style="width:{100 * counts[s.value] / total:.2f}%"></span>'
        for s in Status
        if counts[s.value]
    )
    return f'<div class="bar">{spans}</div>'


def _totals_table(report: Report) -> str:
    head = "".join(f'<th class="n">{e(LABELS[s])}</th>' for s in Status)
    rows = []
    for sec in [*report.sections, None]:
        totals = report.summary if sec is None else sec.totals
        counts = {"total": totals.total} | {s.value: getattr(totals, s.value) for s in Status}
        name = "all" if sec is None else sec.section
        title = "All lines" if sec is None else f'<a href="#{e(sec.anchor)}">{e(sec.section)}</a>'
        rows.append(f"<tr><th>{title}</th>{_count_cells(name, counts)}<td>{_bar(counts)}</td></tr>")
    return (
        f'<table class="totals"><tr><th>Section</th><th class="n">Lines</th>{head}<th></th></tr>'
        + "".join(rows)
        + "</table>"
    )


def _list(node_ids: Iterable[str]) -> str:
    return "".join(f"<li><code>{e(n)}</code></li>" for n in node_ids)


def _evidence(line: Line) -> str:
    parts = []
    for label, ids in (("failed", line.failed), ("evidence", line.evidence)):
        if ids:
            parts.append(
                f"<details><summary>{label}: {len(ids)}</summary><ul>{_list(ids)}</ul></details>"
            )
    if line.skipped:
        n = len(line.skipped)
        parts.append(f"<details><summary>skipped: {n}</summary><ul>{_list(line.skipped)}</ul>")
        parts[-1] += "</details>"
    return "".join(parts) or "—"


def _badge(status: Status) -> str:
    return f'<span class="badge {status.value}">{e(LABELS[status])}</span>'


def _line_link(orr_id: str) -> str:
    return f'<a href="#{line_anchor(orr_id)}">{e(orr_id)}</a>'


def _table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """Cells are HTML already (escaped by the caller)."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def render(report: Report) -> str:
    run = report.run
    status_of = {line.id: line.status for line in report.lines}
    verdict_class = "go" if report.verdict == GO else "no-go"
    meta = (
        f"Commit <code>{e(report.commit)}</code>"
        + (" <strong>(dirty tree: not a release decision)</strong>" if report.dirty else "")
        + f"; run {e(f'{run.started:%Y-%m-%d %H:%M:%S}')} to {e(f'{run.finished:%H:%M:%S}')}"
        + f" UTC, {run.tests} tests, pytest exit {run.exit_status}"
        + (f", selection <code>{e(run.selection)}</code>" if run.selection else "")
        + (f", arguments <code>{e(' '.join(run.args))}</code>" if run.args else "")
    )
    toc = [
        ("sections", "Sections"),
        ("blockers", "Blockers"),
        ("manual", "Manual steps"),
        ("risks", "9.2 Risks"),
        ("signoff", "10 Sign-off"),
        ("lines", "Lines"),
    ]
    if report.failed_outside_checklist:
        toc.insert(2, ("outside", "Other failed tests"))
    blockers = [x for x in report.lines if x.status == Status.BLOCKER]
    manual = [x for x in report.lines if x.status == Status.MANUAL]
    body = [
        f'<header id="top"><h1>ORR report: {e(report.env)}</h1>',
        f'<p id="verdict" class="verdict {verdict_class}">{e(report.verdict)}</p>',
        f'<p class="note">{e(report.verdict_note)}</p><p class="meta">{meta}</p>',
        "<nav>" + "".join(f'<a href="#{a}">{e(t)}</a>' for a, t in toc) + "</nav></header>",
        f'<section id="sections"><h2>Sections (9.1: {report.summary.completed} of '
        f"{report.summary.total} completed)</h2>{_totals_table(report)}</section>",
        f'<section id="blockers"><h2>Blockers ({len(blockers)})</h2>',
        _table(
            ["ORR", "Line", "Why"],
            ([_line_link(x.id), e(x.title), e(x.detail)] for x in blockers),
        )
        if blockers
        else "<p>None.</p>",
        "</section>",
    ]
    if report.failed_outside_checklist:
        body.append(
            '<section id="outside"><h2>Failed tests that prove no checklist line</h2>'
            f"<ul>{_list(report.failed_outside_checklist)}</ul></section>"
        )
    signed = "GO once these are signed" if report.verdict == GO else "to sign as well"
    body += [
        f'<section id="manual"><h2>Manual steps ({len(manual)}, {signed})</h2>',
        _table(
            ["ORR", "Step", "Owner", "Done by (name, date)"],
            ([_line_link(m.id), e(m.detail), e(m.owner or "—"), "—"] for m in manual),
        ),
        '</section><section id="risks"><h2>9.2 Risk assessment</h2>',
        _table(
            ["Risk", "Severity", "Mitigation", "Owner", "ORR lines", "Proven in this run"],
            (
                [
                    e(r.risk),
                    e(r.severity),
                    e(r.mitigation),
                    e(r.owner),
                    " ".join(f"{_line_link(i)} {_badge(status_of[i])}" for i in r.orr),
                    "yes" if r.proven else '<span class="c-blocker">no</span>',
                ]
                for r in report.risks
            ),
        ),
        '</section><section id="signoff"><h2>10. Sign-off</h2>',
        _table(
            ["Role", "Name", "Signature", "Date"],
            ([e(x.role), e(x.name), e(x.signature), e(x.date)] for x in report.signoff),
        ),
        '</section><section id="lines"><h2>Lines</h2>',
    ]
    for sec in report.sections:
        rows = "".join(
            f'<tr id="{line_anchor(x.id)}"><td class="id">{e(x.id)}</td><td>{e(x.title)}</td>'
            f"<td>{_badge(x.status)}</td><td>{e(x.detail)}"
            + (f"<br>owner: {e(x.owner)}" if x.owner else "")
            + f"</td><td>{_evidence(x)}</td></tr>"
            for x in report.lines
            if x.section == sec.section
        )
        body.append(
            f'<section id="{e(sec.anchor)}"><h2>{e(sec.section)} '
            f'<a href="#sections">↑</a></h2><table><tr><th>ORR</th><th>Line</th><th>Status</th>'
            f"<th>Why</th><th>Evidence</th></tr>{rows}</table></section>"
        )
    body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>ORR {e(report.env)}: {e(report.verdict)}</title><style>{CSS}</style></head>"
        "<body>" + "\n".join(body) + "</body></html>\n"
    )
