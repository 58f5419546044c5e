"""Delivery: the Argo CD app-of-apps, the platform charts, secrets, backups, and the canary.

ORR lines of sections 1.1, 1.2, 1.3, 2.2, 2.3 and 8.1 that the rendered objects prove, each for
every environment where it applies and against a deliberately bad input; then the GitOps
structure (pinned charts, sync waves, projects) and the canary's queries run in promtool.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import infra.policies.manifests as pol
import pytest
from infra.artefacts import Artefacts
from infra.charts import (
    ARGOCD,
    PLATFORM_CHARTS,
    WAVE_CONTROLLERS,
    WAVE_CRDS,
    WAVE_CUSTOM_RESOURCES,
    WAVE_SERVICE,
    for_env,
)
from infra.config import ENVIRONMENTS, EnvConfig
from infra.model import SYNC_OPTIONS_ANNOTATION, WAVE_ANNOTATION, audit, model, rollout, sync_wave
from infra.policies import delivery, objects
from infra.policies.pod_security import pod_security_restricted
from ruamel.yaml import YAML

from cap_ops import crds, monitoring
from cap_verifier.typed_yaml import read_yaml
from infra import gitops
from support.require import need

ROOT = Path(__file__).resolve().parents[2]
DATABASE = ("staging", "prod")
MTLS = ("staging", "prod")
HPA = ("staging", "prod")
CANARY = ("prod",)


# --- GitOps structure ----------------------------------------------------------------------------


@pytest.mark.orr("1.2-01")
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_platform_chart_is_an_automated_pinned_application(
    configs: dict[str, EnvConfig], env: str
) -> None:
    cfg = configs[env]
    apps = {a["metadata"]["name"]: a for a in gitops.applications(cfg)}
    assert set(apps) == {c.name for c in PLATFORM_CHARTS}
    for chart in PLATFORM_CHARTS:
        assert delivery.application_errors(list(apps.values()), chart.name) == []
        spec = apps[chart.name]["spec"]
        assert spec["source"]["targetRevision"] == chart.version
        # The chart's static values, with the environment's merged over them (Loki's mode).
        assert spec["source"]["helm"]["valuesObject"] == for_env(chart, cfg).values
        assert spec["destination"]["namespace"] == chart.namespace
        assert spec["project"] == gitops.PLATFORM_PROJECT
        options = spec["syncPolicy"]["syncOptions"]
        assert ("ServerSideApply=true" in options) == chart.server_side_apply, chart.name
        assert "CreateNamespace=true" in options
        retry = spec["syncPolicy"]["retry"]
        assert retry["limit"] > 0, "retry"
        assert retry["backoff"]["factor"] > 1, "retry with backoff"
        wave = int(apps[chart.name]["metadata"]["annotations"][WAVE_ANNOTATION])
        assert wave == chart.sync_wave


def test_chart_app_versions_match_the_pinned_crds() -> None:
    """The CRDs the objects are validated against are those the charts install."""
    tags: dict[str, set[str]] = {}
    for pin in crds.load_lock().crds:
        tags.setdefault(pin.project, set()).add(pin.tag)
    expected = {
        "gateway-crds": "envoyproxy/gateway",
        "envoy-gateway": "envoyproxy/gateway",
        "cert-manager": "cert-manager/cert-manager",
        "prometheus-operator-crds": "prometheus-operator/prometheus-operator",
        "kube-prometheus-stack": "prometheus-operator/prometheus-operator",
        "argo-rollouts": "argoproj/argo-rollouts",
        "cloudnative-pg": "cloudnative-pg/cloudnative-pg",
        "external-secrets": "external-secrets/external-secrets",
        "policy-controller": "sigstore/policy-controller",
        "argo-cd": "argoproj/argo-cd",
    }
    for chart in (*PLATFORM_CHARTS, ARGOCD):
        if chart.name in expected:
            (tag,) = tags[expected[chart.name]]  # one release per project
            assert chart.app_version.lstrip("v") == tag.lstrip("v"), (chart.name, tag)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_sync_waves_crds_then_controllers_then_resources_then_service(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    cfg = configs[env]
    crd_charts = [c for c in PLATFORM_CHARTS if c.sync_wave == WAVE_CRDS]
    controllers = [c for c in PLATFORM_CHARTS if c.sync_wave == WAVE_CONTROLLERS]
    assert {c.name for c in crd_charts} == {"gateway-crds", "prometheus-operator-crds"}
    # CRD bundles outgrow Helm's 1 MiB release Secret; Pulumi renders them client-side.
    assert {c.name for c in PLATFORM_CHARTS if not c.helm_release} == {c.name for c in crd_charts}
    assert len(controllers) == len(PLATFORM_CHARTS) - len(crd_charts)
    objs = model(cfg, artefacts)
    for obj in objs:
        wave = int(obj["metadata"]["annotations"][WAVE_ANNOTATION])
        assert wave == sync_wave(obj)
        assert wave > WAVE_CONTROLLERS, (obj["kind"], "must follow the controllers")
        custom = "." in obj["apiVersion"].split("/")[0] and not obj["apiVersion"].startswith(
            ("apps/", "networking.k8s.io/", "policy/", "autoscaling/", "batch/")
        )
        if custom:
            options = obj["metadata"]["annotations"][SYNC_OPTIONS_ANNOTATION]
            assert "SkipDryRunOnMissingResource=true" in options, obj["kind"]
    workload = pol.workload(objs)
    assert sync_wave(workload) == WAVE_SERVICE
    for secret in pol.find(objs, "ExternalSecret"):
        assert sync_wave(secret) == WAVE_CUSTOM_RESOURCES < sync_wave(workload)
    for ns in pol.find(objs, "Namespace"):
        inside = [o for o in objs if o["metadata"].get("namespace") == ns["metadata"]["name"]]
        assert all(sync_wave(o) >= sync_wave(ns) for o in inside)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_root_application_syncs_deploy_env(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    cfg = configs[env]
    platform, service, root = gitops.bootstrap(cfg, artefacts)
    spec = root["spec"]
    assert spec["source"] == {
        "repoURL": cfg.delivery.repo_url,
        "targetRevision": cfg.delivery.revision,
        "path": f"deploy/{env}",
    }
    assert (ROOT / spec["source"]["path"] / "kustomization.yaml").is_file()
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True, "allowEmpty": False}
    assert spec["project"] == service["metadata"]["name"]
    # The service project admits exactly the kinds deployed, and only this repository.
    deployed = [*gitops.applications(cfg), *model(cfg, artefacts)]
    allowed = {
        (k["group"], k["kind"])
        for k in service["spec"]["namespaceResourceWhitelist"]
        + service["spec"]["clusterResourceWhitelist"]
    }
    assert allowed == {(o["apiVersion"].rpartition("/")[0], o["kind"]) for o in deployed}
    assert service["spec"]["sourceRepos"] == [cfg.delivery.repo_url]
    # The platform project admits the pinned chart sources only.
    sources = {gitops.chart_source(c)["repoURL"] for c in PLATFORM_CHARTS}
    assert set(platform["spec"]["sourceRepos"]) == sources
    if cfg.delivery.canary.enabled:
        assert "RespectIgnoreDifferences=true" in spec["syncPolicy"]["syncOptions"]
        assert spec["ignoreDifferences"][0]["kind"] == "HTTPRoute"


def test_bootstrap_rendered_apart_from_what_it_syncs() -> None:
    for env in ENVIRONMENTS:
        kustomization = YAML(typ="safe", pure=True).load(
            (ROOT / "deploy" / env / "kustomization.yaml").read_text()
        )
        assert not [r for r in kustomization["resources"] if r.startswith("bootstrap")]
        assert (
            ROOT / "deploy" / env / "bootstrap" / f"application-cap-verifier-{env}.yaml"
        ).is_file()


# --- secrets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_secret_value_is_rendered(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    objs = objects("everything", configs[env], artefacts)
    assert not pol.find(objs, "Secret")
    for es in pol.find(objs, "ExternalSecret"):
        for item in es["spec"]["data"]:
            assert item["remoteRef"]["key"].startswith(configs[env].secrets.key_prefix + "/")
        for value in es["spec"]["target"].get("template", {}).get("data", {}).values():
            # Templates only splice remote values in; no literal password outside an action.
            assert "password" not in re.sub(r"\{\{[^}]*\}\}", "", value)


def test_registry_url_reaches_the_pods_from_external_secrets(
    configs: dict[str, EnvConfig], artefacts: Artefacts
) -> None:
    cfg = configs["prod"]
    objs = model(cfg, artefacts)
    es = pol.one(objs, "ExternalSecret", "cap-verifier-registry")
    url = es["spec"]["target"]["template"]["data"]["url"]
    assert url == (
        "postgresql+psycopg://cap_verifier:{{ .password | urlquery }}"
        "@cap-verifier-db-rw.cap-verifier-db.svc:5432/cap_verifier?sslmode=require"
    )
    spec = pol.pod_spec(objs)
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["registry-url"]["secret"] == {
        "secretName": "cap-verifier-registry",
        "items": [{"key": "url", "path": "url"}],
        "defaultMode": 0o440,
    }
    config = pol.service_config(objs)["registry"]
    for container in [*spec["initContainers"], *spec["containers"]]:
        # A file, not an environment variable: env leaks into /proc and crash reports.
        assert not [e for e in container["env"] if "REGISTRY" in e["name"]]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert config["url_file"] == f"{mounts['registry-url']}/url"
    store = pol.one(objs, "ClusterSecretStore")["spec"]
    assert cfg.database is not None  # prod: a postgresql registry, so its cluster
    assert store["conditions"] == [{"namespaces": [cfg.namespace, cfg.database.namespace]}]


def test_migrations_run_before_the_server(
    configs: dict[str, EnvConfig], artefacts: Artefacts
) -> None:
    for cfg in configs.values():
        spec = pol.pod_spec(model(cfg, artefacts))
        (init,) = spec["initContainers"]
        (server,) = spec["containers"]
        assert init["args"][0] == "migrate"
        assert server["args"][0] == "serve"
        assert init["image"] == server["image"]
        assert init["securityContext"] == server["securityContext"]
        assert pod_security_restricted({**spec, "containers": [init]}) == []


# --- the canary's queries, evaluated by promtool --------------------------------------------------

HASH = "abc123"
SERIES = (
    'cap_verifier_requests_total{{job="cap-verifier",rollouts_pod_template_hash="{h}",'
    'endpoint="/verify",method="POST",code="{code}",result="{result}"}}'
)
BUCKET = (
    'cap_verifier_request_duration_seconds_bucket{{job="cap-verifier",'
    'rollouts_pod_template_hash="{h}",endpoint="/verify",method="POST",le="{le}"}}'
)
# 15-second samples; the fault starts at 10m: before it 10 req/s all OK in <= 0.25 s, after it
# 10 req/s OK plus 1 req/s 5xx (9 % errors, 60 a minute) and all requests in (0.5 s, 1 s].
HEALTHY_STEPS = 40
FAULTY_STEPS = 80


def _counter(before: int, after: int) -> str:
    """Per-15 s increments ``before`` for 10 minutes, then ``after``."""
    end = before * HEALTHY_STEPS
    return f"0+{before}x{HEALTHY_STEPS} {end + after}+{after}x{FAULTY_STEPS - 1}"


def _input_series(h: str) -> list[dict[str, str]]:
    return [
        {"series": SERIES.format(h=h, code="200", result="ok"), "values": _counter(150, 150)},
        {"series": SERIES.format(h=h, code="500", result="fail"), "values": _counter(0, 15)},
        {"series": BUCKET.format(h=h, le="0.25"), "values": _counter(150, 0)},
        {"series": BUCKET.format(h=h, le="0.5"), "values": _counter(150, 0)},
        {"series": BUCKET.format(h=h, le="1"), "values": _counter(150, 165)},
        {"series": BUCKET.format(h=h, le="+Inf"), "values": _counter(150, 165)},
    ]


def _breached(query: str, limit: float) -> str:
    return f"({query}) >= bool {limit}"


TABLE = monitoring.load()
QUERIES: tuple[tuple[str, Callable[[str], str], float], ...] = (
    (
        "error-rate",
        lambda h: rollout.CanaryQueries(TABLE, h).error_ratio(),
        TABLE.canary.max_error_ratio,
    ),
    (
        "p95-latency",
        lambda h: rollout.CanaryQueries(TABLE, h).latency(),
        TABLE.slo.latency_threshold_seconds,
    ),
    (
        "5xx-per-minute",
        lambda h: rollout.CanaryQueries(TABLE, h).server_errors_per_minute(),
        TABLE.canary.max_5xx_per_minute,
    ),
)


def _promtool_file(tmp_path: Path) -> Path:
    rules = tmp_path / "empty.rules.yaml"
    rules.write_text("groups: []\n")
    tests: list[dict[str, Any]] = []
    for name, query, limit in QUERIES:
        expr = _breached(query(HASH), limit)
        tests.append(
            {
                "name": f"{name}: a 4-minute breach does not roll back, a 6-minute one does",
                "interval": "15s",
                "input_series": _input_series(HASH),
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "9m",
                        "exp_samples": [{"labels": "{}", "value": 0}],
                    },
                    {
                        "expr": expr,
                        "eval_time": "14m",
                        "exp_samples": [{"labels": "{}", "value": 0}],
                    },
                    {
                        "expr": expr,
                        "eval_time": "16m",
                        "exp_samples": [{"labels": "{}", "value": 1}],
                    },
                ],
            }
        )
        # Another rollout's pods breaching say nothing about this canary.
        other = [
            {
                "expr": expr,
                "eval_time": "16m",
                "exp_samples": [] if name == "p95-latency" else [{"labels": "{}", "value": 0}],
            }
        ]
        tests.append(
            {
                "name": f"{name}: only the canary's own pods count",
                "interval": "15s",
                "input_series": _input_series("stable99"),
                "promql_expr_test": other,
            }
        )
    path = tmp_path / "canary-test.yaml"
    buffer = YAML(typ="safe", pure=True)
    buffer.default_flow_style = False
    with path.open("w") as stream:
        buffer.dump(
            {"rule_files": [rules.name], "evaluation_interval": "1m", "tests": tests}, stream
        )
    return path


@pytest.mark.orr("8.1-08")
def test_canary_queries_roll_back_only_after_a_5_minute_breach(tmp_path: Path) -> None:
    """ORR 8.1-08 with a real PromQL engine: each analysis query crosses its limit only once the
    breach has lasted 5 minutes, and never for another ReplicaSet's pods."""
    promtool = shutil.which("promtool")
    need(promtool is not None, "promtool is not installed (Debian prometheus)")
    assert promtool is not None
    path = _promtool_file(tmp_path)
    result = subprocess.run(
        [promtool, "test", "rules", path.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_canary_query_check_fails_a_wrong_threshold(tmp_path: Path) -> None:
    """The promtool harness can fail: with a limit above the fault, no breach is seen."""
    promtool = shutil.which("promtool")
    need(promtool is not None, "promtool is not installed (Debian prometheus)")
    assert promtool is not None
    path = _promtool_file(tmp_path)
    text = path.read_text().replace(">= bool 0.01", ">= bool 0.5")
    path.write_text(text)
    result = subprocess.run(
        [promtool, "test", "rules", path.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert 'result=\\"fail\\"' in output, output
    assert "bool 0.5" in output, output


# --- Alertmanager routing and the database's network ---------------------------------------------


def test_alertmanager_config_is_the_routing_of_alerts_dir(
    configs: dict[str, EnvConfig], artefacts: Artefacts
) -> None:
    source = YAML(typ="safe", pure=True).load((ROOT / "alerts" / "alertmanager.yml").read_text())
    spec = pol.one(model(configs["prod"], artefacts), "AlertmanagerConfig")["spec"]
    route = spec["route"]
    assert route["receiver"] == source["route"]["receiver"]
    assert route["groupBy"] == source["route"]["group_by"]
    assert [(r["receiver"], r["matchers"]) for r in route["routes"]] == [
        (
            r["receiver"],
            [
                {"name": m.split("=")[0], "matchType": "=", "value": m.split('"')[1]}
                for m in r["matchers"]
            ],
        )
        for r in source["route"]["routes"]
    ]
    assert [r["name"] for r in spec["receivers"]] == [r["name"] for r in source["receivers"]]
    assert len(spec["inhibitRules"]) == len(source["inhibit_rules"])


@pytest.mark.orr("3.3-08", "3.3-10")
def test_alertmanager_config_keys_come_from_a_secret_and_the_window_mutes(
    configs: dict[str, EnvConfig], artefacts: Artefacts
) -> None:
    """Integration keys are references to the ExternalSecret the model renders; the
    maintenance window is the first Tuesday, 02:00-04:00 (UTC), muting every route but P0."""
    objs = model(configs["prod"], artefacts)
    spec = pol.one(objs, "AlertmanagerConfig")["spec"]
    pager = next(r for r in spec["receivers"] if r["name"] == "pager")
    routing_key = pager["pagerdutyConfigs"][0]["routingKey"]
    assert routing_key == {"name": "cap-verifier-alerting", "key": "pagerduty_routing_key"}
    assert pager["opsgenieConfigs"][0]["apiKey"]["key"] == "opsgenie_api_key"
    assert pager["pagerdutyConfigs"][0]["pagerDutyLinkConfigs"] == [
        {"href": "{{ .CommonAnnotations.runbook_url }}", "alt": "runbook"}
    ]
    secrets = [o for o in objs if o["kind"] == "ExternalSecret"]
    alerting = next(o for o in secrets if o["metadata"]["name"] == routing_key["name"])
    assert {d["secretKey"] for d in alerting["spec"]["data"]} == {
        "pagerduty_routing_key",
        "opsgenie_api_key",
        "slack_webhook_url",
    }
    assert {d["remoteRef"]["key"] for d in alerting["spec"]["data"]} == {
        "cap-verifier/prod/alerting"
    }
    (window,) = spec["muteTimeIntervals"]
    assert window == {
        "name": "maintenance-window",
        "timeIntervals": [
            {
                "weekdays": ["tuesday"],
                "daysOfMonth": [{"start": 1, "end": 7}],
                "times": [{"startTime": "02:00", "endTime": "04:00"}],
            }
        ],
    }
    muted = {
        r["matchers"][0]["value"]: r.get("muteTimeIntervals", []) for r in spec["route"]["routes"]
    }
    assert muted == {
        "P0": [],
        "P1": ["maintenance-window"],
        "P2": ["maintenance-window"],
        "P3": ["maintenance-window"],
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("group_wait: 30s", "group_wait: 30s\n  fancy_key: x"), "unsupported key 'fancy_key'"),
        (("matchers: ['severity=\"P2\"']", "matchers: ['severity P2']"), "unsupported matcher"),
        (
            ("/etc/alertmanager/secrets/cap-verifier-alerting/opsgenie", "/var/keys/opsgenie"),
            "is not /etc/alertmanager/secrets/<secret>/<key>",
        ),
        (("        times:", "        location: Europe/Berlin\n        times:"), "'location'"),
        (("global:", "templates: [x.tmpl]\nglobal:"), "unsupported key 'templates'"),
    ],
)
def test_alertmanager_config_refuses_what_it_cannot_convert(
    configs: dict[str, EnvConfig],
    artefacts: Artefacts,
    tmp_path: Path,
    change: tuple[str, str],
    message: str,
) -> None:
    from infra.model import monitoring

    text = (ROOT / "alerts" / "alertmanager.yml").read_text()
    bad = text.replace(*change)
    assert bad != text, change
    path = tmp_path / "alertmanager.yml"
    path.write_text(bad)
    broken = dataclasses.replace(artefacts, alertmanager=read_yaml(path))
    with pytest.raises(ValueError, match=message) as info:
        monitoring.objects(configs["prod"], broken)
    assert "\n" not in str(info.value)


def _peers(rule: dict[str, Any], key: str) -> list[dict[str, Any]]:
    peers: list[dict[str, Any]] = rule.get(key, [])
    return peers


@pytest.mark.parametrize("env", DATABASE)
def test_database_namespace_is_fenced(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    """Default deny; PostgreSQL reachable from the verifier's pods only (and the operator,
    the other instances, Prometheus); egress to DNS, instances, API server, object storage."""
    cfg = configs[env]
    assert cfg.database is not None
    policies = [
        p
        for p in pol.find(model(cfg, artefacts), "NetworkPolicy")
        if p["metadata"]["namespace"] == cfg.database.namespace
    ]
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert len(deny) == 1
    assert set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny[0]["spec"]
    assert "egress" not in deny[0]["spec"]
    ingress = [r for p in policies for r in p["spec"].get("ingress", [])]
    on_5432 = [r for r in ingress if {"protocol": "TCP", "port": 5432} in r["ports"]]
    sources = [peer for r in on_5432 for peer in _peers(r, "from")]
    verifier = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cfg.namespace}},
        "podSelector": {
            "matchLabels": pol.one(model(cfg, artefacts), "Service", "cap-verifier")["spec"][
                "selector"
            ]
        },
    }
    # The daily prune of the audit table is the verifier's own command, in pods of its own.
    prune = {
        "namespaceSelector": verifier["namespaceSelector"],
        "podSelector": pol.one(model(cfg, artefacts), "NetworkPolicy", f"{audit.NAME}-egress")[
            "spec"
        ]["podSelector"],
    }
    assert verifier in sources
    for peer in sources:
        assert (
            peer in (verifier, prune)
            or ("podSelector" in peer and "namespaceSelector" not in peer)
            or (
                peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                == "cnpg-system"
            )
        ), peer
    egress = [r for p in policies for r in p["spec"].get("egress", [])]
    blocks = {
        peer["ipBlock"]["cidr"] for r in egress for peer in _peers(r, "to") if "ipBlock" in peer
    }
    assert blocks == {cfg.database.kube_api_cidr, cfg.database.object_storage_cidr}
    for rule in [*ingress, *egress]:
        assert rule.get("from", rule.get("to")), "a rule open to everyone"
        assert rule["ports"], "a rule open on every port"
