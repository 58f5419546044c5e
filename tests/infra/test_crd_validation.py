"""Custom resources (Gateway API, Envoy Gateway, cert-manager, Prometheus Operator).

Every custom resource of every environment validates against the served version of its CRD
schema; the gateway, certificate and monitoring objects prove their ORR lines.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import crd_schemas
import k8s_policies as pol
import kubernetes_validate
import pytest
from infra.config import ENVIRONMENTS, EnvConfig
from infra.model import model
from infra.model.common import APP
from orr_tests import Bad, Check, orr_tests
from ruamel.yaml import YAML

from infra import gitops

ROOT = Path(__file__).resolve().parents[2]
Objs = list[dict[str, Any]]
CUSTOM_KINDS = {
    "AlertmanagerConfig",
    "Application",
    "AppProject",
    "BackendTrafficPolicy",
    "Certificate",
    "ClientTrafficPolicy",
    "ClusterIssuer",
    "ClusterSecretStore",
    "ExternalSecret",
    "Gateway",
    "GatewayClass",
    "HTTPRoute",
    "PrometheusRule",
    "ServiceMonitor",
}
# Only where the environment has them: PostgreSQL (CloudNativePG) and the canary.
DATABASE_KINDS = {"Cluster", "ScheduledBackup"}
CANARY_KINDS = {"Rollout", "AnalysisTemplate"}


def everything(cfg: EnvConfig) -> Objs:
    return [*gitops.applications(cfg), *model(cfg), *gitops.bootstrap(cfg)]


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
def test_custom_resources_valid_against_crds(configs: dict[str, EnvConfig], env: str) -> None:
    cfg = configs[env]
    custom = _custom(everything(cfg))
    expected = CUSTOM_KINDS | (DATABASE_KINDS if cfg.database else set())
    assert {o["kind"] for o in custom} == expected | (CANARY_KINDS if cfg.canary_enabled else set())
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
    ],
)
def test_bad_custom_resource_fails(
    configs: dict[str, EnvConfig], kind: str, edit: Callable[[dict[str, Any]], Any], where: str
) -> None:
    bad = copy.deepcopy(pol.one(model(configs["prod"]), kind, APP if kind == "HTTPRoute" else None))
    edit(bad["spec"])
    problems = crd_schemas.errors(bad)
    assert problems, kind
    assert any(p.startswith(where) for p in problems), problems


# --- routing and monitoring --------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_metrics_not_routed(configs: dict[str, EnvConfig], env: str) -> None:
    routes = pol.find(model(configs[env]), "HTTPRoute")
    forwarding = [r for r in routes if any(rule.get("backendRefs") for rule in r["spec"]["rules"])]
    assert forwarding
    for route in routes:
        if route not in forwarding:
            # The HTTP listener's redirect: every rule answers 301 to https, nothing forwarded.
            for rule in route["spec"]["rules"]:
                assert [f["type"] for f in rule["filters"]] == ["RequestRedirect"]
    for route in forwarding:
        for path in ("/metrics", "/metrics/", "/metricsz"):
            assert not pol.routed(route["spec"], path), path
        for path in ("/healthz", "/readyz", "/openapi.yaml", "/policy", "/verify"):
            assert pol.routed(route["spec"], path), path


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
    configs: dict[str, EnvConfig], match: dict[str, Any]
) -> None:
    route = copy.deepcopy(pol.one(model(configs["prod"]), "HTTPRoute", APP))
    route["spec"]["rules"][0]["matches"].append(match)
    assert pol.routed(route["spec"], "/metrics")


def _rule_file_groups() -> list[Any]:
    yaml = YAML(typ="safe", pure=True)
    groups: list[Any] = []
    for path in sorted((ROOT / "alerts").glob("*.rules.yaml")):
        groups.extend(yaml.load(path.read_text(encoding="utf-8"))["groups"])
    return groups


def test_prometheus_rule_groups_are_the_alert_files(configs: dict[str, EnvConfig]) -> None:
    expected = _rule_file_groups()
    assert len(expected) >= 5
    for cfg in configs.values():
        assert pol.one(model(cfg), "PrometheusRule")["spec"]["groups"] == expected


def test_service_monitor_scrapes_the_service(configs: dict[str, EnvConfig]) -> None:
    for cfg in configs.values():
        objs = model(cfg)
        spec = pol.one(objs, "ServiceMonitor")["spec"]
        service = pol.one(objs, "Service", APP)
        assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert spec["namespaceSelector"] == {"matchNames": [cfg.namespace]}
        assert spec["endpoints"] == [
            {"port": "http", "path": "/metrics", "interval": "30s", "scheme": "http"}
        ]
        assert "http" in [p["name"] for p in service["spec"]["ports"]]


def test_issuer_follows_the_design(configs: dict[str, EnvConfig]) -> None:
    servers = {
        env: pol.one(model(cfg), "ClusterIssuer")["spec"]["acme"]["server"]
        for env, cfg in configs.items()
    }
    assert servers == {
        "dev": "https://acme-staging-v02.api.letsencrypt.org/directory",
        "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
        "prod": "https://acme-v02.api.letsencrypt.org/directory",
    }


def test_backend_traffic_policy_follows_config(configs: dict[str, EnvConfig]) -> None:
    for cfg in configs.values():
        spec = pol.one(model(cfg), "BackendTrafficPolicy")["spec"]
        assert spec["targetRefs"] == [
            {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": APP}
        ]
        limit = spec["rateLimit"]["local"]["rules"][0]["limit"]
        assert limit == {"requests": cfg.rate_limit_requests, "unit": cfg.rate_limit_unit}
        assert spec["timeout"]["http"]["requestTimeout"] == f"{cfg.request_timeout_seconds}s"


def test_no_ciphers_with_tls13_minimum(configs: dict[str, EnvConfig]) -> None:
    """The CRD's CEL rule (not checked by jsonschema): ciphers have no effect with minimum 1.3."""
    for cfg in configs.values():
        tls = pol.one(model(cfg), "ClientTrafficPolicy")["spec"]["tls"]
        assert tls["minVersion"] == "1.3"
        assert "ciphers" not in tls


# --- ORR lines ---------------------------------------------------------------------------------

MTLS = tuple(e for e in ENVIRONMENTS if e != "dev")


def _edit(cfg: EnvConfig, edit: Callable[[Objs], Any]) -> tuple[Objs, EnvConfig]:
    objs = copy.deepcopy(model(cfg))
    edit(objs)
    return objs, cfg


def _spec(kind: str, name: str | None = None) -> Callable[[Objs], dict[str, Any]]:
    def get(objs: Objs) -> dict[str, Any]:
        spec: dict[str, Any] = pol.one(objs, kind, name)["spec"]
        return spec

    return get


_cert, _route, _ctp, _issuer = (
    _spec("Certificate"),
    _spec("HTTPRoute", APP),
    _spec("ClientTrafficPolicy"),
    _spec("ClusterIssuer"),
)


def _toggle_mtls(objs: Objs) -> None:
    tls = _ctp(objs)["tls"]
    if "clientValidation" in tls:
        tls.pop("clientValidation")
    else:
        tls["clientValidation"] = {"caCertificateRefs": [{"kind": "ConfigMap", "name": "ca"}]}


# ORR id, check, environments where the line applies, a deliberately bad input.
ORR: list[tuple[str, Check, tuple[str, ...], Bad]] = [
    (
        "1.2-04",
        pol.orr_1_2_04_certificate_requested,
        ENVIRONMENTS,
        lambda c: _edit(c, lambda o: _cert(o).update(secretName="other-tls")),
    ),
    (
        "1.2-05",
        pol.orr_1_2_05_renewal_before_30_days,
        ENVIRONMENTS,
        lambda c: _edit(c, lambda o: _cert(o).update(renewBefore="360h")),
    ),
    (
        "1.2-06",
        pol.orr_1_2_06_auto_renewal,
        ENVIRONMENTS,
        lambda c: _edit(
            c,
            lambda o: _issuer(o)["acme"]["solvers"][0]["http01"]["gatewayHTTPRoute"]["parentRefs"][
                0
            ].update(sectionName="https"),
        ),
    ),
    (
        "1.2-08",
        pol.orr_1_2_08_route_backend_service,
        ENVIRONMENTS,
        lambda c: _edit(c, lambda o: _route(o)["rules"][0]["backendRefs"][0].update(port=80)),
    ),
    (
        "1.2-09",
        pol.orr_1_2_09_health_paths_routed,
        ENVIRONMENTS,
        lambda c: _edit(c, lambda o: _route(o)["rules"][0]["matches"].pop(1)),
    ),
    (
        "2.2-01",
        pol.orr_2_2_01_tls13_minimum,
        ENVIRONMENTS,
        lambda c: _edit(c, lambda o: _ctp(o)["tls"].update(minVersion="1.2")),
    ),
    ("2.2-05", pol.orr_2_2_05_gateway_mtls_per_env, ENVIRONMENTS, lambda c: _edit(c, _toggle_mtls)),
    (
        "2.2-06",
        pol.orr_2_2_06_client_ca_bundle,
        MTLS,
        lambda c: _edit(c, lambda o: _ctp(o)["tls"]["clientValidation"].pop("caCertificateRefs")),
    ),
    (
        "2.2-07",
        pol.orr_2_2_07_gateway_client_sans,
        MTLS,
        lambda c: _edit(c, lambda o: _ctp(o)["tls"]["clientValidation"].pop("subjectAltNames")),
    ),
]


globals().update(orr_tests(ORR))


def test_policy_table_names_each_line_once() -> None:
    items = [item for item, *_ in ORR]
    assert len(items) == len(set(items))
    for item, check, _, _ in ORR:
        assert check.__name__.startswith("orr_" + item.replace(".", "_").replace("-", "_"))


def test_mtls_sans_check_rejects_extra_san(configs: dict[str, EnvConfig]) -> None:
    cfg = configs["prod"]
    objs, _ = _edit(
        cfg,
        lambda o: _ctp(o)["tls"]["clientValidation"]["subjectAltNames"]["dnsNames"].append(
            {"type": "Suffix", "value": ".example.com"}
        ),
    )
    assert pol.orr_2_2_07_gateway_client_sans(objs, cfg) != []
    relaxed = dataclasses.replace(cfg, require_mtls=False)
    assert pol.orr_2_2_07_gateway_client_sans(model(relaxed), relaxed) == []
