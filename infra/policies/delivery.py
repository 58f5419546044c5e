"""Policies over everything rendered for an environment: platform Applications, secrets,
backups, TLS material and the canary (ORR sections 1.1-1.3, 2.2, 2.3, 8.1)."""

from __future__ import annotations

import re
from typing import Any

from infra.charts import PLATFORM_CHARTS
from infra.config import EnvConfig
from infra.policies.manifests import find, one, workload
from infra.policies.registry import (
    Objs,
    autoscaled,
    canary,
    mutual_tls,
    policy,
    postgresql_registry,
    sqlite_registry,
)

PINNED = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+$")
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")


def named(objs: Objs, kind: str, name: str) -> dict[str, Any] | None:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return found[0] if found else None


def application_errors(objs: Objs, chart_name: str) -> list[str]:
    """The platform chart ``chart_name`` is an automated Argo CD Application at a pinned version."""
    app = named(objs, "Application", chart_name)
    if app is None:
        return [f"no Application {chart_name}"]
    spec = app["spec"]
    errors = []
    revision = str(spec["source"].get("targetRevision", ""))
    if not PINNED.match(revision):
        errors.append(f"{chart_name}: targetRevision {revision!r} is not a pinned version")
    automated = spec.get("syncPolicy", {}).get("automated", {})
    if not (automated.get("prune") and automated.get("selfHeal")):
        errors.append(f"{chart_name}: sync is not automated with prune and self-heal")
    return errors


# --- ORR 1.1 / 1.2 / 1.3 -------------------------------------------------------------------------


@policy("1.1-09", sqlite_registry, scope="everything")
def sqlite_single_writer(objs: Objs, cfg: EnvConfig) -> list[str]:
    """Where the registry is SQLite, ReadWriteMany is deliberately not needed: exactly one pod
    ever writes (one replica, no HPA, Recreate), on a ReadWriteOnce volume. SQLite over a
    shared network filesystem would risk the database, so RWX is the wrong answer here."""
    target = workload(objs)
    errors = []
    if target["spec"].get("replicas") != 1 or find(objs, "HorizontalPodAutoscaler"):
        errors.append("more than one pod could write the SQLite file")
    if target["spec"].get("strategy", {}).get("type") != "Recreate":
        errors.append("a rolling update would run two writers at once")
    claims = find(objs, "PersistentVolumeClaim")
    if [c["spec"]["accessModes"] for c in claims] != [["ReadWriteOnce"]]:
        errors.append("the registry volume is not one ReadWriteOnce claim")
    return errors


@policy("1.1-10", postgresql_registry, scope="everything")
def backup_strategy(objs: Objs, cfg: EnvConfig) -> list[str]:
    """A daily ScheduledBackup of the registry's Cluster to object storage, kept 30 days."""
    clusters = find(objs, "Cluster")
    if len(clusters) != 1:
        return [f"expected one CloudNativePG Cluster, found {len(clusters)}"]
    cluster = clusters[0]
    backup = cluster["spec"].get("backup", {})
    errors = []
    if backup.get("retentionPolicy") != "30d":
        errors.append(f"retention {backup.get('retentionPolicy')!r}, expected 30d")
    store = backup.get("barmanObjectStore", {})
    if not str(store.get("destinationPath", "")).startswith("s3://"):
        errors.append("backups do not go to object storage")
    schedules = [
        s
        for s in find(objs, "ScheduledBackup")
        if s["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    ]
    if not schedules:
        errors.append("no ScheduledBackup for the Cluster")
    for s in schedules:
        fields = s["spec"]["schedule"].split()
        # Six fields, seconds first: a fixed second, minute and hour, every day.
        if len(fields) != 6 or not all(f.isdigit() for f in fields[:3]) or fields[3:] != ["*"] * 3:
            errors.append(f"schedule {s['spec']['schedule']!r} is not daily")
    return errors


@policy("1.2-01", scope="everything")
def gateway_controller(objs: Objs, cfg: EnvConfig) -> list[str]:
    """Envoy Gateway (the ingress controller) and its CRDs are deployed, and the Gateway's class
    is served by it."""
    errors = application_errors(objs, "envoy-gateway") + application_errors(objs, "gateway-crds")
    classes = [
        c
        for c in find(objs, "GatewayClass")
        if c["metadata"]["name"] == cfg.edge.gateway_class_name
    ]
    if not classes:
        errors.append(f"no GatewayClass {cfg.edge.gateway_class_name}")
    elif classes[0]["spec"]["controllerName"] != "gateway.envoyproxy.io/gatewayclass-controller":
        errors.append("the GatewayClass is not served by Envoy Gateway")
    if one(objs, "Gateway")["spec"]["gatewayClassName"] != cfg.edge.gateway_class_name:
        errors.append("the Gateway does not use the Envoy Gateway class")
    return errors


@policy("1.2-07", scope="everything")
def ingress_resource(objs: Objs, cfg: EnvConfig) -> list[str]:
    """The ingress resource (an HTTPRoute on the HTTPS listener) exists for the host, and plain
    HTTP only redirects to it."""
    errors = []
    route = named(objs, "HTTPRoute", "cap-verifier")
    if route is None or route["spec"]["parentRefs"][0].get("sectionName") != "https":
        errors.append("no HTTPRoute cap-verifier on the HTTPS listener")
    elif cfg.host not in route["spec"]["hostnames"]:
        errors.append(f"the route does not serve {cfg.host}")
    redirect = named(objs, "HTTPRoute", "cap-verifier-https-redirect")
    if redirect is None:
        errors.append("no HTTP to HTTPS redirect")
    else:
        for rule in redirect["spec"]["rules"]:
            if rule.get("backendRefs") or [f.get("requestRedirect") for f in rule["filters"]] != [
                {"scheme": "https", "statusCode": 301}
            ]:
                errors.append("the HTTP listener forwards instead of redirecting to https")
    return errors


@policy("1.3-01", autoscaled, scope="everything")
def metrics_server(objs: Objs, cfg: EnvConfig) -> list[str]:
    """metrics-server is deployed, so the HPA's resource metrics exist."""
    errors = application_errors(objs, "metrics-server")
    hpa = find(objs, "HorizontalPodAutoscaler")
    if not hpa or {m["type"] for m in hpa[0]["spec"]["metrics"]} != {"Resource"}:
        errors.append("the HPA does not scale on resource metrics (metrics-server)")
    return errors


# --- ORR 2.2 / 2.3 -------------------------------------------------------------------------------


@policy("2.2-02", scope="everything")
def cipher_suites(objs: Objs, cfg: EnvConfig) -> list[str]:
    """TLS 1.3 only: the suites are TLS 1.3's AEAD set (AES-GCM, CHACHA20-POLY1305), all ECDHE.

    Envoy and the CRD refuse a cipher list at TLS 1.3; pinning both versions to 1.3 is what
    restricts the suites to ``TLS13_SUITES``. (The checklist's DHE+AESGCM has no TLS 1.3 form.)
    """
    tls = one(objs, "ClientTrafficPolicy")["spec"].get("tls", {})
    errors = []
    if (tls.get("minVersion"), tls.get("maxVersion")) != ("1.3", "1.3"):
        errors.append(
            f"TLS versions {tls.get('minVersion')}..{tls.get('maxVersion')}, not 1.3 only"
        )
    if "ciphers" in tls:
        errors.append("a cipher list is set; TLS 1.3 fixes the suites")
    if "ecdhCurves" in tls and not set(tls["ecdhCurves"]) <= {"X25519", "P-256", "P-384"}:
        errors.append(f"unexpected key exchange curves {tls['ecdhCurves']}")
    return errors


def _external_secret(objs: Objs, name: str, key: str) -> list[str]:
    """An ExternalSecret makes Secret ``name`` with ``key`` from a store that exists."""
    es = named(objs, "ExternalSecret", name)
    if es is None:
        return [f"no ExternalSecret for Secret {name}"]
    spec = es["spec"]
    errors = []
    if spec["target"]["name"] != name:
        errors.append(f"ExternalSecret {name} writes Secret {spec['target']['name']}")
    if key not in [d["secretKey"] for d in spec.get("data", [])]:
        errors.append(f"Secret {name} has no key {key}")
    store = spec["secretStoreRef"]
    if named(objs, store["kind"], store["name"]) is None:
        errors.append(f"{store['kind']} {store['name']} does not exist")
    if find(objs, "Secret"):
        errors.append("a Secret is rendered: its value would be in git")
    return errors


@policy("2.3-01", scope="everything")
def oauth2_secret(objs: Objs, cfg: EnvConfig) -> list[str]:
    return _external_secret(objs, "cap-verifier-oauth2", "client_secret")


@policy("2.3-02", scope="everything")
def tls_secret(objs: Objs, cfg: EnvConfig) -> list[str]:
    """cert-manager writes Secret cap-verifier-tls, which the HTTPS listener serves."""
    cert = one(objs, "Certificate")
    errors = []
    if cert["spec"]["secretName"] != "cap-verifier-tls":
        errors.append(f"the Certificate writes {cert['spec']['secretName']}, not cap-verifier-tls")
    refs = [
        ref["name"]
        for listener in one(objs, "Gateway")["spec"]["listeners"]
        if listener["protocol"] == "HTTPS"
        for ref in listener["tls"]["certificateRefs"]
    ]
    if refs != [cert["spec"]["secretName"]]:
        errors.append(f"the HTTPS listener serves {refs}, not the Certificate's Secret")
    return errors


@policy("2.3-03", mutual_tls, scope="everything")
def client_ca_secret(objs: Objs, cfg: EnvConfig) -> list[str]:
    """Secret cap-verifier-client-ca (from External Secrets) is the gateway's client CA."""
    errors = _external_secret(objs, "cap-verifier-client-ca", "ca.crt")
    validation = one(objs, "ClientTrafficPolicy")["spec"]["tls"].get("clientValidation", {})
    refs = [(r.get("kind"), r["name"]) for r in validation.get("caCertificateRefs", [])]
    if refs != [("Secret", "cap-verifier-client-ca")]:
        errors.append(f"client certificates are validated against {refs}")
    return errors


@policy("2.3-06", scope="everything")
def tls_auto_renewal(objs: Objs, cfg: EnvConfig) -> list[str]:
    """cert-manager is deployed and renews the Certificate from an ACME ClusterIssuer."""
    errors = application_errors(objs, "cert-manager")
    cert = one(objs, "Certificate")["spec"]
    issuer = cert["issuerRef"]
    if (
        issuer.get("kind") != "ClusterIssuer"
        or named(objs, "ClusterIssuer", issuer["name"]) is None
    ):
        errors.append(f"the Certificate's issuer {issuer} is not a ClusterIssuer here")
    if "renewBefore" not in cert:
        errors.append("no renewBefore on the Certificate")
    return errors


# --- ORR 8.1 -------------------------------------------------------------------------------------


def _canary(objs: Objs) -> dict[str, Any]:
    target = workload(objs)
    if target["kind"] != "Rollout":
        return {}
    canary: dict[str, Any] = target["spec"]["strategy"].get("canary", {})
    return canary


@policy("8.1-01", canary, scope="everything")
def canary_configured(objs: Objs, cfg: EnvConfig) -> list[str]:
    """An Argo Rollouts canary with exact traffic weights on the HTTPRoute, and its controller."""
    canary = _canary(objs)
    if not canary:
        return ["the workload is not a canary Rollout"]
    errors = application_errors(objs, "argo-rollouts")
    services = {s["metadata"]["name"] for s in find(objs, "Service")}
    for role in ("stableService", "canaryService"):
        if canary.get(role) not in services:
            errors.append(f"{role} {canary.get(role)} is not a Service")
    plugin = canary.get("trafficRouting", {}).get("plugins", {}).get("argoproj-labs/gatewayAPI")
    if not plugin or named(objs, "HTTPRoute", plugin.get("httpRoute", "")) is None:
        errors.append("traffic is not split on the HTTPRoute")
    else:
        route = named(objs, "HTTPRoute", plugin["httpRoute"])
        assert route is not None
        backends = {r["name"] for rule in route["spec"]["rules"] for r in rule["backendRefs"]}
        if backends != {canary.get("stableService"), canary.get("canaryService")}:
            errors.append(f"the route's backends {sorted(backends)} are not stable + canary")
    return errors


def weights(canary: dict[str, Any]) -> list[int]:
    return [step["setWeight"] for step in canary.get("steps", []) if "setWeight" in step]


@policy("8.1-02", canary, scope="everything")
def traffic_split(objs: Objs, cfg: EnvConfig) -> list[str]:
    found = weights(_canary(objs))
    return [] if found == [5, 25, 50, 100] else [f"weights {found}, expected 5, 25, 50, 100"]


@policy("8.1-03", canary, scope="everything")
def fifteen_minutes_per_stage(objs: Objs, cfg: EnvConfig) -> list[str]:
    steps = _canary(objs).get("steps", [])
    errors = []
    for i, step in enumerate(steps):
        if "setWeight" in step:
            after = steps[i + 1] if i + 1 < len(steps) else {}
            if after.get("pause", {}).get("duration") != "15m":
                errors.append(f"{step['setWeight']} % is not held for 15 minutes")
    return errors or ([] if steps else ["no canary steps"])


def _analysis(objs: Objs) -> tuple[dict[str, Any], dict[str, Any] | None]:
    analysis = _canary(objs).get("analysis", {})
    names = [t["templateName"] for t in analysis.get("templates", [])]
    template = named(objs, "AnalysisTemplate", names[0]) if names else None
    return analysis, template


@policy("8.1-04", canary, scope="everything")
def automatic_rollback(objs: Objs, cfg: EnvConfig) -> list[str]:
    """A background analysis from the first pause on; any failed measurement aborts the rollout,
    which returns all traffic to the stable pods."""
    analysis, template = _analysis(objs)
    if template is None:
        return ["no background analysis with an existing AnalysisTemplate"]
    errors = []
    if analysis.get("startingStep", 0) > 1:
        errors.append("the analysis starts after the 5 % step")
    args = {a["name"] for a in analysis.get("args", [])}
    if args != {a["name"] for a in template["spec"].get("args", [])}:
        errors.append("the Rollout does not pass the template's arguments")
    for metric in template["spec"]["metrics"]:
        if metric.get("failureLimit") != 0:
            errors.append(f"{metric['name']}: failureLimit {metric.get('failureLimit')}, not 0")
    return errors


def _metric(objs: Objs, name: str) -> dict[str, Any]:
    _, template = _analysis(objs)
    metrics = {m["name"]: m for m in (template or {"spec": {"metrics": []}})["spec"]["metrics"]}
    metric: dict[str, Any] = metrics.get(name, {})
    return metric


def _threshold(objs: Objs, name: str, limit: str, needles: tuple[str, ...]) -> list[str]:
    metric = _metric(objs, name)
    if not metric:
        return [f"no analysis metric {name}"]
    errors = []
    condition = metric.get("successCondition", "")
    if not condition.endswith(f"result[0] < {limit}"):
        errors.append(f"{name}: success condition {condition!r}, expected result[0] < {limit}")
    query = metric["provider"]["prometheus"]["query"]
    for needle in ("rollouts_pod_template_hash=", *needles):
        if needle not in query:
            errors.append(f"{name}: the query does not contain {needle}")
    return errors


@policy("8.1-05", canary, scope="everything")
def error_rate(objs: Objs, cfg: EnvConfig) -> list[str]:
    return _threshold(objs, "error-rate", "0.01", ('result="fail"',))


@policy("8.1-06", canary, scope="everything")
def p95_latency(objs: Objs, cfg: EnvConfig) -> list[str]:
    return _threshold(
        objs, "p95-latency", "0.5", ("histogram_quantile(0.95", "request_duration_seconds_bucket")
    )


@policy("8.1-07", canary, scope="everything")
def server_errors_per_minute(objs: Objs, cfg: EnvConfig) -> list[str]:
    return _threshold(
        objs, "server-errors-per-minute", "10", ('result="fail"', "increase(", "[1m]")
    )


@policy("8.1-08", canary, scope="everything")
def breach_for_5_minutes(objs: Objs, cfg: EnvConfig) -> list[str]:
    """Static half: each measurement is the minimum over the last 5 minutes, taken every minute,
    and the first failed measurement aborts. (test_canary_queries proves the behaviour with
    promtool.)"""
    _, template = _analysis(objs)
    if template is None:
        return ["no AnalysisTemplate"]
    errors = []
    for metric in template["spec"]["metrics"]:
        query = metric["provider"]["prometheus"]["query"]
        if not (query.startswith("min_over_time((") and query.endswith(")[5m:1m])")):
            errors.append(f"{metric['name']}: not a 5-minute sustained breach")
        if metric.get("interval") != "1m" or metric.get("failureLimit") != 0:
            errors.append(f"{metric['name']}: not measured every minute with failureLimit 0")
    return errors


def chart_names() -> list[str]:
    return [c.name for c in PLATFORM_CHARTS]
