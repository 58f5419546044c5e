"""The monitoring table: ``alerts/config.yaml`` as one typed, frozen value, and the names of the
recording rules built from it.

Everything that draws a monitoring number reads it from here: the rule generator
(``alerts/generate.py``), the dashboard generator (``dashboards/generate.py``), the prod canary's
analysis (``infra/model/rollout.py``) and the runbooks' threshold tables. A bad or misspelt
setting fails with one line, ``alerts/config.yaml: <key>: <problem>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from cap_ops import durations
from cap_verifier import paths
from cap_verifier.typed_yaml import load_typed

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "alerts" / "config.yaml"
LABEL = "alerts/config.yaml"

Duration = Annotated[str, Meta(pattern=durations.PATTERN)]
Ratio = Annotated[float, Meta(gt=0, lt=1)]
Positive = Annotated[float, Meta(gt=0)]
Severity = Literal["critical", "warning", "info"]

# Recording rules: level:metric:operations, the level being exactly the by() labels.
REQUESTS_RATE = "job:cap_verifier_requests:rate5m"
AUTH_FAILURES_RATE = "job_reason:cap_verifier_auth_failures:rate5m"
CACHE_HIT_RATIO = "job:cap_verifier_cache_hits:ratio_rate5m"


def error_ratio(window: str) -> str:
    """The availability SLI over ``window``: share of API requests answered with a 5xx."""
    return f"job:cap_verifier_request_errors:ratio_rate{window}"


def latency_quantile(quantile: float) -> str:
    """The latency SLI: the ``quantile`` of API request durations over 5 minutes."""
    return f"job:cap_verifier_request_duration_seconds:p{quantile * 100:g}_5m"


class _Table(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class Slo(_Table, frozen=True):
    availability_target: Ratio
    """Share of API requests answered without a 5xx over ``period``."""
    period: Duration
    latency_quantile: Ratio
    latency_threshold_seconds: Positive


class BurnWindow(_Table, frozen=True):
    """One row of the multi-window, multi-burn-rate alert on the availability SLO."""

    severity: Severity
    long: Duration
    short: Duration
    factor: Positive
    for_: Duration = field(name="for")

    def __post_init__(self) -> None:
        if durations.seconds(self.short) >= durations.seconds(self.long):
            raise ValueError(f"burn_rate_windows: short window {self.short} is not < {self.long}")


class Jwks(_Table, frozen=True):
    """The service's JWKS settings (oauth2.jwks_cache_ttl, oauth2.jwks_max_stale)."""

    cache_ttl_seconds: Positive
    max_stale_seconds: Positive


class TargetDownWarning(_Table, frozen=True):
    down_percent: Annotated[float, Meta(gt=0, le=100)]
    for_: Duration = field(name="for")


class TargetDownCritical(_Table, frozen=True):
    for_: Duration = field(name="for")


class TargetDown(_Table, frozen=True):
    warning: TargetDownWarning
    critical: TargetDownCritical


class Alert(_Table, frozen=True):
    severity: Severity
    for_: Duration = field(name="for")


class AuthFailures(Alert, frozen=True):
    ratio: Ratio
    """Refused requests of one reason / all API requests, over 5 minutes."""
    min_rate_per_second: Positive


class JwksAge(Alert, frozen=True):
    failure_window: Duration
    """Refetches failed within this window (keys are old only when refetching fails)."""


class CacheHitRatio(Alert, frozen=True):
    ratio: Ratio


class Alerts(_Table, frozen=True):
    """One entry per alert; VerifierErrorBudgetBurn is configured by ``burn_rate_windows``."""

    target_down: TargetDown = field(name="VerifierTargetDown")
    high_latency: Alert = field(name="VerifierHighLatency")
    auth_failures: AuthFailures = field(name="VerifierAuthFailuresHigh")
    jwks_stale: JwksAge = field(name="VerifierJWKSStale")
    jwks_expired: JwksAge = field(name="VerifierJWKSExpired")
    jwks_never_loaded: Alert = field(name="VerifierJWKSNeverLoaded")
    cache_hit_ratio: CacheHitRatio = field(name="VerifierCacheHitRatioLow")


class Canary(_Table, frozen=True):
    """The prod canary's analysis: each limit must hold over the whole breach window."""

    max_error_ratio: Ratio
    max_5xx_per_minute: Annotated[int, Meta(gt=0)]
    breach_window: Duration
    interval: Duration


class Monitoring(_Table, frozen=True):
    selector: Annotated[str, Meta(pattern=r'^job="[^"\\]+"$')]
    """Which series are ours: a matcher on ``job``, the one label the recording rules keep."""
    runbook_base_url: Annotated[str, Meta(min_length=1)]
    slo: Slo
    burn_rate_windows: Annotated[tuple[BurnWindow, ...], Meta(min_length=1)]
    jwks: Jwks
    alerts: Alerts
    canary: Canary

    @property
    def job(self) -> str:
        return self.selector.removeprefix('job="').removesuffix('"')

    @property
    def error_budget(self) -> float:
        """The share of API requests the availability objective lets fail: 1 - target."""
        return round(1 - self.slo.availability_target, 10)

    @property
    def sli_excluded_endpoints(self) -> tuple[str, ...]:
        """The service's probe and scrape paths: kubelet and Prometheus traffic neither dilutes
        nor (readiness 503s) inflates the SLIs, which count API requests only."""
        return paths.OPERATIONAL

    @property
    def excluded_endpoints(self) -> str:
        """The probe and scrape endpoints as one regular expression (``/healthz|…``)."""
        return "|".join(self.sli_excluded_endpoints)

    def api(self, job: str | None = None) -> str:
        """The matchers of API requests (probes and scrapes excluded), on ``job`` or ours."""
        own = job or self.selector
        if not self.sli_excluded_endpoints:
            return own
        return f'{own},endpoint!~"{self.excluded_endpoints}"'

    @property
    def burn_ranges(self) -> list[str]:
        """Every window of the burn-rate alerts, shortest first."""
        windows = {w.long for w in self.burn_rate_windows} | {
            w.short for w in self.burn_rate_windows
        }
        return sorted(windows, key=durations.seconds)

    @property
    def fast_burn(self) -> BurnWindow:
        """The window pair that pages first: the largest factor."""
        return max(self.burn_rate_windows, key=lambda w: w.factor)

    @property
    def latency_sli(self) -> str:
        return latency_quantile(self.slo.latency_quantile)


def load(path: Path = CONFIG) -> Monitoring:
    """The monitoring table; a bad setting is ``alerts/config.yaml: <key>: <problem>``."""
    return load_typed(path, Monitoring, LABEL if path == CONFIG else str(path))
