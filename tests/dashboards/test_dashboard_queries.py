"""The queries of the ORR 3.2 and SLO panels compute what their titles claim: evaluated by
``promtool test rules`` (Prometheus 2.42's engine, the recording rules of alerts/ loaded) on
series whose answer is known, as Grafana sends them ($__rate_interval 5m, $job the config's)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from dashboard_checks import ALERTS, COMMITTED, Board, load_board, panel_by_title
from infra.model.certs import CERTIFICATE

from cap_ops import monitoring
from cap_ops.monitoring import CACHE_HIT_RATIO, Monitoring, error_ratio
from support.require import need

MINUTES = 20  # of data; every range query of 5m or 1m sees whole, linear steps
EVAL_TIME = f"{MINUTES}m"
RATE_INTERVAL = "5m"
# Per minute: the API answers 594 ok and 6 failed (1 %), /healthz 600 (outside the SLIs).
OK, FAILED, PROBES = 594, 6, 600
AUTH_REFUSED = 60  # per minute, reason "expired": 10 % of the API requests
HITS, MISSES = 54, 6  # per minute: 90 % hits
CERT_DAYS, CERT_MANAGER_DAYS = 20, 45

Expected = dict[tuple[str, str], list[tuple[str, float]]]
"""(panel title, refId) -> [(labels of each sample, value)]."""


def counter(name: str, labels: str, per_minute: int) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": f"0+{per_minute}x{MINUTES}"}


def gauge(name: str, labels: str, value: float) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": f"{value:g}x{MINUTES}"}


def input_series(t: Monitoring) -> list[dict[str, str]]:
    job = f'job="{t.job}"'
    verify = f'{job},instance="pod-a",endpoint="/verify",method="POST"'
    probe = f'{t.probe_selector},instance="https://verifier.example"'
    now = MINUTES * 60
    return [
        counter("cap_verifier_requests_total", f'{verify},code="200",result="ok"', OK),
        counter("cap_verifier_requests_total", f'{verify},code="500",result="fail"', FAILED),
        counter(
            "cap_verifier_requests_total",
            f'{job},instance="pod-a",endpoint="/healthz",method="GET",code="200",result="ok"',
            PROBES,
        ),
        counter("cap_verifier_request_duration_seconds_bucket", f'{verify},le="0.1"', OK),
        counter("cap_verifier_request_duration_seconds_bucket", f'{verify},le="+Inf"', OK),
        counter("cap_verifier_auth_failures_total", f'{job},reason="expired"', AUTH_REFUSED),
        counter("cap_verifier_cache_hits_total", f'{job},instance="pod-a"', HITS),
        counter("cap_verifier_cache_misses_total", f'{job},instance="pod-a"', MISSES),
        gauge("up", f'{job},instance="pod-a"', 1),
        gauge("up", f'{job},instance="pod-b"', 0),
        gauge("probe_success", probe, 1),
        gauge("probe_ssl_earliest_cert_expiry", probe, now + CERT_DAYS * 86400),
        gauge(
            "certmanager_certificate_expiration_timestamp_seconds",
            f'namespace="cap-verifier",name="{CERTIFICATE}"',
            now + CERT_MANAGER_DAYS * 86400,
        ),
    ]


def expected(t: Monitoring) -> Expected:
    """What each query must answer for :func:`input_series`, computed as Prometheus does."""
    job = f'{{job="{t.job}"}}'
    api = (OK + FAILED) / 60
    errors = (FAILED * 5 / 300) / (api * 5 * 60 / 300)
    observed = OK * 5 / 300  # all in the first bucket, le 0.1: linear inside it
    p95, p99 = (0.1 * (q * observed / observed) for q in (0.95, 0.99))  # the ORR's p95/p99
    refused = AUTH_REFUSED * 5 / 300
    return {
        ("Total Requests", "A"): [("{}", api)],
        ("Request Results", "A"): [
            ('{result="ok"}', OK * 5 / 300),
            ('{result="fail"}', FAILED * 5 / 300),
        ],
        ("Error Rate", "A"): [(f"{error_ratio('5m')}{job}", errors)],
        ("Request Duration", "A"): [(f"{t.latency_slis[0.95]}{job}", p95)],
        ("Request Duration", "B"): [(f"{t.latency_slis[0.99]}{job}", p99)],
        ("Cache Hit Rate", "A"): [
            (
                f"{CACHE_HIT_RATIO}{job}",
                (HITS / 60) / (HITS / 60 + MISSES / 60),
            )
        ],
        ("Auth Failures by Reason", "A"): [(f'{{job="{t.job}",reason="expired"}}', refused / api)],
        ("Auth Failures by Reason", "B"): [(job, refused / api)],
        (f"Availability ({t.slo.period})", "A"): [
            (job, 1 - (FAILED * MINUTES) / ((OK + FAILED) * MINUTES))
        ],
        (f"Error Budget Remaining ({t.slo.period})", "A"): [
            (job, 1 - (FAILED * MINUTES) / ((OK + FAILED) * MINUTES) / t.error_budget)
        ],
        ("Error Budget Burn Rate", "A"): [(job, errors / t.error_budget)],
        ("5xx per Minute", "A"): [(job, FAILED)],
        ("Targets Down", "A"): [("{}", 50)],
        ("Certificate Days Left", "A"): [('{instance="https://verifier.example"}', CERT_DAYS)],
        ("Certificate Days Left", "B"): [
            (f'{{namespace="cap-verifier",name="{CERTIFICATE}"}}', CERT_MANAGER_DAYS)
        ],
    }


def as_sent(expr: str, t: Monitoring) -> str:
    """The query as Grafana sends it for the config's job."""
    return expr.replace("$__rate_interval", RATE_INTERVAL).replace("$job", t.job)


def expr_of(board: Board, title: str, ref_id: str) -> str:
    (target,) = [t for t in panel_by_title(board, title)["targets"] if t["refId"] == ref_id]
    expr: str = target["expr"]
    return expr


def run_promtool(board: Board, answers: Expected, t: Monitoring, directory: Path) -> str:
    """``promtool test rules`` output; empty when every query gave its expected samples."""
    promtool = shutil.which("promtool")
    need(promtool is not None, "promtool (Debian package prometheus) is not installed")
    assert promtool is not None
    tests = [
        {
            "expr": as_sent(expr_of(board, title, ref_id), t),
            "eval_time": EVAL_TIME,
            "exp_samples": [{"labels": labels, "value": value} for labels, value in samples],
        }
        for (title, ref_id), samples in answers.items()
    ]
    unit_test = {
        "rule_files": [str(ALERTS / "verifier.recording.rules.yaml")],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input_series(t), "promql_expr_test": tests}],
    }
    path = directory / "dashboard-test.yaml"
    path.write_text(json.dumps(unit_test))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return "" if result.returncode == 0 else result.stdout + result.stderr


@pytest.fixture(scope="module")
def table() -> Monitoring:
    return monitoring.load()


def test_the_panels_compute_what_they_claim(table: Monitoring, tmp_path: Path) -> None:
    assert run_promtool(load_board(COMMITTED[0]), expected(table), table, tmp_path) == ""


def test_a_wrong_answer_is_caught(table: Monitoring, tmp_path: Path) -> None:
    answers = expected(table)
    answers[("Error Rate", "A")] = [(labels, 2 * v) for labels, v in answers[("Error Rate", "A")]]
    failure = run_promtool(load_board(COMMITTED[0]), answers, table, tmp_path)
    assert failure.count("expr:") == 1, failure
    assert f'expr: "{error_ratio("5m")}' in failure
