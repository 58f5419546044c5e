"""Policies over the service's objects: cluster, namespace, gateway, scaling, network, pod
security, resources, TLS and secrets (ORR sections 1.1-1.6, 2.2, 2.3)."""

from __future__ import annotations

import re
from typing import Any

from cap_verifier import paths
from infra.charts import ENVOY_GATEWAY, KUBE_PROMETHEUS_STACK
from infra.config import EnvConfig
from infra.policies.manifests import (
    CLUSTER_SCOPED,
    CREDENTIAL,
    SECRET_WORDS,
    find,
    in_namespace,
    one,
    pod_spec,
    service_config,
    workload,
)
from infra.policies.registry import (
    Objs,
    autoscaled,
    mutual_tls,
    policy,
    production,
    sqlite_registry,
)

# --- ORR 1.1 -------------------------------------------------------------------------------------


@policy("1.1-03")
def anti_affinity(objs: Objs, cfg: EnvConfig) -> list[str]:
    spec = pod_spec(objs)
    errors = []
    keys = {t["topologyKey"] for t in spec.get("topologySpreadConstraints", [])}
    for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone"):
        if key not in keys:
            errors.append(f"no topologySpreadConstraint on {key}")
    anti = spec.get("affinity", {}).get("podAntiAffinity", {})
    terms = [
        t.get("podAffinityTerm", t)
        for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])
        + anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])
    ]
    if not any(t["topologyKey"] == "kubernetes.io/hostname" for t in terms):
        errors.append("no podAntiAffinity on kubernetes.io/hostname")
    return errors


@policy("1.1-04")
def k8s_version(objs: Objs, cfg: EnvConfig) -> list[str]:
    minor = int(cfg.cluster.k8s_version_oldest.split(".")[1])
    return (
        [] if minor >= 24 else [f"oldest supported version {cfg.cluster.k8s_version_oldest} < 1.24"]
    )


@policy("1.1-05")
def namespace(objs: Objs, cfg: EnvConfig) -> list[str]:
    errors = []
    if not [n for n in find(objs, "Namespace") if n["metadata"]["name"] == "cap-verifier"]:
        errors.append("no namespace cap-verifier")
    database = cfg.database.namespace if cfg.database else None
    allowed = {"cap-verifier"} | ({database} if database else set())
    for o in objs:
        if o["kind"] not in CLUSTER_SCOPED and o["metadata"].get("namespace") not in allowed:
            errors.append(f"{o['kind']}/{o['metadata']['name']} not in cap-verifier")
        if (
            database
            and o["metadata"].get("namespace") == database
            and not o["apiVersion"].startswith(
                ("postgresql.cnpg.io/", "networking.k8s.io/", "external-secrets.io/")
            )
        ):
            errors.append(f"{o['kind']}/{o['metadata']['name']} in the database namespace")
    return errors


def _qty(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "": 1}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", value)
    assert match is not None, value
    return float(match.group(1)) * units[match.group(2)]


@policy("1.1-06")
def resource_quota(objs: Objs, cfg: EnvConfig) -> list[str]:
    quotas = find(objs, "ResourceQuota")
    if not quotas:
        return ["no ResourceQuota"]
    hard = quotas[0]["spec"]["hard"]
    errors = [
        f"quota lacks {k}"
        for k in ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory")
        if k not in hard
    ]
    if errors:
        return errors
    container = pod_spec(objs)["containers"][0]["resources"]
    top = cfg.scaling.hpa.max_replicas if cfg.scaling.hpa.enabled else cfg.scaling.replicas
    if cfg.delivery.canary.enabled:
        # Stable pods stay up until promotion while the canary reaches 100 %.
        top *= 2
    if int(hard.get("pods", 0)) < top:
        errors.append(f"quota allows {hard.get('pods')} pods, a rollout may need {top}")
    for kind in ("requests", "limits"):
        for res in ("cpu", "memory"):
            need = _qty(container[kind][res]) * top
            if _qty(hard[f"{kind}.{res}"]) < need:
                errors.append(f"quota {kind}.{res} below {top} pods")
    return errors


@policy("1.1-07")
def limit_range(objs: Objs, cfg: EnvConfig) -> list[str]:
    ranges = find(objs, "LimitRange")
    if not ranges:
        return ["no LimitRange"]
    limits = {item["type"]: item for item in ranges[0]["spec"]["limits"]}
    container = limits.get("Container")
    if container is None or not {"max", "default", "defaultRequest"} <= set(container):
        return ["LimitRange lacks Container max/default/defaultRequest"]
    return []


@policy("1.1-08", sqlite_registry)
def registry_volume(objs: Objs, cfg: EnvConfig) -> list[str]:
    if cfg.registry.kind != "sqlite":
        return []
    pvcs = find(objs, "PersistentVolumeClaim")
    data = [v for v in pod_spec(objs)["volumes"] if v["name"] == "data"]
    if not pvcs or not data or "persistentVolumeClaim" not in data[0]:
        return ["sqlite registry without a PVC mounted at /data"]
    if data[0]["persistentVolumeClaim"]["claimName"] != pvcs[0]["metadata"]["name"]:
        return ["data volume does not use the registry PVC"]
    return []


# --- ORR 1.2 -------------------------------------------------------------------------------------


@policy("1.2-08")
def backend_service(objs: Objs, cfg: EnvConfig) -> list[str]:
    svc = one(objs, "Service", "cap-verifier")
    ports = {p["port"]: p for p in svc["spec"]["ports"]}
    container_ports = {
        p["name"]: p["containerPort"] for p in pod_spec(objs)["containers"][0]["ports"]
    }
    if 8080 not in ports:
        return ["Service has no port 8080"]
    if container_ports.get(ports[8080]["targetPort"]) != 8080:
        return ["Service port 8080 does not reach container port 8080"]
    selector = svc["spec"]["selector"]
    pod_labels = workload(objs)["spec"]["template"]["metadata"]["labels"]
    if not selector.items() <= pod_labels.items():
        return ["Service selector does not match the pods"]
    return []


@policy("1.2-09")
def health_paths(objs: Objs, cfg: EnvConfig) -> list[str]:
    c = pod_spec(objs)["containers"][0]
    errors = []
    for probe, path in (("livenessProbe", paths.HEALTHZ), ("readinessProbe", paths.READYZ)):
        if c.get(probe, {}).get("httpGet", {}).get("path") != path:
            errors.append(f"{probe} is not GET {path}")
    return errors


# --- ORR 1.3 -------------------------------------------------------------------------------------


def _hpa(objs: Objs) -> dict[str, Any] | None:
    hpas = find(objs, "HorizontalPodAutoscaler")
    return hpas[0]["spec"] if hpas else None


@policy("1.3-02", autoscaled)
def hpa_deployed(objs: Objs, cfg: EnvConfig) -> list[str]:
    spec = _hpa(objs)
    if spec is None:
        return ["no HorizontalPodAutoscaler"]
    ref = spec["scaleTargetRef"]
    target = workload(objs)
    if (ref["kind"], ref["name"]) != (target["kind"], target["metadata"]["name"]):
        return [f"HPA does not target the cap-verifier {target['kind']}"]
    if ref["apiVersion"] != target["apiVersion"]:
        return [f"HPA targets {ref['apiVersion']}, the workload is {target['apiVersion']}"]
    if "replicas" in target["spec"]:
        return [f"{target['kind']} sets replicas, fighting the HPA"]
    return []


def _hpa_field(objs: Objs, path: tuple[str, ...], expected: Any) -> list[str]:
    spec = _hpa(objs)
    if spec is None:
        return ["no HorizontalPodAutoscaler"]
    value: Any = spec
    for key in path:
        value = value[key]
    return [] if value == expected else [f"HPA {'.'.join(path)} is {value}, expected {expected}"]


@policy("1.3-03", production)
def hpa_min_replicas(objs: Objs, cfg: EnvConfig) -> list[str]:
    return _hpa_field(objs, ("minReplicas",), 3)


@policy("1.3-04", production)
def hpa_max_replicas(objs: Objs, cfg: EnvConfig) -> list[str]:
    return _hpa_field(objs, ("maxReplicas",), 20)


def _metric_target(objs: Objs, resource: str) -> Any:
    spec = _hpa(objs) or {"metrics": []}
    for m in spec["metrics"]:
        if m["type"] == "Resource" and m["resource"]["name"] == resource:
            target = m["resource"]["target"]
            return target.get("averageUtilization") if target["type"] == "Utilization" else None
    return None


@policy("1.3-05", autoscaled)
def hpa_cpu_target(objs: Objs, cfg: EnvConfig) -> list[str]:
    value = _metric_target(objs, "cpu")
    return [] if value == 60 else [f"CPU target is {value}, expected 60"]


@policy("1.3-06", autoscaled)
def hpa_memory_target(objs: Objs, cfg: EnvConfig) -> list[str]:
    value = _metric_target(objs, "memory")
    return [] if value == 70 else [f"memory target is {value}, expected 70"]


@policy("1.3-07", autoscaled)
def scale_up(objs: Objs, cfg: EnvConfig) -> list[str]:
    spec = _hpa(objs)
    if spec is None:
        return ["no HorizontalPodAutoscaler"]
    policies = spec["behavior"]["scaleUp"]["policies"]
    # With selectPolicy Max the fastest policy wins: every policy must allow at most 5 / 60 s.
    if policies != [{"type": "Pods", "value": 5, "periodSeconds": 60}]:
        return [f"scaleUp policies {policies}, expected 5 Pods per 60 s"]
    return []


@policy("1.3-08", autoscaled)
def scale_down(objs: Objs, cfg: EnvConfig) -> list[str]:
    spec = _hpa(objs)
    if spec is None:
        return ["no HorizontalPodAutoscaler"]
    policies = spec["behavior"]["scaleDown"]["policies"]
    if policies != [{"type": "Pods", "value": 1, "periodSeconds": 300}]:
        return [f"scaleDown policies {policies}, expected 1 Pod per 300 s"]
    return []


@policy("1.3-09", production)
def stabilization(objs: Objs, cfg: EnvConfig) -> list[str]:
    return _hpa_field(objs, ("behavior", "scaleDown", "stabilizationWindowSeconds"), 300)


# --- ORR 1.4 -------------------------------------------------------------------------------------


def _ns_of(peer: dict[str, Any]) -> str | None:
    labels = peer.get("namespaceSelector", {}).get("matchLabels", {})
    name = labels.get("kubernetes.io/metadata.name")
    return name if isinstance(name, str) else None


def _policies(objs: Objs, policy_type: str, namespace: str = "cap-verifier") -> Objs:
    """The service namespace's NetworkPolicies of one type."""
    return [
        o
        for o in find(in_namespace(objs, namespace), "NetworkPolicy")
        if policy_type in o["spec"]["policyTypes"]
    ]


@policy("1.4-01")
def ingress_only_from_gateway(objs: Objs, cfg: EnvConfig) -> list[str]:
    gateway, prometheus = ENVOY_GATEWAY.namespace, KUBE_PROMETHEUS_STACK.namespace
    allowed = {gateway, prometheus}
    errors = []
    rules = [r for p in _policies(objs, "Ingress") for r in p["spec"].get("ingress", [])]
    if not any(_ns_of(peer) == gateway for r in rules for peer in r.get("from", [])):
        errors.append("no ingress rule from the gateway namespace")
    for r in rules:
        peers = r.get("from")
        if not peers:
            errors.append("ingress rule open to every source")
        for peer in peers or []:
            if _ns_of(peer) not in allowed or "ipBlock" in peer:
                errors.append(f"ingress from {peer} is neither gateway nor Prometheus")
        if [p.get("port") for p in r.get("ports", [])] != [8080]:
            errors.append(f"ingress rule ports {r.get('ports')}, expected only 8080")
    return errors


@policy("1.4-02")
def egress(objs: Objs, cfg: EnvConfig) -> list[str]:
    errors = []
    rules = [r for p in _policies(objs, "Egress") for r in p["spec"].get("egress", [])]
    dns_ok = idp_ok = pg_ok = False
    for r in rules:
        ports = {(p.get("protocol", "TCP"), p.get("port")) for p in r.get("ports", [])}
        for peer in r.get("to") or [{}]:
            pods = peer.get("podSelector", {}).get("matchLabels")
            if _ns_of(peer) == cfg.cluster.dns_namespace and pods == dict(
                cfg.cluster.dns_pod_labels
            ):
                dns_ok = ports == {("UDP", 53), ("TCP", 53)}
            elif peer.get("ipBlock", {}).get("cidr") == cfg.oauth2.jwks_cidr:
                idp_ok = ports == {("TCP", cfg.oauth2.jwks_port)}
            elif (
                cfg.database is not None
                and _ns_of(peer) == cfg.database.namespace
                and pods == dict(cfg.database.pod_labels)
            ):
                pg_ok = ports == {("TCP", cfg.database.port)}
            else:
                errors.append(f"egress to {peer or 'anywhere'} is not allowed")
    if not dns_ok:
        errors.append("no egress to kube-dns (namespace and pod selector) on 53 UDP/TCP")
    if not idp_ok:
        errors.append("no egress to the IdP JWKS")
    if cfg.registry.kind == "postgresql" and not pg_ok:
        errors.append("no egress to PostgreSQL")
    return errors


@policy("1.4-03")
def default_deny(objs: Objs, cfg: EnvConfig) -> list[str]:
    for p in find(in_namespace(objs, cfg.namespace), "NetworkPolicy"):
        spec = p["spec"]
        if (
            spec["podSelector"] == {}
            and set(spec.get("policyTypes", [])) == {"Ingress", "Egress"}
            and not spec.get("ingress")
            and not spec.get("egress")
        ):
            return []
    return ["no default-deny NetworkPolicy for ingress and egress"]


@policy("1.4-04")
def no_pod_to_pod(objs: Objs, cfg: EnvConfig) -> list[str]:
    """Static half of the line: nothing admits traffic from pods of the own namespace."""
    errors = default_deny(objs, cfg)
    for p in _policies(objs, "Ingress"):
        for rule in p["spec"].get("ingress", []):
            for peer in rule.get("from") or [{}]:
                if "namespaceSelector" not in peer or _ns_of(peer) in (None, cfg.namespace):
                    errors.append(
                        f"{p['metadata']['name']}: ingress from {peer} reaches pod-to-pod"
                    )
    return errors


@policy("1.4-05")
def jwks_reachable(objs: Objs, cfg: EnvConfig) -> list[str]:
    """Static half of the line: DNS and the JWKS host's port are open for egress."""
    url = service_config(objs)["oauth2"]["jwks_url"]
    authority = url.split("//", 1)[1].split("/", 1)[0]
    port = int(authority.rsplit(":", 1)[1]) if ":" in authority else 443
    errors = []
    if port != cfg.oauth2.jwks_port:
        errors.append(f"jwks_url port {port} is not the egress port {cfg.oauth2.jwks_port}")
    errors += [e for e in egress(objs, cfg) if "DNS" in e or "JWKS" in e]
    return errors


# --- ORR 1.5 / 1.6 -------------------------------------------------------------------------------


def _container_sc(objs: Objs, key: str) -> Any:
    spec = pod_spec(objs)
    sc = spec["containers"][0].get("securityContext", {})
    return sc.get(key, spec.get("securityContext", {}).get(key))


def _sc_is(objs: Objs, key: str, expected: Any) -> list[str]:
    value = _container_sc(objs, key)
    return [] if value == expected else [f"securityContext.{key} is {value}, expected {expected}"]


@policy("1.5-01")
def run_as_non_root(objs: Objs, cfg: EnvConfig) -> list[str]:
    return _sc_is(objs, "runAsNonRoot", True)


@policy("1.5-02")
def run_as_user(objs: Objs, cfg: EnvConfig) -> list[str]:
    return _sc_is(objs, "runAsUser", 1000)


@policy("1.5-03")
def read_only_root(objs: Objs, cfg: EnvConfig) -> list[str]:
    return _sc_is(objs, "readOnlyRootFilesystem", True)


@policy("1.5-04")
def no_privilege_escalation(objs: Objs, cfg: EnvConfig) -> list[str]:
    return _sc_is(objs, "allowPrivilegeEscalation", False)


@policy("1.5-05")
def drop_all(objs: Objs, cfg: EnvConfig) -> list[str]:
    caps = _container_sc(objs, "capabilities") or {}
    return [] if caps.get("drop") == ["ALL"] else [f"capabilities.drop is {caps.get('drop')}"]


def _pdb(objs: Objs) -> dict[str, Any] | None:
    pdbs = find(objs, "PodDisruptionBudget")
    return pdbs[0]["spec"] if pdbs else None


@policy("1.5-06", production)
def pdb(objs: Objs, cfg: EnvConfig) -> list[str]:
    spec = _pdb(objs)
    if spec is None:
        return ["no PodDisruptionBudget"]
    return [] if spec.get("minAvailable") == 2 else [f"minAvailable is {spec.get('minAvailable')}"]


@policy("1.5-07", autoscaled)
def drain_safe(objs: Objs, cfg: EnvConfig) -> list[str]:
    spec = _pdb(objs)
    hpa = _hpa(objs)
    if spec is None or hpa is None:
        return ["needs both a PodDisruptionBudget and an HPA"]
    errors = []
    target = workload(objs)
    pod_labels = target["spec"]["template"]["metadata"]["labels"]
    if not spec["selector"]["matchLabels"].items() <= pod_labels.items():
        errors.append("PDB selector does not match the pods")
    if not 0 < spec["minAvailable"] < hpa["minReplicas"]:
        errors.append("PDB minAvailable must be below the HPA minimum, or drains block")
    strategy = target["spec"]["strategy"]
    rolling = strategy.get("canary", strategy.get("rollingUpdate", {}))
    if rolling.get("maxUnavailable") != 0:
        errors.append("rolling update may take pods down before new ones are ready")
    return errors


@policy("1.6-01", autoscaled)
def requests(objs: Objs, cfg: EnvConfig) -> list[str]:
    value = pod_spec(objs)["containers"][0]["resources"].get("requests")
    expected = {"cpu": "500m", "memory": "512Mi"}
    return [] if value == expected else [f"requests {value}, expected {expected}"]


@policy("1.6-02", autoscaled)
def limits(objs: Objs, cfg: EnvConfig) -> list[str]:
    value = pod_spec(objs)["containers"][0]["resources"].get("limits")
    expected = {"cpu": "2000m", "memory": "1Gi"}
    return [] if value == expected else [f"limits {value}, expected {expected}"]


# --- ORR 2.2 / 2.3 -------------------------------------------------------------------------------


@policy("2.2-05")
def mtls_per_env(objs: Objs, cfg: EnvConfig) -> list[str]:
    tls = service_config(objs)["tls"]
    errors = []
    if tls.get("require_mtls") is not cfg.edge.require_mtls:
        errors.append(
            f"require_mtls is {tls.get('require_mtls')}, config says {cfg.edge.require_mtls}"
        )
    if tls.get("enabled") is not False:
        errors.append("TLS ends at the gateway: tls.enabled must be false in the pod")
    if tls.get("require_mtls") and tls.get("trusted_proxies") != [cfg.edge.gateway_cidr]:
        errors.append("mTLS needs the gateway CIDR as the only trusted proxy")
    return errors


@policy("2.2-07")
def allowed_client_sans(objs: Objs, cfg: EnvConfig) -> list[str]:
    tls = service_config(objs)["tls"]
    if tls.get("require_mtls") and not tls.get("allowed_client_sans"):
        return ["mTLS on without allowed_client_sans"]
    return []


@policy("2.3-07")
def no_secrets_in_configmaps(objs: Objs, cfg: EnvConfig) -> list[str]:
    errors = []
    for cm in find(objs, "ConfigMap"):
        for key, text in cm.get("data", {}).items():
            where = f"ConfigMap {cm['metadata']['name']}/{key}"
            # Dashboards may talk about tokens; no ConfigMap may hold key material or a URL
            # with a password, and the service's config may not even mention one.
            if cm["metadata"]["name"] == "cap-verifier-config":
                lowered = text.lower()
                errors += [f"{where} mentions {w!r}" for w in SECRET_WORDS if w.lower() in lowered]
            if CREDENTIAL.search(text):
                errors.append(f"{where} holds key material or a URL with a password")
        url = service_config(objs)["registry"]["url"]
        authority = url.split("//", 1)[-1].split("/", 1)[0]
        if ":" in authority.split("@", 1)[0] and "@" in authority:
            errors.append("registry.url carries a password")
    for c in pod_spec(objs)["containers"]:
        for env in c.get("env", []):
            if any(w in env["name"].lower() for w in ("password", "secret", "token")) and (
                "value" in env
            ):
                errors.append(f"env {env['name']} is a literal, not a secretKeyRef")
    return errors


# --- ORR 1.2 / 2.2 at the gateway (Gateway API, Envoy Gateway, cert-manager) ---------------------

GATEWAY_API = "gateway.networking.k8s.io"


def _hours(duration: str) -> float:
    """A Go duration made of h/m/s parts (cert-manager style) in hours."""
    parts = re.findall(r"([0-9.]+)(h|m|s)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    scale = {"h": 1.0, "m": 1 / 60, "s": 1 / 3600}
    return sum(float(n) * scale[u] for n, u in parts)


def _https_listener(objs: Objs, cfg: EnvConfig) -> dict[str, Any] | None:
    gateways = find(objs, "Gateway")
    if len(gateways) != 1:
        return None
    for listener in gateways[0]["spec"]["listeners"]:
        if (
            listener.get("protocol") == "HTTPS"
            and listener.get("port") == 443
            and listener.get("hostname") == cfg.host
            and listener.get("tls", {}).get("mode", "Terminate") == "Terminate"
        ):
            listener_copy: dict[str, Any] = listener
            return listener_copy
    return None


def _certificate(objs: Objs, cfg: EnvConfig) -> dict[str, Any] | None:
    for cert in find(objs, "Certificate"):
        if cfg.host in cert["spec"].get("dnsNames", []):
            spec: dict[str, Any] = cert["spec"]
            return spec
    return None


@policy("1.2-04")
def certificate_requested(objs: Objs, cfg: EnvConfig) -> list[str]:
    """A Let's Encrypt Certificate for the host is requested and served by the HTTPS listener.

    Proves the provisioning is configured, not that a certificate has been issued.
    """
    cert = _certificate(objs, cfg)
    if cert is None:
        return [f"no Certificate for {cfg.host}"]
    errors = []
    issuers = {i["metadata"]["name"]: i for i in find(objs, "ClusterIssuer")}
    issuer = issuers.get(cert["issuerRef"]["name"])
    if cert["issuerRef"].get("kind") != "ClusterIssuer" or issuer is None:
        errors.append("Certificate's issuer is not a ClusterIssuer of the model")
    elif "api.letsencrypt.org/directory" not in issuer["spec"].get("acme", {}).get("server", ""):
        errors.append("ClusterIssuer is not Let's Encrypt")
    listener = _https_listener(objs, cfg)
    refs = [] if listener is None else listener["tls"].get("certificateRefs", [])
    if not any(
        r.get("kind", "Secret") == "Secret" and r["name"] == cert["secretName"] for r in refs
    ):
        errors.append("the HTTPS listener does not serve the Certificate's secret")
    return errors


@policy("1.2-05")
def renewal_before_30_days(objs: Objs, cfg: EnvConfig) -> list[str]:
    """cert-manager renews with more than 30 days left, so a served certificate has > 30 days."""
    cert = _certificate(objs, cfg)
    if cert is None:
        return [f"no Certificate for {cfg.host}"]
    if "renewBefore" not in cert or "duration" not in cert:
        return ["Certificate sets no duration and renewBefore"]
    renew, duration = _hours(cert["renewBefore"]), _hours(cert["duration"])
    errors = []
    if renew <= 30 * 24:
        errors.append(f"renewBefore {cert['renewBefore']} is not more than 30 days")
    if renew >= duration:
        errors.append("renewBefore is not shorter than the duration")
    return errors


@policy("1.2-06")
def auto_renewal(objs: Objs, cfg: EnvConfig) -> list[str]:
    """cert-manager can renew unattended: ACME HTTP-01 through this Gateway's HTTP listener."""
    cert = _certificate(objs, cfg)
    if cert is None:
        return [f"no Certificate for {cfg.host}"]
    issuers = {i["metadata"]["name"]: i for i in find(objs, "ClusterIssuer")}
    issuer = issuers.get(cert["issuerRef"]["name"])
    if issuer is None:
        return ["Certificate's ClusterIssuer is not in the model"]
    gateways = find(objs, "Gateway")
    http_listeners = {
        (g["metadata"]["name"], g["metadata"].get("namespace"), listener["name"])
        for g in gateways
        for listener in g["spec"]["listeners"]
        if listener["protocol"] == "HTTP"
        and listener["port"] == 80
        and listener.get("hostname") in (None, cfg.host)
    }
    for solver in issuer["spec"].get("acme", {}).get("solvers", []):
        route = solver.get("http01", {}).get("gatewayHTTPRoute", {})
        for ref in route.get("parentRefs", []):
            key = (ref["name"], ref.get("namespace"), ref.get("sectionName"))
            if ref.get("kind", "Gateway") == "Gateway" and key in http_listeners:
                return []
    return ["no ACME HTTP-01 solver routed through the Gateway's HTTP listener on port 80"]


def _api_route(objs: Objs, cfg: EnvConfig) -> dict[str, Any] | None:
    """The HTTPRoute attached to the Gateway's HTTPS listener for the host."""
    listener = _https_listener(objs, cfg)
    gateways = find(objs, "Gateway")
    if listener is None or not gateways:
        return None
    gateway = gateways[0]["metadata"]["name"]
    for route in find(objs, "HTTPRoute"):
        parents = route["spec"].get("parentRefs", [])
        attached = any(
            p["name"] == gateway and p.get("sectionName") in (None, listener["name"])
            for p in parents
        )
        if attached and cfg.host in route["spec"].get("hostnames", [cfg.host]):
            spec: dict[str, Any] = route["spec"]
            return spec
    return None


@policy("1.2-08")
def route_backend_service(objs: Objs, cfg: EnvConfig) -> list[str]:
    """The HTTPS route sends every request to Service cap-verifier port 8080, which exists."""
    route = _api_route(objs, cfg)
    if route is None:
        return ["no HTTPRoute on the Gateway's HTTPS listener"]
    services = {s["metadata"]["name"]: s for s in find(objs, "Service")}
    errors = []
    for rule in route["rules"]:
        for ref in rule.get("backendRefs", []) or [{}]:
            name, port = ref.get("name"), ref.get("port")
            backends = (
                ("cap-verifier", "cap-verifier-canary") if cfg.delivery.canary.enabled else ()
            )
            if ref.get("kind", "Service") != "Service" or port != 8080:
                errors.append(f"backend {name}:{port} is not a Service on 8080")
            elif name != "cap-verifier" and name not in backends:
                errors.append(f"backend {name}:{port} is not cap-verifier:8080")
            elif port not in [
                p["port"] for p in services.get(name, {}).get("spec", {}).get("ports", [])
            ]:
                errors.append("Service cap-verifier has no port 8080")
    return errors


def routed(route: dict[str, Any], path: str) -> bool:
    """Whether any rule of ``route`` (an HTTPRoute spec) may match a request for ``path``."""
    for rule in route.get("rules", []):
        matches = rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
        for match in matches:
            p = match.get("path", {"type": "PathPrefix", "value": "/"})
            kind, value = p.get("type", "PathPrefix"), p.get("value", "/")
            if kind == "Exact" and value == path:
                return True
            if kind == "PathPrefix":
                prefix = value.rstrip("/")
                if path == prefix or path.startswith(prefix + "/"):
                    return True
            if kind not in ("Exact", "PathPrefix"):
                return True  # a regular expression: assume it may match
    return False


@policy("1.2-09")
def health_paths_routed(objs: Objs, cfg: EnvConfig) -> list[str]:
    """/healthz and /readyz reach the service through the Gateway's HTTPS listener."""
    route = _api_route(objs, cfg)
    if route is None:
        return ["no HTTPRoute on the Gateway's HTTPS listener"]
    return [f"{path} is not routed" for path in paths.PROBES if not routed(route, path)]


def _client_tls(objs: Objs, cfg: EnvConfig) -> dict[str, Any] | None:
    """The tls block of the ClientTrafficPolicy that covers the Gateway's HTTPS listener."""
    listener = _https_listener(objs, cfg)
    gateways = find(objs, "Gateway")
    if listener is None or not gateways:
        return None
    gateway = gateways[0]["metadata"]["name"]
    for traffic_policy in find(objs, "ClientTrafficPolicy"):
        for ref in traffic_policy["spec"].get("targetRefs", []):
            if (
                ref.get("group") == GATEWAY_API
                and ref.get("kind") == "Gateway"
                and ref.get("name") == gateway
                and ref.get("sectionName") in (None, listener["name"])
            ):
                tls: dict[str, Any] = traffic_policy["spec"].get("tls", {})
                return tls
    return None


@policy("2.2-01")
def tls13_minimum(objs: Objs, cfg: EnvConfig) -> list[str]:
    """The HTTPS listener terminates TLS with minimum version 1.3 (Envoy's default is 1.2)."""
    tls = _client_tls(objs, cfg)
    if tls is None:
        return ["no ClientTrafficPolicy on the Gateway's HTTPS listener"]
    if tls.get("minVersion") != "1.3":
        return [f"tls.minVersion is {tls.get('minVersion')}, expected 1.3"]
    return []


@policy("2.2-05")
def gateway_mtls_per_env(objs: Objs, cfg: EnvConfig) -> list[str]:
    """The gateway asks for client certificates exactly when require_mtls is set."""
    tls = _client_tls(objs, cfg)
    if tls is None:
        return ["no ClientTrafficPolicy on the Gateway's HTTPS listener"]
    validation = tls.get("clientValidation")
    on = validation is not None and not validation.get("optional", False)
    if on is not cfg.edge.require_mtls:
        return [f"gateway client validation is {on}, require_mtls is {cfg.edge.require_mtls}"]
    return []


@policy("2.2-06", mutual_tls)
def client_ca_bundle(objs: Objs, cfg: EnvConfig) -> list[str]:
    """With mTLS, the gateway validates clients against the configured CA bundle."""
    if not cfg.edge.require_mtls:
        return []
    tls = _client_tls(objs, cfg) or {}
    refs = tls.get("clientValidation", {}).get("caCertificateRefs", [])
    if not any(
        r.get("kind") in ("ConfigMap", "Secret") and r["name"] == cfg.edge.mtls_ca_secret
        for r in refs
    ):
        return [f"client validation does not use the CA bundle {cfg.edge.mtls_ca_secret}"]
    return []


@policy("2.2-07", mutual_tls)
def gateway_client_sans(objs: Objs, cfg: EnvConfig) -> list[str]:
    """With mTLS, the gateway enforces allowed_client_sans and forwards the verified details."""
    if not cfg.edge.require_mtls:
        return []
    policies = [
        p
        for p in find(objs, "ClientTrafficPolicy")
        if p["spec"].get("tls") is _client_tls(objs, cfg)
    ]
    tls = _client_tls(objs, cfg) or {}
    names = tls.get("clientValidation", {}).get("subjectAltNames", {}).get("dnsNames", [])
    enforced = {
        ("Suffix", n["value"]) if n.get("type") == "Suffix" else ("Exact", n["value"])
        for n in names
    }
    errors = []
    for san in cfg.edge.allowed_client_sans:
        wanted = ("Suffix", san[1:]) if san.startswith("*.") else ("Exact", san)
        if wanted not in enforced:
            errors.append(f"allowed SAN {san} is not enforced at the gateway")
    if len(enforced) != len(cfg.edge.allowed_client_sans):
        errors.append("the gateway accepts SANs outside allowed_client_sans")
    xfcc = (
        policies[0]["spec"].get("headers", {}).get("xForwardedClientCert", {}) if policies else {}
    )
    if xfcc.get("mode") != "SanitizeSet":
        errors.append("client certificate details are not forwarded (XFCC mode SanitizeSet)")
    return errors
