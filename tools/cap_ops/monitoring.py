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
Severity = Literal["P0", "P1", "P2", "P3"]
SEVERITIES: tuple[Severity, ...] = ("P0", "P1", "P2", "P3")

# Recording rules: level:metric:operations, the level being exactly the by() labels.
REQUESTS_RATE = "job:cap_verifier_requests:rate5m"
AUTH_FAILURES_RATE = "job_reason:cap_verifier_auth_failures:rate5m"
CACHE_HIT_RATIO = "job:cap_verifier_cache_hits:ratio_rate5m"
CACHE_LOOKUPS_RATE = "job:cap_verifier_cache_lookups:rate5m"


def error_ratio(window: str) -> str:
    """The availability SLI over ``window``: share of API requests answered with a 5xx."""
    return f"job:cap_verifier_request_errors:ratio_rate{window}"


def latency_quantile(quantile: float) -> str:
    """The latency SLI: the ``quantile`` of API request durations over 5 minutes."""
    return f"job:cap_verifier_request_duration_seconds:p{quantile * 100:g}_5m"


class _Table(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class SeverityLevel(_Table, frozen=True):
    meaning: Annotated[str, Meta(min_length=1)]
    respond: Duration
    """The L1 response time (ORR 4.2-01)."""
    escalate: Duration
    """The L2 time (ORR 4.2-02): not mitigated by then, the team lead takes over."""


class Severities(_Table, frozen=True):
    P0: SeverityLevel
    P1: SeverityLevel
    P2: SeverityLevel
    P3: SeverityLevel

    def of(self, severity: Severity) -> SeverityLevel:
        level: SeverityLevel = getattr(self, severity)
        return level


class LatencyObjective(_Table, frozen=True):
    quantile: Ratio
    threshold_seconds: Positive

    @property
    def name(self) -> str:
        """``p95``."""
        return f"p{self.quantile * 100:g}"


class Slo(_Table, frozen=True):
    availability_target: Ratio
    """Share of API requests answered without a 5xx over ``period``."""
    period: Duration
    latency: Annotated[tuple[LatencyObjective, ...], Meta(min_length=1)]
    """Each quantile of API request durations under its threshold; the first is the canary's."""
    max_error_ratio: Ratio
    """Share of API requests answered with a 5xx, over 5 minutes."""
    min_cache_hit_ratio: Ratio
    """IR cache hits / lookups over 5 minutes."""

    def __post_init__(self) -> None:
        quantiles = [objective.quantile for objective in self.latency]
        if len(set(quantiles)) != len(quantiles):
            raise ValueError("slo.latency: a quantile appears twice")

    def objective(self, quantile: float) -> LatencyObjective:
        """The latency objective of ``quantile``; KeyError when there is none."""
        for objective in self.latency:
            if objective.quantile == quantile:
                return objective
        raise KeyError(f"no latency objective for the quantile {quantile}")

    @property
    def latency_quantile(self) -> float:
        """The first objective's quantile (the canary's latency limit)."""
        return self.latency[0].quantile

    @property
    def latency_threshold_seconds(self) -> float:
        return self.latency[0].threshold_seconds


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


class Alert(_Table, frozen=True):
    severity: Severity
    for_: Duration = field(name="for")


class PartialTargetDown(Alert, frozen=True):
    down_percent: Annotated[float, Meta(gt=0, le=100)]


class TargetDown(_Table, frozen=True):
    partial: PartialTargetDown
    total: Alert


class FivexxSpike(Alert, frozen=True):
    per_minute: Annotated[int, Meta(gt=0)]


class CacheHitRate(Alert, frozen=True):
    min_lookups_per_second: Positive


class AuthFailures(Alert, frozen=True):
    ratio: Ratio
    """Refused requests (every reason) / all API requests, over 5 minutes."""
    min_rate_per_second: Positive


class NoTraffic(Alert, frozen=True):
    window: Duration


class CertificateExpiry(Alert, frozen=True):
    days: Annotated[int, Meta(gt=0, le=365)]


class JwksAge(Alert, frozen=True):
    failure_window: Duration
    """Refetches failed within this window (keys are old only when refetching fails)."""


class Alerts(_Table, frozen=True):
    """One entry per alert; VerifierErrorBudgetBurn is configured by ``burn_rate_windows``."""

    high_error_rate: Alert = field(name="HighErrorRate")
    fivexx_spike: FivexxSpike = field(name="FivexxSpike")
    high_p95_latency: Alert = field(name="HighP95Latency")
    high_p99_latency: Alert = field(name="HighP99Latency")
    low_cache_hit_rate: CacheHitRate = field(name="LowCacheHitRate")
    high_auth_failure_rate: AuthFailures = field(name="HighAuthFailureRate")
    no_traffic: NoTraffic = field(name="NoTraffic")
    target_down: TargetDown = field(name="VerifierTargetDown")
    endpoint_down: Alert = field(name="VerifierEndpointDown")
    certificate_expiry: CertificateExpiry = field(name="VerifierCertificateExpiresSoon")
    jwks_stale: JwksAge = field(name="VerifierJWKSStale")
    jwks_expired: JwksAge = field(name="VerifierJWKSExpired")
    jwks_never_loaded: Alert = field(name="VerifierJWKSNeverLoaded")


class Probe(_Table, frozen=True):
    """The black-box probe of /healthz through the public endpoint."""

    job: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9-]*$")]
    module: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*$")]
    interval: Duration


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
    severities: Severities
    slo: Slo
    burn_rate_windows: Annotated[tuple[BurnWindow, ...], Meta(min_length=1)]
    jwks: Jwks
    probe: Probe
    alerts: Alerts
    canary: Canary

    @property
    def probe_selector(self) -> str:
        """The matcher of the black-box probe's series."""
        return f'job="{self.probe.job}"'

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
        """The recording rule of the first latency objective (the canary's)."""
        return latency_quantile(self.slo.latency_quantile)

    @property
    def latency_slis(self) -> dict[float, str]:
        """Quantile -> its recording rule, for every latency objective."""
        return {o.quantile: latency_quantile(o.quantile) for o in self.slo.latency}


def load(path: Path = CONFIG) -> Monitoring:
    """The monitoring table; a bad setting is ``alerts/config.yaml: <key>: <problem>``."""
    return load_typed(path, Monitoring, LABEL if path == CONFIG else str(path))
