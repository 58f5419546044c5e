"""The verdict of `make loadtest` (cap_ops.loadtest) on synthetic samples, and its OOM evidence
from a synthetic supervisord log and /proc/vmstat pair. No load is sent (locust is not imported:
it monkey-patches the interpreter)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from cap_ops import monitoring
from cap_ops.loadtest import (
    LoadSummary,
    Sample,
    ServiceHealth,
    Thresholds,
    judge_oom,
    oom_kills,
    percentile,
    plot,
    report_lines,
    sigkilled,
    summarize,
)

LIMITS = Thresholds(p95_ms=500.0, max_error_rate=0.01)
HEALTHY = ServiceHealth(peak_rss_bytes=250 * 2**20, oom_killed=False, detail="fine")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SUPERVISORD_OOM = """\
2026-11-30 07:54:00,435 INFO spawned: 'cap-verifier' with pid 4001
2026-11-30 07:58:12,002 WARN exited: cap-verifier (terminated by SIGKILL; not expected)
2026-11-30 07:58:13,010 INFO spawned: 'cap-verifier' with pid 4377
"""
SUPERVISORD_STOPPED = """\
2026-11-30 07:10:11,409 INFO stopped: cap-verifier (exit status 0)
2026-11-30 07:10:11,450 WARN exited: cap-dev-idp (terminated by SIGKILL; not expected)
"""


def vmstat(kills: int) -> str:
    return f"nr_free_pages 12345\noom_kill {kills}\nnr_zone_active_anon 3\n"


def samples(count: int, latency_ms: float, failed_every: int = 0) -> list[Sample]:
    """``count`` requests 0.1 s apart, every ``failed_every``-th one failed (0: none)."""
    return [
        Sample(i / 10, "POST /verify", latency_ms, not (failed_every and i % failed_every == 0))
        for i in range(count)
    ]


def summary(run: list[Sample], health: ServiceHealth | None = HEALTHY) -> LoadSummary:
    return summarize(
        run,
        env="local",
        started=datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
        duration_s=30.0,
        target_rps=10.0,
        thresholds=LIMITS,
        health=health,
        tokens_fetched=1,
        plot="orr-report/loadtest-local.png",
    )


def test_thresholds_are_the_slo_of_alerts_config() -> None:
    slo = monitoring.load().slo
    limits = Thresholds.from_slo()
    assert limits.p95_ms == slo.objective(0.95).threshold_seconds * 1000 == 500.0
    assert limits.max_error_rate == slo.max_error_ratio == 0.01


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.95) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.95)


def test_a_fast_clean_run_passes() -> None:
    result = summary(samples(300, 40.0))
    assert (result.requests, result.failures, result.error_rate) == (300, 0, 0.0)
    assert result.p95_ms == result.p99_ms == 40.0
    assert result.passed
    assert result.by_endpoint == {"POST /verify": 300}


def test_a_slow_run_fails_on_p95() -> None:
    slow = samples(95, 40.0) + samples(5, 800.0)  # 5 % slow: p95 still fast
    assert summary(slow).passed
    slower = samples(94, 40.0) + samples(6, 800.0)  # 6 % slow: p95 is 800 ms
    result = summary(slower)
    assert result.p95_ms == 800.0
    assert not result.passed
    assert summary(samples(100, 500.0)).passed is False  # the threshold is strict


def test_an_erroring_run_fails_on_the_error_rate() -> None:
    result = summary(samples(200, 40.0, failed_every=50))  # 4 of 200: 2 %
    assert (result.failures, result.error_rate) == (4, 0.02)
    assert not result.passed
    assert summary(samples(200, 40.0, failed_every=200)).passed  # 1 of 200: 0.5 %


def test_a_run_without_requests_fails() -> None:
    result = summary([])
    assert (result.requests, result.p95_ms, result.error_rate, result.passed) == (
        0,
        None,
        1.0,
        False,
    )


def test_an_oom_kill_fails_the_run() -> None:
    killed = ServiceHealth(peak_rss_bytes=2**30, oom_killed=True, detail="killed")
    result = summary(samples(300, 40.0), killed)
    assert result.oom_killed is True
    assert not result.passed


def test_unmeasured_service_is_null_not_invented() -> None:
    result = summary(samples(300, 40.0), health=None)
    assert (result.peak_rss_bytes, result.oom_killed) == (None, None)
    assert result.passed
    lines = report_lines(result)
    assert any(line.startswith("peak RSS") and "not measured" in line for line in lines)
    assert any(line.startswith("OOM-killed") and "not measured" in line for line in lines)


def test_oom_evidence_from_supervisord_log_and_vmstat() -> None:
    assert sigkilled(SUPERVISORD_OOM)
    assert not sigkilled(SUPERVISORD_STOPPED)  # a clean stop, and another program's SIGKILL
    assert sigkilled(SUPERVISORD_STOPPED, "cap-dev-idp")
    kills = oom_kills(vmstat(3)) - oom_kills(vmstat(2))
    assert judge_oom(kills, sigkilled(SUPERVISORD_OOM), [])[0]
    assert judge_oom(kills, False, [4002])[0]  # a worker gone, supervisord saw nothing
    oom, detail = judge_oom(0, sigkilled(SUPERVISORD_OOM), [4001])  # kill -9, not the kernel
    assert not oom
    assert detail == (
        "kernel OOM kills during the run: 0; service processes lost: 4001; "
        "supervisord: killed by SIGKILL"
    )
    assert not judge_oom(1, False, [])[0]  # the kernel killed something else
    with pytest.raises(ValueError, match="oom_kill"):
        oom_kills("nr_free_pages 1\n")


def test_the_summary_is_the_json_the_report_reads(tmp_path: Path) -> None:
    result = summary(samples(300, 40.0, failed_every=100))
    document = msgspec.json.decode(msgspec.json.encode(result))
    assert set(document) >= {
        "env",
        "started",
        "duration_s",
        "target_rps",
        "requests",
        "failures",
        "error_rate",
        "p95_ms",
        "p99_ms",
        "peak_rss_bytes",
        "oom_killed",
        "passed",
        "thresholds",
        "plot",
    }
    assert document["started"] == "2026-11-30T08:00:00+00:00"
    assert msgspec.json.decode(msgspec.json.encode(result), type=LoadSummary) == result


def test_the_plot_is_a_png(tmp_path: Path) -> None:
    png = tmp_path / "out" / "loadtest-local.png"
    plot(samples(300, 40.0, failed_every=30), LIMITS, "local", png)
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_summary_logic_does_not_import_locust() -> None:
    """locust monkey-patches the interpreter on import: the report's readers must not pay."""
    probe = "import sys, cap_ops.loadtest; print(sorted({'locust', 'gevent'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
