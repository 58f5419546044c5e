"""The ORR report (cap_ops.orr.report): every line's status and the verdict by rule 9.3 on
synthetic runs, the JSON over the real checklist, provenance, the Markdown and the HTML page
(its checks on broken pages, then in headless Chromium), and ``--run`` on a tiny suite."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from orr_html_checks import headless, problems

from cap_ops.orr import render_html, render_md
from cap_ops.orr.decisions import Decision
from cap_ops.orr.evidence import ROOT, RunResults, TestOutcome, encode_results, git_state
from cap_ops.orr.items import Item, load_items
from cap_ops.orr.report import (
    GO,
    LABELS,
    NO_GO,
    Report,
    ReportError,
    Status,
    build_report,
    check_provenance,
    decode,
    main,
    write,
)
from cap_ops.orr.risks import RISKS, load_risks

COMMIT = "c0ffee" + "0" * 34
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ITEMS = {
    i.id: i
    for i in (
        Item(id="1.1-01", section="1.1 Kubernetes cluster", title="At least three nodes"),
        Item(id="1.1-02", section="1.1 Kubernetes cluster", title="Nodes sized right"),
        Item(id="1.2-01", section="1.2 Ingress & load balancer", title="An ingress <running>"),
        Item(id="1.2-02", section="1.2 Ingress & load balancer", title="A public IP"),
    )
}
HUMAN = {
    "1.2-02": Decision(
        id="1.2-02", kind="manual", step="Check the load balancer's IP", owner="DevOps Lead"
    )
}


def passed(nodeid: str, *ids: str) -> TestOutcome:
    return TestOutcome(nodeid=nodeid, outcome="passed", orr=ids)


def failed(nodeid: str, *ids: str) -> TestOutcome:
    return TestOutcome(nodeid=nodeid, outcome="failed", orr=ids)


def skipped(nodeid: str, *ids: str) -> TestOutcome:
    return TestOutcome(nodeid=nodeid, outcome="skipped", orr=ids)


GREEN = (
    passed("tests/a.py::test_nodes", "1.1-01", "1.1-02"),
    passed("tests/a.py::test_sizes[8cpu]", "1.1-02"),
    passed("tests/b.py::test_ingress", "1.2-01"),
)


def run(*tests: TestOutcome, commit: str = COMMIT, dirty: bool = False) -> RunResults:
    return RunResults(
        commit=commit, dirty=dirty, started=NOW, finished=NOW, selection="",
        exit_status=int(any(t.outcome == "failed" for t in tests)), tests=tests,
    )  # fmt: skip


def decide(
    *tests: TestOutcome, decisions: dict[str, Decision] | None = None, root: Path = ROOT
) -> Report:
    return build_report(
        "local", ITEMS, run(*tests), HUMAN if decisions is None else decisions, (), root=root
    )


def status(report: Report, orr_id: str) -> Status:
    return next(x.status for x in report.lines if x.id == orr_id)


def line(report: Report, orr_id: str) -> tuple[Status, str, tuple[str, ...], tuple[str, ...]]:
    x = next(x for x in report.lines if x.id == orr_id)
    return x.status, x.detail, x.evidence, x.failed


# --- statuses and the verdict -----------------------------------------------------------------


def test_all_passed_and_the_manual_step_decided_is_go_once_signed() -> None:
    report = decide(*GREEN)
    assert report.verdict == GO
    assert report.verdict_note.startswith("GO once the 1 Manual steps are signed")
    assert line(report, "1.1-02") == (
        Status.APPROVED, "2 tests passed",
        ("tests/a.py::test_nodes", "tests/a.py::test_sizes[8cpu]"), (),
    )  # fmt: skip
    assert line(report, "1.2-02")[:2] == (Status.MANUAL, "Check the load balancer's IP")
    assert report.summary.completed == 3
    assert report.summary.manual == 1


def test_a_failing_test_behind_a_line_makes_it_a_blocker_naming_the_test_and_no_go() -> None:
    report = decide(*GREEN, failed("tests/c.py::test_third_node", "1.1-01"))
    assert report.verdict == NO_GO
    assert line(report, "1.1-01") == (
        Status.BLOCKER, "failed in this run: 1 tests",
        ("tests/a.py::test_nodes",), ("tests/c.py::test_third_node",),
    )  # fmt: skip
    assert status(report, "1.1-02") is Status.APPROVED  # the passing test still proves this one


def test_a_blocker_in_the_decision_file_is_no_go() -> None:
    blocker = Decision(
        id="1.2-02", kind="blocker", reason="No public IP until the DNS move", owner="Tech Lead"
    )
    report = decide(*GREEN, decisions={"1.2-02": blocker})
    assert report.verdict == NO_GO
    assert line(report, "1.2-02")[:2] == (
        Status.BLOCKER, "the decision file: No public IP until the DNS move"
    )  # fmt: skip


def test_mitigation_keeps_go_with_its_plan() -> None:
    plan = Decision(
        id="1.2-02", kind="mitigation", plan="Static IP reserved by the next release",
        owner="DevOps Lead",
    )  # fmt: skip
    report = decide(*GREEN, decisions={"1.2-02": plan})
    assert report.verdict == GO
    assert line(report, "1.2-02")[:2] == (Status.MITIGATION, plan.plan)


def equivalent(*evidence: str) -> dict[str, Decision]:
    return {
        "1.2-01": Decision(
            id="1.2-01", kind="equivalent", reason="Gateway API instead of NGINX",
            evidence=evidence,
        ),
    } | HUMAN  # fmt: skip


def test_an_equivalent_is_approved_by_its_passing_evidence_and_a_blocker_when_it_fails() -> None:
    tests = GREEN[:2]
    gateway = passed("tests/infra/test_gateway.py::test_routes[prod]")
    good = decide(*tests, gateway, decisions=equivalent("tests/infra/test_gateway.py"))
    assert line(good, "1.2-01") == (
        Status.EQUIVALENT, "Gateway API instead of NGINX", (gateway.nodeid,), ()
    )  # fmt: skip
    assert good.verdict == GO
    bad_run = (*tests, gateway, failed("tests/infra/test_gateway.py::test_tls"))
    bad = decide(*bad_run, decisions=equivalent("tests/infra/test_gateway.py"))
    assert line(bad, "1.2-01")[0::3] == (Status.BLOCKER, ("tests/infra/test_gateway.py::test_tls",))
    assert bad.verdict == NO_GO


def test_an_equivalent_whose_tests_did_not_run_or_whose_file_is_missing_is_a_blocker(
    tmp_path: Path,
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "gateway.md").write_text("the deviation\n")
    by_file = decide(*GREEN[:2], decisions=equivalent("docs/gateway.md"), root=tmp_path)
    assert line(by_file, "1.2-01")[0::2] == (Status.EQUIVALENT, ("docs/gateway.md",))
    missing = decide(*GREEN[:2], decisions=equivalent("docs/nginx.md"), root=tmp_path)
    assert line(missing, "1.2-01")[:2] == (
        Status.BLOCKER, "the equivalent's evidence is missing in this run: docs/nginx.md"
    )  # fmt: skip
    not_run = decide(*GREEN[:2], decisions=equivalent("tests/infra/test_gateway.py::test_x"))
    assert status(not_run, "1.2-01") is Status.BLOCKER
    prefix_only = decide(
        *GREEN[:2], passed("tests/infra/test_gateway.py::test_xy"),
        decisions=equivalent("tests/infra/test_gateway.py::test_x"),
    )  # fmt: skip
    assert status(prefix_only, "1.2-01") is Status.BLOCKER  # test_xy is not test_x


def test_skipped_tests_are_no_evidence() -> None:
    report = decide(*GREEN[:2], skipped("tests/b.py::test_ingress", "1.2-01"))
    assert line(report, "1.2-01")[:2] == (
        Status.BLOCKER, "no evidence in this run: its 1 tests were skipped"
    )  # fmt: skip
    assert report.verdict == NO_GO
    half = decide(*GREEN, skipped("tests/b.py::test_more", "1.2-01"))
    assert line(half, "1.2-01")[:3] == (
        Status.APPROVED, "1 tests passed, 1 skipped", ("tests/b.py::test_ingress",)
    )  # fmt: skip


def test_a_line_neither_tested_nor_decided_is_an_unclassified_blocker() -> None:
    report = decide(*GREEN[:2])
    assert line(report, "1.2-01")[:2] == (
        Status.BLOCKER, "unclassified: no test claims it and no decision covers it"
    )  # fmt: skip
    assert report.verdict == NO_GO


def test_failures_outside_the_checklist_are_listed_without_deciding() -> None:
    report = decide(*GREEN, failed("tests/x.py::test_unrelated"))
    assert report.verdict == GO
    assert report.failed_outside_checklist == ("tests/x.py::test_unrelated",)


def test_ids_that_are_not_checklist_lines_are_refused() -> None:
    with pytest.raises(ReportError, match=r"^not lines of orr/items.yaml: 9\.9-99$"):
        decide(*GREEN, passed("tests/x.py::test_y", "9.9-99"))


# --- the real checklist -----------------------------------------------------------------------


def real_report() -> Report:
    items = load_items()
    ids = list(items)
    tests = [passed(f"tests/t.py::test_{n}", i) for n, i in enumerate(ids[:150])]
    tests += [failed("tests/t.py::test_bad", ids[3]), skipped("tests/t.py::test_skip", ids[160])]
    return build_report("local", items, run(*tests), {}, load_risks(items))


def test_every_line_of_the_checklist_appears_once_and_the_totals_add_up(tmp_path: Path) -> None:
    report = decode(write(real_report(), tmp_path)[0].read_bytes())
    assert [x.id for x in report.lines] == list(load_items())
    s = report.summary
    assert s.total == len(report.lines) == 233
    statuses = [getattr(s, x.value) for x in Status]
    assert sum(statuses) == s.total
    assert s.completed == s.approved + s.equivalent
    assert (s.approved, s.blocker) == (149, 84)
    for name in ["total", "completed", *(x.value for x in Status)]:
        assert sum(getattr(x.totals, name) for x in report.sections) == getattr(s, name)
    assert [x.section for x in report.sections] == list(
        dict.fromkeys(x.section for x in report.lines)
    )
    assert [x.role for x in report.signoff] == [
        "Tech Lead", "DevOps Lead", "Security Lead", "Product Manager",
    ]  # fmt: skip
    assert {x.name for x in report.signoff} == {"—"}


def test_risks_name_lines_of_the_checklist_and_test_files_that_exist(tmp_path: Path) -> None:
    risks = load_risks(load_items())
    assert [r.severity.value for r in risks] == ["High", "Medium", "Low", "Medium"]
    for risk in risks:
        for prefix in risk.tests:
            assert (ROOT / prefix.split("::")[0]).is_file(), prefix
    bad = tmp_path / "risks.yaml"
    bad.write_text(RISKS.read_text().replace('"2.1-04"', '"2.1-99"', 1))
    with pytest.raises(Exception, match=r"risks.yaml: \[0\]\.orr: 2\.1-99 is not a line"):
        load_risks(load_items(), bad)


def test_a_risk_is_proven_only_by_its_lines_and_tests_passing() -> None:
    items = load_items()
    risk = load_risks(items)[0]
    claims = [passed(f"tests/t.py::test_{i}", i) for i in items]
    all_pass = [*claims, *(passed(p) for p in risk.tests)]
    proven = build_report("local", items, run(*all_pass), {}, [risk])
    assert proven.risks[0].proven
    one_failed = [*all_pass[:-1], failed(risk.tests[-1])]
    assert not build_report("local", items, run(*one_failed), {}, [risk]).risks[0].proven
    untested = build_report("local", items, run(*claims), {}, [risk])
    assert not untested.risks[0].proven


# --- provenance and the command ---------------------------------------------------------------


def test_results_of_another_commit_or_a_dirty_tree_are_refused_in_one_line() -> None:
    with pytest.raises(ReportError) as err:
        check_provenance(run(commit="1" * 40), COMMIT, False, True, "r.json")
    assert str(err.value) == (
        "r.json: results of commit 111111111111, not of HEAD c0ffee000000: run make test "
        "(or make orr RUN=1) on this commit"
    )
    with pytest.raises(ReportError, match=r"^r.json: results were run on a dirty tree: commit"):
        check_provenance(run(dirty=True), COMMIT, False, False, "r.json")
    with pytest.raises(ReportError, match=r"^r.json: results are fine but the tree is dirty"):
        check_provenance(run(), COMMIT, True, False, "r.json")
    check_provenance(run(dirty=True), COMMIT, True, True, "r.json")
    check_provenance(run(), COMMIT, False, False, "r.json")


def test_the_command_refuses_results_of_another_commit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results.json"
    results.write_bytes(encode_results(run(*GREEN, commit="1" * 40)))
    assert main(["--results", str(results), "--out", str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"orr: {results}: results of commit 111111111111, not of HEAD")
    assert not (tmp_path / "out").exists()


def test_the_report_directory_is_ignored_by_git() -> None:
    done = subprocess.run(
        ["git", "check-ignore", "-q", "orr-report/local.html"], cwd=ROOT, check=False
    )
    assert done.returncode == 0


# --- the pages --------------------------------------------------------------------------------


def test_markdown_has_the_verdict_summary_risks_and_escaped_cells() -> None:
    report = decide(*GREEN[:2], failed("tests/b.py::test_ingress|pipe", "1.2-01"))
    md = render_md.render(report)
    assert "## Verdict: NO-GO" in md
    assert "| 4 | 2 | 2 | 0 | 1 | 0 | 1 |" in md
    assert "failed: `tests/b.py::test_ingress\\|pipe`" in md
    assert "| Tech Lead | — | — | — |" in md


def test_the_html_checks_pass_on_the_page_and_catch_a_broken_one() -> None:
    report = real_report()
    html = render_html.render(report)
    assert problems(html, report) == []
    first = report.sections[0]
    wrong_total = html.replace(
        f'data-section="{first.section}" data-count="total">{first.totals.total}<',
        f'data-section="{first.section}" data-count="total">{first.totals.total + 1}<',
    )
    assert problems(wrong_total, report) == [
        f"{first.section} total: page shows {first.totals.total + 1}, JSON {first.totals.total}"
    ]
    broken = html.replace(f'id="{first.anchor}"', 'id="elsewhere"')
    assert problems(broken, report) == [f"broken link: #{first.anchor}"]
    outside = html.replace('href="#risks"', 'href="https://example.com/x"')
    assert problems(outside, report) == ["link out of the page: https://example.com/x"]
    other_verdict = html.replace(">NO-GO</p>", ">GO</p>", 1)
    assert problems(other_verdict, report) == ["verdict: page says 'GO', JSON 'NO-GO'"]
    loading = html.replace("</body>", '<script src="x.js"></script></body>')
    assert problems(loading, report) == ["loads something: <script>"]


def test_everything_on_the_page_is_escaped() -> None:
    report = decide(*GREEN, failed("tests/b.py::test_<b>x</b>", "1.2-01"))
    html = render_html.render(report)
    assert "An ingress &lt;running&gt;" in html
    assert "<running>" not in html
    assert "test_&lt;b&gt;x&lt;/b&gt;" in html
    assert "<b>" not in html


@pytest.mark.slow
def test_the_page_renders_in_headless_chromium_with_the_json_totals_and_no_broken_link(
    tmp_path: Path,
) -> None:
    source, _, page = write(real_report(), tmp_path / "out")
    report = decode(source.read_bytes())
    dom = headless(page, tmp_path / "profile", "--dump-dom").stdout
    assert 'id="verdict"' in dom
    assert 'class="totals"' in dom
    assert problems(dom, report) == []
    shot = tmp_path / "page.png"
    headless(page, tmp_path / "profile", "--window-size=1280,1000", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    broken = tmp_path / "broken.html"
    broken.write_text(page.read_text().replace('id="risks"', 'id="risk"'))
    assert problems(headless(broken, tmp_path / "profile", "--dump-dom").stdout, report) == [
        "broken link: #risks"
    ]


@pytest.mark.slow
def test_run_runs_the_suite_with_the_evidence_plugin_and_reports_its_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\nmarkers =\n    orr(*ids): ORR lines\n")
    (suite / "test_sample.py").write_text(
        "import pytest\n\n\n@pytest.mark.orr('1.1-01')\ndef test_good():\n    pass\n\n\n"
        "def test_orr_1_1_02_bad():\n    assert False\n"
    )
    out = tmp_path / "out"
    argv = ["--run", "--allow-dirty", "--results", str(tmp_path / "r.json"), "--out", str(out)]
    pytest_args = ["-p", "no:cacheprovider", "-c", str(suite / "pytest.ini"), str(suite)]
    assert main([*argv, "--", *pytest_args]) == 1
    assert capsys.readouterr().out.startswith(f"{out / 'local.html'}: NO-GO (")
    report = decode((out / "local.json").read_bytes())
    assert report.commit == git_state(ROOT)[0]
    assert report.run.exit_status == 1
    assert report.run.tests == 2
    bad = next(x for x in report.lines if x.id == "1.1-02")
    assert (bad.status, bad.failed) == (Status.BLOCKER, ("test_sample.py::test_orr_1_1_02_bad",))
    good = next(x for x in report.lines if x.id == "1.1-01")
    assert good.evidence == ("test_sample.py::test_good",)
    assert LABELS[good.status] in {"Approved", "Approved (equivalent)"}


@pytest.mark.slow
def test_the_command_lists_the_blocker_in_both_pages(tmp_path: Path) -> None:
    """As `make orr` runs it, ``python -m``: the report module is then ``__main__`` and its
    statuses must still be recognised by the renderers (they compare values, not identities)."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\nmarkers =\n    orr(*ids): ORR lines\n")
    (suite / "test_sample.py").write_text("def test_orr_1_1_02_bad():\n    assert False\n")
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cap_ops.orr.report",
            "--run",
            "--allow-dirty",
            "--results",
            str(tmp_path / "r.json"),
            "--out",
            str(out),
            "--",
            "-p",
            "no:cacheprovider",
            "-c",
            str(suite / "pytest.ini"),
            str(suite),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    markdown = (out / "local.md").read_text()
    listed = markdown.split("## Blockers\n", 1)[1].split("\n## ", 1)[0]
    assert "- **1.1-02** " in listed
    page = (out / "local.html").read_text()
    blockers = page.split('<section id="blockers">', 1)[1].split("</section>", 1)[0]
    assert "Blockers (0)" not in blockers
    assert "1.1-02" in blockers


def test_run_on_a_dirty_tree_needs_allow_dirty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cap_ops.orr.report.git_state", lambda root: (COMMIT, True))
    assert main(["--run", "--results", str(tmp_path / "r.json")]) == 2
    assert capsys.readouterr().err == (
        "orr: the tree is dirty: commit first, or pass --allow-dirty\n"
    )
    assert not (tmp_path / "r.json").exists()  # the suite did not run
