"""The ORR evidence plugin in a pytest of its own, on a synthetic test file: one outcome per test
with the ids it claims, alone and under pytest-xdist; a damaged results file is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cap_ops.orr.evidence import RESULTS_ENV, RunResults, load_results, outcomes_by_id
from cap_verifier.typed_yaml import ConfigError

ROOT = Path(__file__).resolve().parents[2]

SYNTHETIC = """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("setup fails")

@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown fails")

@pytest.mark.orr("1.1-01")
def test_passes():
    pass

@pytest.mark.orr("1.1-02", "1.1-03")
def test_fails():
    assert False

@pytest.mark.orr("1.1-04")
def test_skips():
    pytest.skip("no cluster here")

@pytest.mark.orr("1.1-05")
def test_setup_error(broken):
    pass

@pytest.mark.orr("1.1-06")
def test_teardown_error(bad_teardown):
    pass

@pytest.mark.orr("1.1-08")
def test_orr_1_1_07_by_name_and_marker():
    pass

@pytest.mark.orr("1.2-01")
@pytest.mark.parametrize("n", [1, 2])
def test_family(n):
    assert n == 1

def test_claims_nothing():
    pass
"""

EXPECTED = {
    "test_passes": ("passed", ("1.1-01",)),
    "test_fails": ("failed", ("1.1-02", "1.1-03")),
    "test_skips": ("skipped", ("1.1-04",)),
    "test_setup_error": ("failed", ("1.1-05",)),
    "test_teardown_error": ("failed", ("1.1-06",)),
    "test_orr_1_1_07_by_name_and_marker": ("passed", ("1.1-08", "1.1-07")),
    "test_family[1]": ("passed", ("1.2-01",)),
    "test_family[2]": ("failed", ("1.2-01",)),
    "test_claims_nothing": ("passed", ()),
}


def run_synthetic(tmp_path: Path, *args: str) -> RunResults:
    """The synthetic file under a pytest of its own with the plugin; its results file."""
    (tmp_path / "test_synthetic.py").write_text(SYNTHETIC, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    orr(*ids): ORR lines\n")
    results = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if k not in (RESULTS_ENV, "PYTEST_ADDOPTS")}
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "cap_ops.orr.evidence"]
    argv += ["--orr-results", str(results), *args, "test_synthetic.py"]
    done = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1, done.stdout + done.stderr  # 1: some tests failed
    return load_results(results)


def head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["alone", "xdist"])
def test_each_test_has_one_outcome_and_its_ids(tmp_path: Path, workers: list[str]) -> None:
    results = run_synthetic(tmp_path, *workers, "-m", "not nothing")
    found = {t.nodeid.split("::", 1)[1]: (t.outcome, t.orr) for t in results.tests}
    assert found == EXPECTED
    assert results.exit_status == 1
    assert results.selection == "-m 'not nothing'"
    assert results.args == ("test_synthetic.py",)
    assert results.commit == head()
    assert results.started <= results.finished


def test_outcomes_by_id_lists_the_tests_behind_each_line(tmp_path: Path) -> None:
    by_id = outcomes_by_id(run_synthetic(tmp_path))
    assert sorted(by_id) == [
        *("1.1-01", "1.1-02", "1.1-03", "1.1-04", "1.1-05", "1.1-06", "1.1-07", "1.1-08"),
        "1.2-01",
    ]
    assert [t.outcome for t in by_id["1.2-01"]] == ["passed", "failed"]
    assert [t.nodeid for t in by_id["1.1-03"]] == ["test_synthetic.py::test_fails"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not json", "not a results file (not valid JSON)"),
        (b"{}", "commit: required key is missing"),
        (
            b'{"commit": "", "dirty": true, "started": "2025-01-01T00:00:00Z", '
            b'"finished": "2025-01-01T00:00:01Z", "selection": "", "exit_status": 0, '
            b'"tests": [{"nodeid": "t", "outcome": "broken"}]}',
            "tests[0].outcome: Invalid enum value 'broken'",
        ),
        (
            b'{"commit": "", "dirty": true, "started": "2025-01-01T00:00:00Z", '
            b'"finished": "2025-01-01T00:00:01Z", "selection": "", "exit_status": 0, '
            b'"tests": [{"nodeid": "t", "outcome": "passed", "orr": ["1.1-1"]}]}',
            "tests[0].orr[0]: Expected `str` matching regex",
        ),
    ],
    ids=["not-json", "empty", "outcome", "id"],
)
def test_a_damaged_results_file_is_one_line(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_results(path)
    assert str(caught.value).startswith(f"{path}: {problem}")
    assert "\n" not in str(caught.value)


def test_a_missing_results_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"results\.json: cannot read: No such file"):
        load_results(tmp_path / "results.json")
