"""Every ORR policy of ``infra/policies/`` holds wherever it applies and refuses a bad input.

Each policy is stated once, with its ORR id, in product code; here is, per policy, a deliberately
bad input (objects edited, dropped, or rendered from a bad config) that it must refuse. A test
per policy and environment carries the policy's ORR id as its marker.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from config_edits import unchecked
from infra.artefacts import Artefacts
from infra.config import ENVIRONMENTS, EnvConfig, load_all
from infra.model.common import APP
from infra.policies import POLICIES, Objs, Policy, objects, registry
from infra.policies.manifests import one, pod_spec, workload

NS_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Case:
    """One policy on one environment: what a bad input is built from."""

    policy: Policy
    cfg: EnvConfig
    artefacts: Artefacts

    def objects(self, cfg: EnvConfig | None = None) -> Objs:
        return objects(self.policy.scope, cfg or self.cfg, self.artefacts)


Bad = Callable[[Case], tuple[Objs, EnvConfig]]


def edit(change: Callable[[Objs], Any]) -> Bad:
    """The environment's objects, changed in place by ``change``."""

    def bad(case: Case) -> tuple[Objs, EnvConfig]:
        objs = copy.deepcopy(case.objects())
        change(objs)
        return objs, case.cfg

    return bad


def drop(kind: str, name: str | None = None) -> Bad:
    """The environment's objects without ``kind`` (named ``name``, or all of that kind)."""

    def change(objs: Objs) -> None:
        objs[:] = [
            o for o in objs if not (o["kind"] == kind and name in (None, o["metadata"]["name"]))
        ]

    return edit(change)


def misconfigured(changes: Mapping[str, Any] | Callable[[EnvConfig], Mapping[str, Any]]) -> Bad:
    """The objects rendered from a config with ``changes`` (dotted keys), unvalidated."""

    def bad(case: Case) -> tuple[Objs, EnvConfig]:
        wanted = changes(case.cfg) if callable(changes) else changes
        cfg = unchecked(case.cfg, wanted)
        return case.objects(cfg), cfg

    return bad


def _hpa(objs: Objs) -> dict[str, Any]:
    spec: dict[str, Any] = one(objs, "HorizontalPodAutoscaler")["spec"]
    return spec


def _container_sc(objs: Objs) -> dict[str, Any]:
    sc: dict[str, Any] = pod_spec(objs)["containers"][0]["securityContext"]
    return sc


def _spec(kind: str, name: str | None = None) -> Callable[[Objs], dict[str, Any]]:
    def get(objs: Objs) -> dict[str, Any]:
        spec: dict[str, Any] = one(objs, kind, name)["spec"]
        return spec

    return get


_cert, _route, _ctp, _issuer = (
    _spec("Certificate"),
    _spec("HTTPRoute", APP),
    _spec("ClientTrafficPolicy"),
    _spec("ClusterIssuer"),
)


def _canary(objs: Objs) -> dict[str, Any]:
    spec: dict[str, Any] = one(objs, "Rollout")["spec"]["strategy"]["canary"]
    return spec


def _metric(objs: Objs, name: str) -> dict[str, Any]:
    metrics = one(objs, "AnalysisTemplate")["spec"]["metrics"]
    found: dict[str, Any] = next(m for m in metrics if m["name"] == name)
    return found


def _container(objs: Objs) -> dict[str, Any]:
    container: dict[str, Any] = pod_spec(objs)["containers"][0]
    return container


def _by_tag(objs: Objs) -> None:
    """The service's image by a tag of its own repository instead of its digest."""
    container = _container(objs)
    container["image"] = container["image"].partition("@")[0] + ":0.11.0"


def _dns_by_namespace_only(objs: Objs) -> None:
    """DNS egress to the whole kube-system namespace instead of kube-dns pods only."""
    egress = one(objs, "NetworkPolicy", "cap-verifier-egress")["spec"]["egress"]
    egress[0]["to"][0].pop("podSelector")


def _enable_pod_tls(objs: Objs) -> None:
    data = one(objs, "ConfigMap", "cap-verifier-config")["data"]
    data["config.yaml"] = data["config.yaml"].replace("enabled: false", "enabled: true")


def _toggle_mtls(objs: Objs) -> None:
    tls = _ctp(objs)["tls"]
    if "clientValidation" in tls:
        tls.pop("clientValidation")
    else:
        tls["clientValidation"] = {"caCertificateRefs": [{"kind": "ConfigMap", "name": "ca"}]}


def _ingress_from_own_namespace(case: Case) -> tuple[Objs, EnvConfig]:
    objs = copy.deepcopy(case.objects())
    rules = one(objs, "NetworkPolicy", "cap-verifier-ingress")["spec"]["ingress"]
    rules.append({"from": [{"namespaceSelector": {"matchLabels": {NS_LABEL: case.cfg.namespace}}}]})
    return objs, case.cfg


# A deliberately bad input per policy (by function name).
BAD: dict[str, Bad] = {
    # 1.1 cluster and namespace
    "anti_affinity": edit(lambda o: pod_spec(o).pop("affinity")),
    "k8s_version": misconfigured({"cluster.k8s_version_oldest": "1.23"}),
    "namespace": misconfigured({"namespace": "default"}),
    "resource_quota": drop("ResourceQuota"),
    "limit_range": drop("LimitRange"),
    "registry_volume": drop("PersistentVolumeClaim"),
    "sqlite_single_writer": edit(lambda o: workload(o)["spec"].update(replicas=2)),
    "backup_strategy": edit(
        lambda o: one(o, "Cluster")["spec"]["backup"].update(retentionPolicy="7d")
    ),
    # 1.2 gateway and certificates
    "gateway_controller": drop("Application", "envoy-gateway"),
    "certificate_requested": edit(lambda o: _cert(o).update(secretName="other-tls")),
    "renewal_before_30_days": edit(lambda o: _cert(o).update(renewBefore="360h")),
    "auto_renewal": edit(
        lambda o: _issuer(o)["acme"]["solvers"][0]["http01"]["gatewayHTTPRoute"]["parentRefs"][
            0
        ].update(sectionName="https")
    ),
    "ingress_resource": edit(
        lambda o: one(o, "HTTPRoute", "cap-verifier-https-redirect")["spec"]["rules"][0].update(
            backendRefs=[{"name": "cap-verifier", "port": 8080}]
        )
    ),
    "backend_service": edit(lambda o: one(o, "Service", APP)["spec"]["ports"][0].update(port=80)),
    "route_backend_service": edit(
        lambda o: _route(o)["rules"][0]["backendRefs"][0].update(port=80)
    ),
    "health_paths": edit(
        lambda o: pod_spec(o)["containers"][0]["readinessProbe"]["httpGet"].update(path="/healthz")
    ),
    "health_paths_routed": edit(lambda o: _route(o)["rules"][0]["matches"].pop(1)),
    # 1.3 autoscaling
    "metrics_server": edit(
        lambda o: one(o, "Application", "metrics-server")["spec"]["source"].update(
            targetRevision="3.*"
        )
    ),
    "hpa_deployed": misconfigured({"scaling.hpa.enabled": False}),
    "hpa_min_replicas": misconfigured({"scaling.hpa.min_replicas": 2}),
    "hpa_max_replicas": misconfigured({"scaling.hpa.max_replicas": 10}),
    "hpa_cpu_target": edit(lambda o: _hpa(o)["metrics"].pop(0)),
    "hpa_memory_target": edit(lambda o: _hpa(o)["metrics"].pop(1)),
    "scale_up": edit(
        lambda o: _hpa(o)["behavior"]["scaleUp"]["policies"].append(
            {"type": "Percent", "value": 100, "periodSeconds": 15}
        )
    ),
    "scale_down": edit(lambda o: _hpa(o)["behavior"]["scaleDown"]["policies"][0].update(value=4)),
    "stabilization": misconfigured({"scaling.hpa.scale_down_stabilization_seconds": 60}),
    # 1.4 network policies
    "ingress_only_from_gateway": edit(
        lambda o: one(o, "NetworkPolicy", "cap-verifier-ingress")["spec"]["ingress"].append(
            {"from": [{"podSelector": {}}]}
        )
    ),
    "egress": edit(_dns_by_namespace_only),
    "default_deny": drop("NetworkPolicy"),
    "no_pod_to_pod": _ingress_from_own_namespace,
    "jwks_reachable": misconfigured({"oauth2.jwks_port": 8443}),
    # 1.5 pod security and disruption
    "run_as_non_root": edit(lambda o: _container_sc(o).update(runAsNonRoot=False)),
    "run_as_user": edit(lambda o: _container_sc(o).update(runAsUser=0)),
    "read_only_root": edit(lambda o: _container_sc(o).pop("readOnlyRootFilesystem")),
    "no_privilege_escalation": edit(lambda o: _container_sc(o).pop("allowPrivilegeEscalation")),
    "drop_all": edit(lambda o: _container_sc(o).update(capabilities={})),
    "pdb": misconfigured({"scaling.pdb_min_available": 1}),
    "drain_safe": misconfigured(
        lambda c: {"scaling.pdb_min_available": c.scaling.hpa.min_replicas}
    ),
    # 1.6 resources
    "requests": misconfigured({"service.resources.cpu_request": "250m"}),
    "limits": misconfigured({"service.resources.memory_limit": "2Gi"}),
    # 2.2 TLS and mTLS
    "tls13_minimum": edit(lambda o: _ctp(o)["tls"].update(minVersion="1.2")),
    "cipher_suites": edit(lambda o: _ctp(o)["tls"].update(minVersion="1.2")),
    "mtls_per_env": edit(_enable_pod_tls),
    "gateway_mtls_per_env": edit(_toggle_mtls),
    "client_ca_bundle": edit(lambda o: _ctp(o)["tls"]["clientValidation"].pop("caCertificateRefs")),
    "allowed_client_sans": misconfigured(
        {"edge.require_mtls": True, "edge.allowed_client_sans": ()}
    ),
    "gateway_client_sans": edit(
        lambda o: _ctp(o)["tls"]["clientValidation"].pop("subjectAltNames")
    ),
    # 2.3 secrets
    "oauth2_secret": edit(
        lambda o: o.append(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "leak"}, "data": {}}
        )
    ),
    "tls_secret": edit(lambda o: _cert(o).update(secretName="other-tls")),
    "client_ca_secret": drop("ClusterSecretStore", "cap-verifier"),
    "tls_auto_renewal": edit(lambda o: _cert(o).pop("renewBefore")),
    "no_secrets_in_configmaps": misconfigured(
        {"registry.url": "postgresql+psycopg://cap:hunter2@db/cap"}
    ),
    # 2.4 image security
    "signed_images_admitted": edit(
        lambda o: one(o, "ClusterImagePolicy")["spec"].update(
            authorities=[{"name": "anyone", "keyless": {"url": "https://fulcio.sigstore.dev"}}]
        )
    ),
    "images_from_private_registry": edit(
        lambda o: _container(o).update(image=f"docker.io/library/python@sha256:{'0' * 64}")
    ),
    "images_by_digest": edit(_by_tag),
    "image_pull_secret": edit(lambda o: one(o, "ServiceAccount", APP).pop("imagePullSecrets")),
    # 8.1 canary
    "canary_configured": edit(lambda o: _route(o)["rules"][0]["backendRefs"].pop()),
    "traffic_split": edit(lambda o: _canary(o)["steps"].pop(0)),
    "fifteen_minutes_per_stage": edit(
        lambda o: _canary(o)["steps"][3].update(pause={"duration": "5m"})
    ),
    "automatic_rollback": edit(lambda o: _metric(o, "p95-latency").update(failureLimit=3)),
    "error_rate": edit(
        lambda o: _metric(o, "error-rate").update(
            successCondition="isNaN(result[0]) || result[0] < 0.05"
        )
    ),
    "p95_latency": edit(
        lambda o: _metric(o, "p95-latency")["provider"]["prometheus"].update(
            query="histogram_quantile(0.95, rate(x[1m]))"
        )
    ),
    "server_errors_per_minute": edit(
        lambda o: _metric(o, "server-errors-per-minute").update(successCondition="result[0] < 100")
    ),
    "breach_for_5_minutes": edit(lambda o: _metric(o, "error-rate").update(interval="10m")),
}

CONFIGS = load_all()  # read once at collection, to know where each policy applies
CASES = [
    pytest.param(p, env, id=f"{p.orr_id}-{p.name}-{env}", marks=pytest.mark.orr(p.orr_id))
    for p in POLICIES
    for env, cfg in CONFIGS.items()
    if p.applies(cfg)
]


@pytest.mark.parametrize(("policy", "env"), CASES)
def test_policy_holds(policy: Policy, env: str, artefacts: Artefacts) -> None:
    cfg = CONFIGS[env]
    assert policy(objects(policy.scope, cfg, artefacts), cfg) == [], f"ORR {policy.orr_id}"


@pytest.mark.parametrize(("policy", "env"), CASES)
def test_policy_refuses_its_bad_input(policy: Policy, env: str, artefacts: Artefacts) -> None:
    bad_objs, bad_cfg = BAD[policy.name](Case(policy, CONFIGS[env], artefacts))
    assert policy(bad_objs, bad_cfg) != [], f"ORR {policy.orr_id}: a bad input passes"


def test_every_policy_has_one_bad_input_and_a_line() -> None:
    names = [p.name for p in POLICIES]
    assert len(names) == len(set(names)), "two policies share a name"
    assert set(BAD) == set(names)
    assert all(p.orr_id for p in POLICIES)


def test_every_policy_applies_somewhere() -> None:
    assert [p.name for p in POLICIES if not any(p.applies(c) for c in CONFIGS.values())] == []


@pytest.mark.parametrize(
    ("applies", "environments"),
    [
        (registry.everywhere, ENVIRONMENTS),
        (registry.autoscaled, ("staging", "prod")),
        (registry.production, ("prod",)),
        (registry.sqlite_registry, ("dev",)),
        (registry.postgresql_registry, ("staging", "prod")),
        (registry.mutual_tls, ("staging", "prod")),
        (registry.canary, ("prod",)),
        (registry.pins_digests, ("staging", "prod")),
        (registry.pull_secret, ("dev",)),
    ],
)
def test_where_policies_apply(
    applies: Callable[[EnvConfig], bool], environments: tuple[str, ...]
) -> None:
    """The environments each applicability rule selects, as the design wants them."""
    assert tuple(env for env, cfg in CONFIGS.items() if applies(cfg)) == environments
