"""Prometheus metrics of contract §6, correct under several granian workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (the ``serve`` command sets it before workers start),
prometheus-client writes every sample to files shared by the workers and the scrape
aggregates them. Two values are derived at scrape time from the aggregate, because they
cannot be summed across workers: the cache hit ratio and the JWKS age.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cap_verifier.settings import METRICS_DIR_ENV

CONTENT_TYPE = "text/plain; version=0.0.4"  # the classic text format; the charset is added

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
AUTH_FAILURE_REASONS = (
    "missing_token",
    "invalid_token",
    "expired",
    "issuer",
    "audience",
    "unknown_kid",
    "insufficient_scope",
    "client_cert",
)
VERDICTS = ("ok", "warn", "fail")
HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
OTHER_METHOD = "OTHER"
"""The ``method`` label of any request method outside RFC 9110's (and PATCH): a client cannot
create label values at will."""
JWKS_OUTCOMES = ("success", "error")
_JWKS_LOADED_AT = "cap_verifier_jwks_last_success_timestamp_seconds"


def method_label(method: str) -> str:
    """The request method, or ``OTHER`` for one HTTP does not define."""
    return method if method in HTTP_METHODS else OTHER_METHOD


def result_of(status: int) -> str:
    """The ``result`` label: ok for 2xx/3xx, warn for 4xx, fail for 5xx."""
    if status >= 500:
        return "fail"
    if status >= 400:
        return "warn"
    return "ok"


class Metrics:
    """The service's metrics, registered in a registry of their own."""

    def __init__(self, version: str) -> None:
        self.multiprocess_dir = os.environ.get(METRICS_DIR_ENV) or None
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "cap_verifier_requests",
            "HTTP requests by route template, method, status code and result class.",
            ["endpoint", "method", "code", "result"],
            registry=r,
        )
        self.request_duration = Histogram(
            "cap_verifier_request_duration_seconds",
            "HTTP request duration by route template and method.",
            ["endpoint", "method"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.verifications = Counter(
            "cap_verifier_verifications", "Verdicts of /verify.", ["verdict"], registry=r
        )
        self.auth_failures = Counter(
            "cap_verifier_auth_failures",
            "Refused requests by authentication failure reason.",
            ["reason"],
            registry=r,
        )
        self.cache_hits = Counter("cap_verifier_cache_hits", "IR cache hits.", registry=r)
        self.cache_misses = Counter("cap_verifier_cache_misses", "IR cache misses.", registry=r)
        self.cache_entries = Gauge(
            "cap_verifier_cache_entries",
            "Entries in the IR caches of the live workers.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.jwks_refreshes = Counter(
            "cap_verifier_jwks_refreshes",
            "JWKS fetches by outcome.",
            ["outcome"],
            registry=r,
        )
        self.jwks_loaded_at = Gauge(
            _JWKS_LOADED_AT,
            "Unix time of the oldest JWKS still in use by a live worker (0: never loaded).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.build_info = Gauge(
            "cap_verifier_build_info",
            "Service version.",
            ["version"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.build_info.labels(version=version).set(1)
        for reason in AUTH_FAILURE_REASONS:
            self.auth_failures.labels(reason=reason)
        for verdict in VERDICTS:
            self.verifications.labels(verdict=verdict)
        for outcome in JWKS_OUTCOMES:
            self.jwks_refreshes.labels(outcome=outcome)

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        method = method_label(method)
        self.requests.labels(endpoint, method, str(status), result_of(status)).inc()
        self.request_duration.labels(endpoint, method).observe(seconds)

    def exposition(self) -> bytes:
        """The text format of every worker's metrics plus the derived values."""
        if self.multiprocess_dir:
            forget_dead_workers(self.multiprocess_dir)
            source = CollectorRegistry(auto_describe=False)
            multiprocess.MultiProcessCollector(source, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            source = self.registry
        out = CollectorRegistry(auto_describe=False)
        out.register(_DerivedCollector(source))
        return generate_latest(out)

    def mark_worker_gone(self) -> None:
        """Drop this worker's live gauges (call when the worker stops)."""
        if self.multiprocess_dir:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


_WORKER_FILE = re.compile(r"_(\d+)\.db$")


def forget_dead_workers(directory: str) -> list[int]:
    """Drop the live gauges of workers that have died (killed, crashed, replaced): their
    counters stay, since a counter must never go back, but a gauge such as the cache entries or
    the JWKS time is only true of a live process. Returns the pids forgotten."""
    pids = {
        int(m.group(1)) for p in Path(directory).iterdir() if (m := _WORKER_FILE.search(p.name))
    }
    dead = [pid for pid in sorted(pids) if not _alive(pid)]
    for pid in dead:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a process of another user: alive
    return True


class _DerivedCollector(Collector):
    """Yields the source families plus the hit ratio and JWKS age computed from them."""

    def __init__(self, source: CollectorRegistry) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        families = list(self._source.collect())
        yield from families
        hits = _sample_sum(families, "cap_verifier_cache_hits_total")
        misses = _sample_sum(families, "cap_verifier_cache_misses_total")
        lookups = hits + misses
        yield GaugeMetricFamily(
            "cap_verifier_cache_hit_ratio",
            "IR cache hits / lookups since start (0 before the first lookup).",
            value=hits / lookups if lookups else 0.0,
        )
        loaded = [s.value for f in families for s in f.samples if s.name == _JWKS_LOADED_AT]
        oldest = min(loaded) if loaded else 0.0
        yield GaugeMetricFamily(
            "cap_verifier_jwks_age_seconds",
            "Seconds since the oldest JWKS in use was fetched (-1: never loaded).",
            value=time.time() - oldest if oldest > 0 else -1.0,
        )


def _sample_sum(families: Iterable[Metric], sample_name: str) -> float:
    return sum(s.value for f in families for s in f.samples if s.name == sample_name)
