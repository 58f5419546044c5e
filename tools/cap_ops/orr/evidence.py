"""The ORR evidence of a pytest run: which checklist ids each test claims, and its outcome.

A pytest plugin (``pytest_plugins = ["cap_ops.orr.evidence"]`` in ``tests/conftest.py``, or
``-p cap_ops.orr.evidence``). At collection every test carries the ids it claims (its ``orr``
markers and the id in a ``test_orr_…`` name) in ``item.user_properties``, so that the reports of
pytest-xdist's workers bring them to the controller; the controller keeps one outcome per test
(a failed setup, call or teardown is ``failed``; a skipped setup or call, or an xfail, is
``skipped``) and at the end of the session writes :class:`RunResults` as JSON, atomically, to
``--orr-results PATH``, else ``$CAP_ORR_RESULTS``, else :data:`DEFAULT_RESULTS`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import pytest
from msgspec import Meta, Struct

from cap_ops.backup.fsutil import write_private_atomic
from cap_ops.orr.items import TEST_PREFIX, OrrId, id_in_test_name
from cap_verifier.typed_yaml import ConfigError, describe

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_RESULTS = ROOT / ".cache" / "orr" / "results.json"
RESULTS_ENV = "CAP_ORR_RESULTS"
PROPERTY = "orr"
"""The name of the ``user_properties`` entry that carries a test's ids."""

Outcome = Literal["passed", "failed", "skipped"]
Commit = Annotated[str, Meta(pattern=r"^([0-9a-f]{40}|)$")]
UtcTime = Annotated[datetime, Meta(tz=True)]


class TestOutcome(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One test of the run: its node id, its outcome and the ORR ids it claims (maybe none)."""

    __test__ = False  # a class named Test…, not a test class

    nodeid: Annotated[str, Meta(min_length=1)]
    outcome: Outcome
    orr: tuple[OrrId, ...] = ()


class RunResults(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A run of the suite: the commit it tested (``""`` outside a git checkout, then ``dirty``),
    when, which tests the ``-m``/``-k`` expressions and the paths chose, how it exited, and
    every test that reported, by node id."""

    commit: Commit
    dirty: bool
    started: UtcTime
    finished: UtcTime
    selection: str
    exit_status: int
    tests: tuple[TestOutcome, ...]
    args: tuple[str, ...] = ()
    """The paths or node ids the run was given (empty: the configured testpaths)."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RunResults)


def encode_results(results: RunResults) -> bytes:
    return _encoder.encode(results)


def load_results(path: Path) -> RunResults:
    """The results file at ``path``; unreadable, not JSON or not the format is one line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as err:
        raise ConfigError(f"{path}: {describe(err)}") from None
    except msgspec.DecodeError:
        raise ConfigError(f"{path}: not a results file (not valid JSON)") from None


def outcomes_by_id(results: RunResults) -> dict[str, list[TestOutcome]]:
    """The tests of the run behind each ORR id they claim."""
    by_id: dict[str, list[TestOutcome]] = {}
    for test in results.tests:
        for orr_id in test.orr:
            by_id.setdefault(orr_id, []).append(test)
    return by_id


def claimed_ids(item: pytest.Item) -> tuple[str, ...]:
    """The ids ``item`` claims: its markers' arguments, then the id of a ``test_orr_`` name."""
    ids = [str(i) for mark in item.iter_markers(PROPERTY) for i in mark.args]
    name = getattr(item, "originalname", item.name)
    if name.startswith(TEST_PREFIX) and (from_name := id_in_test_name(name)):
        ids.append(from_name)
    return tuple(dict.fromkeys(ids))


def git_state(root: Path = ROOT) -> tuple[str, bool]:
    """HEAD of the checkout at ``root`` and whether it has changes not committed (untracked
    files included); ``("", True)`` when there is no git or no checkout."""
    try:
        head = _git(root, "rev-parse", "HEAD").strip()
        changes = _git(root, "status", "--porcelain")
    except (OSError, subprocess.CalledProcessError):
        return "", True
    return head, bool(changes.strip())


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout


def _worse(before: Outcome | None, report: pytest.TestReport) -> Outcome | None:
    """The test's outcome after one more of its reports: any failure fails it; a setup or call
    that skips skips it; a passing teardown changes nothing."""
    if before == "failed" or report.failed:
        return "failed"
    if report.when == "teardown":
        return before
    if report.skipped:
        return "skipped"
    return "passed" if report.when == "call" else before


def _selection(config: pytest.Config) -> str:
    parts = []
    for flag, value in (("-m", config.option.markexpr), ("-k", config.option.keyword)):
        if value:
            parts += [flag, value]
    return shlex.join(parts)


def _reported_ids(properties: Iterable[tuple[str, object]]) -> tuple[str, ...]:
    for name, value in properties:
        if name == PROPERTY and isinstance(value, list | tuple):
            return tuple(str(i) for i in value)
    return ()


class Recorder:
    """The controller's record of the run (the only process when xdist is off)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started = datetime.now(UTC)
        self.outcomes: dict[str, Outcome | None] = {}
        self.ids: dict[str, tuple[str, ...]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.ids.setdefault(report.nodeid, _reported_ids(report.user_properties))
        self.outcomes[report.nodeid] = _worse(self.outcomes.get(report.nodeid), report)

    def results(self, exit_status: int) -> RunResults:
        commit, dirty = git_state()
        tests = tuple(
            TestOutcome(nodeid=nodeid, outcome=outcome, orr=self.ids[nodeid])
            for nodeid, outcome in sorted(self.outcomes.items())
            if outcome is not None
        )
        return RunResults(
            commit=commit,
            dirty=dirty,
            started=self.started,
            finished=datetime.now(UTC),
            selection=_selection(self.config),
            exit_status=exit_status,
            tests=tests,
            args=tuple(self.config.args),
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.config.option.collectonly:
            return
        path = results_path(self.config)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private_atomic(path, encode_results(self.results(exitstatus)))


def results_path(config: pytest.Config) -> Path:
    option: str | None = config.getoption("orr_results")
    return Path(option or os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS)


COLLECTED = pytest.StashKey[dict[str, tuple[str, ...]]]()
"""Every collected test's ids by node id, before ``-m``/``-k`` deselect any (see
:func:`collected_claims`)."""


def collected_claims(config: pytest.Config) -> dict[str, tuple[str, ...]]:
    """The ORR ids of every test this process collected, deselected ones included."""
    return config.stash.get(COLLECTED, {})


# --- hooks ---------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--orr-results",
        metavar="PATH",
        default=None,
        help=f"where to write the ORR evidence of the run (default: ${RESULTS_ENV}, "
        f"else {DEFAULT_RESULTS.relative_to(ROOT)})",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[COLLECTED] = {}
    if not hasattr(config, "workerinput"):  # the controller, or the only process
        config.pluginmanager.register(Recorder(config), "orr-evidence-recorder")


def pytest_itemcollected(item: pytest.Item) -> None:
    ids = claimed_ids(item)
    item.user_properties.append((PROPERTY, ids))
    item.config.stash[COLLECTED][item.nodeid] = ids
