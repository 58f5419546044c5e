"""ORR 5.1 spot load test of a running CAP Verifier API (`make loadtest`).

Usage::

    python -m cap_ops.loadtest                               # the local environment, 10/s, 5m
    python -m cap_ops.loadtest --duration 30s --rate 10
    python -m cap_ops.loadtest --env staging --url https://verifier.example \\
        --token-url https://idp/oauth/token --client-id ID      # CLIENT_SECRET from the env

The target comes as for `make smoke` (``cap_ops.smoke``: options, or the variables URL,
TOKEN_URL, CLIENT_ID, CLIENT_SECRET, CA_CERT, CLIENT_CERT, CLIENT_KEY; else ``.local/env.json``).
locust drives a client's mix at a fixed arrival rate in this process (``cap_ops.loadgen``).
Against ``local`` the service's processes are watched as well: their peak RSS and whether one
was OOM-killed; elsewhere these come from the cluster and are reported as not measured.

Writes ``orr-report/loadtest-<env>.json`` (a ``LoadSummary``) and the latency-over-time plot
``orr-report/loadtest-<env>.png``, prints one line per figure, and exits 0 when the run passed
the ORR criteria (p95 and error rate under the SLO's thresholds of ``alerts/config.yaml``, no
OOM kill), 1 when it did not, 2 when there is nothing to run against.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import msgspec
import psutil
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cap_ops import durations, monitoring, smoke
from cap_ops.localenv import supervisor
from cap_ops.localenv.layout import Layout

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_RATE = 10.0
DEFAULT_DURATION = "5m"
LATENCY_QUANTILE = 0.95
"""The SLO's latency objective the ORR's "p95 < 500 ms" is (alerts/config.yaml, slo.latency)."""
SERVICE_PROGRAM = "cap-verifier"
REPORT_DIR = "orr-report"
NOT_MEASURED = "not measured"
UNWATCHED = "the service's processes are the cluster's: its metrics say (memory, OOMKilled)"


class Sample(msgspec.Struct, frozen=True, array_like=True):
    """One API request of the run."""

    at_s: float
    """Seconds from the start of the run to the request's start."""
    endpoint: str
    latency_ms: float
    ok: bool


class Thresholds(msgspec.Struct, frozen=True, kw_only=True):
    """The ORR 5.1 pass criteria, from the SLO (``alerts/config.yaml``)."""

    p95_ms: float
    max_error_rate: float

    @classmethod
    def from_slo(cls, table: monitoring.Monitoring | None = None) -> Thresholds:
        slo = (table or monitoring.load()).slo
        seconds = slo.objective(LATENCY_QUANTILE).threshold_seconds
        return cls(p95_ms=seconds * 1000, max_error_rate=slo.max_error_ratio)


class ServiceHealth(msgspec.Struct, frozen=True, kw_only=True):
    """What the run did to the service's processes (local only)."""

    peak_rss_bytes: int
    oom_killed: bool
    detail: str
    """One line: the kernel's OOM kills during the run, and which service processes were lost."""


class LoadSummary(msgspec.Struct, frozen=True, kw_only=True):
    """The run's figures and verdict: ``orr-report/loadtest-<env>.json``.

    ``peak_rss_bytes`` and ``oom_killed`` are null where they were not measured (a cluster:
    its own metrics say); ``passed`` is then decided on latency and errors alone.
    """

    env: str
    started: str
    """UTC start of the run, ISO 8601."""
    duration_s: float
    target_rps: float
    requests: int
    failures: int
    error_rate: float
    p95_ms: float | None
    p99_ms: float | None
    peak_rss_bytes: int | None
    oom_killed: bool | None
    service: str
    """One line on the service's processes: the OOM evidence, or why it was not measured."""
    tokens_fetched: int
    """Access tokens the client fetched (the first, then each refresh before expiry)."""
    by_endpoint: dict[str, int]
    """Requests per endpoint of the mix."""
    passed: bool
    thresholds: Thresholds
    plot: str
    """The latency-over-time PNG, relative to the repository root."""


def percentile(values: Sequence[float], quantile: float) -> float:
    """Nearest-rank percentile (the smallest value with at least ``quantile`` of all at or
    below it); ValueError on no values."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


def summarize(
    samples: Sequence[Sample],
    *,
    env: str,
    started: datetime,
    duration_s: float,
    target_rps: float,
    thresholds: Thresholds,
    health: ServiceHealth | None,
    tokens_fetched: int,
    plot: str,
) -> LoadSummary:
    """The figures and verdict of a run: passed when requests were made, p95 is under its
    threshold, the error rate under its maximum, and no service process was OOM-killed."""
    latencies = [sample.latency_ms for sample in samples]
    failures = sum(not sample.ok for sample in samples)
    error_rate = failures / len(samples) if samples else 1.0
    p95 = percentile(latencies, LATENCY_QUANTILE) if samples else None
    p99 = percentile(latencies, 0.99) if samples else None
    by_endpoint: dict[str, int] = {}
    for sample in samples:
        by_endpoint[sample.endpoint] = by_endpoint.get(sample.endpoint, 0) + 1
    passed = (
        p95 is not None
        and p95 < thresholds.p95_ms
        and error_rate < thresholds.max_error_rate
        and not (health is not None and health.oom_killed)
    )
    return LoadSummary(
        env=env,
        started=started.astimezone(UTC).isoformat(timespec="seconds"),
        duration_s=duration_s,
        target_rps=target_rps,
        requests=len(samples),
        failures=failures,
        error_rate=error_rate,
        p95_ms=p95,
        p99_ms=p99,
        peak_rss_bytes=health.peak_rss_bytes if health else None,
        oom_killed=health.oom_killed if health else None,
        service=health.detail if health else UNWATCHED,
        tokens_fetched=tokens_fetched,
        by_endpoint=dict(sorted(by_endpoint.items())),
        passed=passed,
        thresholds=thresholds,
        plot=plot,
    )


# -- the service's processes (local) -----------------------------------------------------


_KILLED = r"(?:exited|stopped): {program} \(terminated by SIGKILL\b"


def sigkilled(supervisord_log: str, program: str = SERVICE_PROGRAM) -> bool:
    """Whether supervisord's log (the part written during the run) records ``program`` dying
    of signal 9, the OOM killer's signal."""
    return re.search(_KILLED.format(program=re.escape(program)), supervisord_log) is not None


def oom_kills(vmstat: str) -> int:
    """The kernel's count of OOM kills since boot, from ``/proc/vmstat``'s ``oom_kill``."""
    for line in vmstat.splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill":
            return int(value)
    raise ValueError("/proc/vmstat has no oom_kill line")


def judge_oom(kernel_kills: int, killed_by_9: bool, lost_pids: Sequence[int]) -> tuple[bool, str]:
    """(OOM-killed, the evidence in one line): a kernel OOM kill during the run while the
    service lost a process (supervisord saw it die of SIGKILL, or a pid went away)."""
    lost = (
        f"service processes lost: {', '.join(map(str, sorted(lost_pids)))}"
        if lost_pids
        else "no service process lost"
    )
    signal = "; supervisord: killed by SIGKILL" if killed_by_9 else ""
    detail = f"kernel OOM kills during the run: {kernel_kills}; {lost}{signal}"
    return kernel_kills > 0 and (killed_by_9 or bool(lost_pids)), detail


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


@dataclass
class ServiceWatch:
    """The local service's processes during a run: supervisord's pid for the program and all
    its descendants (granian's workers), their summed RSS sampled by ``sample``."""

    layout: Layout
    program: str = SERVICE_PROGRAM
    vmstat: Path = Path("/proc/vmstat")
    peak_rss: int = 0
    seen: set[int] = field(default_factory=set)
    _kills_before: int = 0
    _log_offset: int = 0

    @property
    def _log(self) -> Path:
        return self.layout.logs / "supervisord.log"

    def start(self) -> None:
        pid = supervisor.pids(self.layout).get(self.program)
        if pid is None:
            raise smoke.UsageError(f"{self.program} is not running: run `make up` first")
        self._kills_before = oom_kills(self.vmstat.read_text())
        self._log_offset = self._log.stat().st_size if self._log.exists() else 0
        self._main = pid
        self.sample()

    def sample(self) -> None:
        """Add the current processes to those seen and raise the peak by their RSS sum."""
        try:
            processes = _tree(self._main)
        except psutil.NoSuchProcess:
            return
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
            self.seen.add(process.pid)
        self.peak_rss = max(self.peak_rss, total)

    def finish(self) -> ServiceHealth:
        self.sample()
        kills = oom_kills(self.vmstat.read_text()) - self._kills_before
        with self._log.open("rb") as log:
            log.seek(self._log_offset)
            written = log.read().decode("utf-8", "replace")
        lost = [pid for pid in self.seen if not psutil.pid_exists(pid)]
        oom, detail = judge_oom(kills, sigkilled(written, self.program), lost)
        return ServiceHealth(peak_rss_bytes=self.peak_rss, oom_killed=oom, detail=detail)


# -- the plot ----------------------------------------------------------------------------


def plot(samples: Sequence[Sample], thresholds: Thresholds, title: str, path: Path) -> None:
    """Latency over time: every request as a point (failures in red), the p95 per 10 s
    window as a line, and the p95 threshold."""
    figure = Figure(figsize=(10, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    good = [s for s in samples if s.ok]
    bad = [s for s in samples if not s.ok]
    axes.scatter([s.at_s for s in good], [s.latency_ms for s in good], s=4, alpha=0.4, label="ok")
    if bad:
        axes.scatter(
            [s.at_s for s in bad], [s.latency_ms for s in bad], s=10, c="red", label="failed"
        )
    windows: dict[int, list[float]] = {}
    for sample in samples:
        windows.setdefault(int(sample.at_s // 10), []).append(sample.latency_ms)
    starts = sorted(windows)
    axes.plot(
        [start * 10 + 5 for start in starts],
        [percentile(windows[start], LATENCY_QUANTILE) for start in starts],
        color="black",
        label="p95 per 10 s",
    )
    axes.axhline(thresholds.p95_ms, color="red", linestyle="--", label="p95 threshold")
    axes.set_yscale("log")
    axes.set_xlabel("seconds since start")
    axes.set_ylabel("latency (ms)")
    axes.set_title(title)
    axes.legend(loc="upper right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")


# -- the run -----------------------------------------------------------------------------


def _duration(text: str) -> float:
    try:
        value = float(durations.seconds(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cap_ops.loadtest",
        description="ORR 5.1 spot load test of a running CAP Verifier API.",
    )
    parser.add_argument(
        "--env",
        default="local",
        help="the environment's name, for the report's file names (default local: .local/env.json)",
    )
    smoke.add_target_options(parser)
    parser.add_argument(
        "--rate", type=smoke.positive, default=DEFAULT_RATE, help="requests per second (default 10)"
    )
    parser.add_argument(
        "--duration",
        type=_duration,
        default=durations.seconds(DEFAULT_DURATION),
        help=f"how long, a Prometheus duration (default {DEFAULT_DURATION})",
    )
    parser.add_argument(
        "--out", type=Path, help=f"the report directory (default <repository>/{REPORT_DIR})"
    )
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", args.env):
        parser.error(f"--env {args.env!r}: lower-case letters, digits and dashes")
    return args


Verdict = Literal["PASS", "FAIL"]


def report_lines(summary: LoadSummary) -> list[str]:
    """What the operator reads: one line per figure, then the verdict."""
    limits = summary.thresholds

    def ms(value: float | None) -> str:
        return "none" if value is None else f"{value:.1f} ms"

    rss = (
        NOT_MEASURED
        if summary.peak_rss_bytes is None
        else f"{summary.peak_rss_bytes / 2**20:.1f} MiB"
    )
    oom = NOT_MEASURED if summary.oom_killed is None else ("yes" if summary.oom_killed else "no")
    verdict: Verdict = "PASS" if summary.passed else "FAIL"
    mix = ", ".join(f"{name} {count}" for name, count in summary.by_endpoint.items())
    return [
        f"requests    {summary.requests} in {summary.duration_s:g} s "
        f"(target {summary.target_rps:g}/s: {summary.target_rps * summary.duration_s:g})",
        f"mix         {mix or 'none'}; tokens fetched {summary.tokens_fetched}",
        f"p95         {ms(summary.p95_ms)} (threshold {limits.p95_ms:g} ms)",
        f"p99         {ms(summary.p99_ms)}",
        f"errors      {summary.failures} ({summary.error_rate:.2%}, "
        f"maximum {limits.max_error_rate:.0%})",
        f"peak RSS    {rss}",
        f"OOM-killed  {oom} ({summary.service})",
        f"plot        {summary.plot}",
        f"{verdict} ORR 5.1 spot load test on {summary.env}",
    ]


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = parse_args(argv)
    environ = os.environ if environ is None else environ
    try:
        explicit = smoke.explicit_target(args, environ)
        if explicit is None and args.env != "local":
            raise smoke.UsageError(
                f"--env {args.env} needs URL, TOKEN_URL, CLIENT_ID and CLIENT_SECRET "
                "(options or environment)"
            )
        target = explicit or smoke.select_target(args, environ)
        thresholds = Thresholds.from_slo()
        # The processes are watched where they are this machine's: the environment of `make up`.
        local = explicit is None and args.env_file is None
        watch = ServiceWatch(Layout.default()) if local else None
        if watch is not None:
            watch.start()
    except (smoke.UsageError, supervisor.SupervisorError, OSError) as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # locust monkey-patches the interpreter (gevent) when imported: only a run imports it.
    from cap_ops import loadgen  # noqa: PLC0415

    out = args.out or smoke.repo_root() / REPORT_DIR
    started = datetime.now(UTC)
    samples: list[Sample] = []

    def record(at_s: float, endpoint: str, latency_ms: float, ok: bool) -> None:
        samples.append(Sample(at_s, endpoint, latency_ms, ok))

    try:
        run = loadgen.drive(
            target,
            rate=args.rate,
            duration_s=args.duration,
            record=record,
            tick=watch.sample if watch else None,
        )
    except loadgen.LoadError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    health = watch.finish() if watch else None
    png = out / f"loadtest-{args.env}.png"
    shown = png.relative_to(smoke.repo_root()) if png.is_relative_to(smoke.repo_root()) else png
    summary = summarize(
        samples,
        env=args.env,
        started=started,
        duration_s=args.duration,
        target_rps=args.rate,
        thresholds=thresholds,
        health=health,
        tokens_fetched=run.tokens_fetched,
        plot=str(shown),
    )
    title = (
        f"{args.env}: {summary.requests} requests at {args.rate:g}/s, {started:%Y-%m-%d %H:%M} UTC"
    )
    plot(samples, thresholds, title, png)
    (out / f"loadtest-{args.env}.json").write_bytes(
        msgspec.json.format(msgspec.json.encode(summary)) + b"\n"
    )
    for line in report_lines(summary):
        print(line, flush=True)
    return EXIT_PASSED if summary.passed else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
