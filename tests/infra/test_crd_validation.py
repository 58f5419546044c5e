"""Custom resources (Gateway API, Envoy Gateway, cert-manager, Prometheus Operator).

Every custom resource of every environment validates against the served version of its CRD
schema; the gateway, certificate and monitoring objects prove their ORR lines.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import infra.policies.manifests as pol
import kubernetes_validate
import pytest
from config_edits import changed
from infra.artefacts import Artefacts
from infra.config import ENVIRONMENTS, EnvConfig
from infra.model import model
from infra.model.common import APP
from infra.model.gateway import envoy_duration
from infra.policies import kubernetes, objects
from ruamel.yaml import YAML

from cap_ops.durations import seconds
from cap_verifier.settings import ServerSettings
from support import crd_schemas

ROOT = Path(__file__).resolve().parents[2]
Objs = list[dict[str, Any]]
CUSTOM_KINDS = {
    "AlertmanagerConfig",
    "Application",
    "AppProject",
    "BackendTrafficPolicy",
    "Certificate",
    "ClientTrafficPolicy",
    "ClusterImagePolicy",
    "ClusterIssuer",
    "ClusterSecretStore",
    "ExternalSecret",
    "Gateway",
    "GatewayClass",
    "HTTPRoute",
    "Probe",
    "PrometheusRule",
    "ServiceMonitor",
}
# Only where the environment has them: PostgreSQL (CloudNativePG) and the canary.
DATABASE_KINDS = {"Cluster", "ScheduledBackup"}
CANARY_KINDS = {"Rollout", "AnalysisTemplate"}


def _custom(objs: Objs) -> Objs:
    """Objects with no core Kubernetes schema."""
    custom = []
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, "1.34", strict=True)
        except (kubernetes_validate.SchemaNotFoundError, FileNotFoundError):
            custom.append(obj)
        except kubernetes_validate.ValidationError:
            pass
    return custom


# --- CRD schema validation ---------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_custom_resources_valid_against_crds(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    cfg = configs[env]
    custom = _custom(objects("everything", cfg, artefacts))
    expected = CUSTOM_KINDS | (DATABASE_KINDS if cfg.database else set())
    assert {o["kind"] for o in custom} == expected | (
        CANARY_KINDS if cfg.delivery.canary.enabled else set()
    )
    for obj in custom:
        assert crd_schemas.errors(obj) == [], (env, obj["kind"])


def test_unknown_kind_has_no_schema() -> None:
    for bogus in (
        {"apiVersion": "example.com/v1", "kind": "Canary", "metadata": {"name": "x"}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Canary", "metadata": {}},
        {"apiVersion": "gateway.envoyproxy.io/v9", "kind": "ClientTrafficPolicy"},
    ):
        with pytest.raises(crd_schemas.NoSchemaError):
            crd_schemas.errors(bogus)


@pytest.mark.parametrize(
    ("kind", "edit", "where"),
    [
        ("Gateway", lambda s: s["listeners"][1].update(port="443"), "spec.listeners.1.port"),
        ("HTTPRoute", lambda s: s.update(hostname="typo"), "spec"),
        (
            "ClientTrafficPolicy",
            lambda s: s["tls"].update(minVersion="TLSv1.3"),
            "spec.tls.minVersion",
        ),
        (
            "BackendTrafficPolicy",
            lambda s: s["rateLimit"]["local"]["rules"][0]["limit"].update(unit="Fortnight"),
            "spec.rateLimit.local.rules.0.limit.unit",
        ),
        ("Certificate", lambda s: s.pop("issuerRef"), "spec"),
        ("ServiceMonitor", lambda s: s["endpoints"][0].update(interval="30 seconds"), "spec"),
        ("PrometheusRule", lambda s: s["groups"][0].pop("name"), "spec.groups.0"),
        (
            "ClusterImagePolicy",
            lambda s: s["authorities"][0]["key"].update(pem="-----BEGIN PUBLIC KEY-----"),
            "spec.authorities.0.key",
        ),
        ("ClusterImagePolicy", lambda s: s.update(images="registry/*"), "spec.images"),
    ],
)
def test_bad_custom_resource_fails(
    configs: dict[str, EnvConfig],
    kind: str,
    edit: Callable[[dict[str, Any]], Any],
    where: str,
    artefacts: Artefacts,
) -> None:
    bad = copy.deepcopy(
        pol.one(model(configs["prod"], artefacts), kind, APP if kind == "HTTPRoute" else None)
    )
    edit(bad["spec"])
    problems = crd_schemas.errors(bad)
    assert problems, kind
    assert any(p.startswith(where) for p in problems), problems


# --- routing and monitoring --------------------------------------------------------------------


@pytest.mark.orr("3.1-01")
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_metrics_not_routed(configs: dict[str, EnvConfig], env: str, artefacts: Artefacts) -> None:
    routes = pol.find(model(configs[env], artefacts), "HTTPRoute")
    forwarding = [r for r in routes if any(rule.get("backendRefs") for rule in r["spec"]["rules"])]
    assert forwarding
    for route in routes:
        if route not in forwarding:
            # The HTTP listener's redirect: every rule answers 301 to https, nothing forwarded.
            for rule in route["spec"]["rules"]:
                assert [f["type"] for f in rule["filters"]] == ["RequestRedirect"]
    for route in forwarding:
        for path in ("/metrics", "/metrics/", "/metricsz"):
            assert not kubernetes.routed(route["spec"], path), path
        for path in ("/healthz", "/readyz", "/openapi.yaml", "/policy", "/verify"):
            assert kubernetes.routed(route["spec"], path), path


@pytest.mark.parametrize(
    "match",
    [
        {"path": {"type": "PathPrefix", "value": "/"}},
        {"path": {"type": "Exact", "value": "/metrics"}},
        {"path": {"type": "RegularExpression", "value": "/m.*"}},
        {"headers": [{"name": "x", "value": "y"}]},
    ],
)
def test_metrics_routing_check_catches_a_bad_route(
    configs: dict[str, EnvConfig], match: dict[str, Any], artefacts: Artefacts
) -> None:
    route = copy.deepcopy(pol.one(model(configs["prod"], artefacts), "HTTPRoute", APP))
    route["spec"]["rules"][0]["matches"].append(match)
    assert kubernetes.routed(route["spec"], "/metrics")


def _rule_file_groups() -> list[Any]:
    yaml = YAML(typ="safe", pure=True)
    groups: list[Any] = []
    for path in sorted((ROOT / "alerts").glob("*.rules.yaml")):
        groups.extend(yaml.load(path.read_text(encoding="utf-8"))["groups"])
    return groups


def test_prometheus_rule_groups_are_the_alert_files(
    configs: dict[str, EnvConfig], artefacts: Artefacts
) -> None:
    expected = _rule_file_groups()
    assert len(expected) >= 5
    for cfg in configs.values():
        assert pol.one(model(cfg, artefacts), "PrometheusRule")["spec"]["groups"] == expected


@pytest.mark.orr("3.1-02", "3.1-03")
def test_service_monitor_scrapes_the_service(
    configs: dict[str, EnvConfig], artefacts: Artefacts
) -> None:
    for cfg in configs.values():
        objs = model(cfg, artefacts)
        spec = pol.one(objs, "ServiceMonitor")["spec"]
        service = pol.one(objs, "Service", APP)
        assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert spec["namespaceSelector"] == {"matchNames": [cfg.namespace]}
        assert spec["endpoints"] == [
            {"port": "http", "path": "/metrics", "interval": "30s", "scheme": "http"}
        ]
        assert "http" in [p["name"] for p in service["spec"]["ports"]]


def test_issuer_follows_the_design(configs: dict[str, EnvConfig], artefacts: Artefacts) -> None:
    servers = {
        env: pol.one(model(cfg, artefacts), "ClusterIssuer")["spec"]["acme"]["server"]
        for env, cfg in configs.items()
    }
    assert servers == {
        "dev": "https://acme-staging-v02.api.letsencrypt.org/directory",
        "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
        "prod": "https://acme-v02.api.letsencrypt.org/directory",
    }


def test_backend_traffic_policy_follows_config(
    configs: dict[str, EnvConfig], artefacts: Artefacts
) -> None:
    for cfg in configs.values():
        spec = pol.one(model(cfg, artefacts), "BackendTrafficPolicy")["spec"]
        assert spec["targetRefs"] == [
            {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": APP}
        ]
        limit = spec["rateLimit"]["local"]["rules"][0]["limit"]
        assert limit == {"requests": cfg.edge.rate_limit.requests, "unit": cfg.edge.rate_limit.unit}
        assert spec["timeout"]["http"]["requestTimeout"] == f"{cfg.edge.request_timeout_seconds}s"


def test_no_ciphers_with_tls13_minimum(configs: dict[str, EnvConfig], artefacts: Artefacts) -> None:
    """The CRD's CEL rule (not checked by jsonschema): ciphers have no effect with minimum 1.3."""
    for cfg in configs.values():
        tls = pol.one(model(cfg, artefacts), "ClientTrafficPolicy")["spec"]["tls"]
        assert tls["minVersion"] == "1.3"
        assert "ciphers" not in tls


def _ctp(objs: Objs) -> dict[str, Any]:
    spec: dict[str, Any] = pol.one(objs, "ClientTrafficPolicy")["spec"]
    return spec


def test_mtls_sans_check_rejects_extra_san(
    configs: dict[str, EnvConfig], artefacts: Artefacts
) -> None:
    cfg = configs["prod"]
    objs = copy.deepcopy(model(cfg, artefacts))
    _ctp(objs)["tls"]["clientValidation"]["subjectAltNames"]["dnsNames"].append(
        {"type": "Suffix", "value": ".example.com"}
    )
    assert kubernetes.gateway_client_sans(objs, cfg) != []
    relaxed = changed(cfg, {"edge.require_mtls": False})
    assert kubernetes.gateway_client_sans(model(relaxed, artefacts), relaxed) == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_gateway_enforces_the_pods_deadlines_first(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    """Envoy cuts off a slow client with the pods' own head and body deadlines, limits client
    connections, and drops idle upstream connections before a pod would."""
    cfg = configs[env]
    objs = model(cfg, artefacts)
    client = pol.one(objs, "ClientTrafficPolicy")["spec"]
    server = pol.service_config(objs)["server"]
    head = server.get("head_timeout", ServerSettings().head_timeout)
    body = server.get("body_timeout", ServerSettings().body_timeout)
    assert client["timeout"]["http"]["requestHeadersReceivedTimeout"] == envoy_duration(head)
    assert client["timeout"]["http"]["requestReceivedTimeout"] == envoy_duration(head + body)
    assert client["connection"]["connectionLimit"]["value"] == cfg.edge.connection_limit
    upstream_idle = pol.one(objs, "BackendTrafficPolicy")["spec"]["timeout"]["http"]
    assert seconds(upstream_idle["connectionIdleTimeout"]) < head


def test_envoy_durations_are_whole_seconds_or_milliseconds() -> None:
    assert [envoy_duration(v) for v in (5, 2.5, 0.25, 15.0)] == ["5s", "2500ms", "250ms", "15s"]
