"""ORR 5.1 spot load test on the local environment: `python -m cap_ops.loadtest` for 30 s at
10 requests/s against `make up`, as a process (locust monkey-patches the interpreter). Its
verdict is the evidence for the 5.1 load lines on `local`; `make loadtest` runs the ORR's
full 5 minutes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from cap_ops.loadtest import LoadSummary
from cap_ops.smoke import EXPLICIT_VARS

pytestmark = pytest.mark.localenv

RATE = 10
DURATION_S = 30
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def spot_run(local_env: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report directory of one 30-second run; the run's exit code must say PASS."""
    out = tmp_path_factory.mktemp("orr-report")
    environ = {k: v for k, v in os.environ.items() if k not in EXPLICIT_VARS}
    command = [sys.executable, "-m", "cap_ops.loadtest"]
    options = ["--duration", f"{DURATION_S}s", "--rate", str(RATE), "--out", str(out)]
    result = subprocess.run(
        [*command, *options], check=False, env=environ, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, f"loadtest failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return out


@pytest.mark.slow
@pytest.mark.orr("5.1-11", "5.1-12", "5.1-13")  # 5.1-10 asks for 5 minutes: orr/decisions.yaml
def test_spot_load_at_10_rps_passes_on_local(spot_run: Path) -> None:
    summary = msgspec.json.decode((spot_run / "loadtest-local.json").read_bytes(), type=LoadSummary)
    assert summary.env == "local"
    assert (summary.target_rps, summary.duration_s) == (RATE, DURATION_S)
    expected = RATE * DURATION_S
    assert 0.9 * expected <= summary.requests <= expected + RATE, summary.requests
    assert summary.by_endpoint.keys() == {
        "POST /verify",
        "POST /policy/v2/compile",
        "GET /policy/v2/{id}",
    }
    assert summary.by_endpoint["POST /verify"] > summary.requests / 2  # mostly verify
    assert summary.tokens_fetched >= 1
    # The ORR's own criteria, decided by the tool against alerts/config.yaml's SLO.
    assert summary.p95_ms is not None
    assert summary.p95_ms < summary.thresholds.p95_ms
    assert summary.error_rate < summary.thresholds.max_error_rate
    assert summary.oom_killed is False, summary.service
    assert summary.peak_rss_bytes is not None
    assert summary.peak_rss_bytes > 0
    assert summary.passed


@pytest.mark.slow
def test_spot_load_plots_latency_over_time(spot_run: Path) -> None:
    summary = msgspec.json.decode((spot_run / "loadtest-local.json").read_bytes(), type=LoadSummary)
    png = spot_run / "loadtest-local.png"
    assert summary.plot == str(png)
    assert png.read_bytes().startswith(PNG_MAGIC)
