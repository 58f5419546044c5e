"""The audit table's prune in Kubernetes: a CronJob where the registry is PostgreSQL, restricted
like the service's pods and apart from them; none where it is SQLite (the service prunes its one
file itself)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import infra.policies.manifests as pol
import pytest
from infra.artefacts import Artefacts
from infra.config import ENVIRONMENTS, EnvConfig
from infra.model import audit, model
from infra.policies.pod_security import pod_security_restricted
from test_k8s_model import validate

from cap_verifier.settings import load_settings

POSTGRESQL_ENVS = [env for env in ENVIRONMENTS if env != "dev"]


def _cron_pod(objs: list[dict[str, Any]]) -> dict[str, Any]:
    cron = pol.one(objs, "CronJob", audit.NAME)
    spec: dict[str, Any] = cron["spec"]["jobTemplate"]["spec"]["template"]
    return spec


def _selects(selector: dict[str, str], pod_labels: dict[str, str]) -> bool:
    return all(pod_labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_cron_job_exactly_where_the_registry_is_postgresql(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    cfg = configs[env]
    crons = pol.find(model(cfg, artefacts), "CronJob")
    assert len(crons) == (1 if cfg.registry.kind == "postgresql" else 0)


def test_dev_is_sqlite_and_its_service_prunes_it(
    configs: dict[str, EnvConfig], artefacts: Artefacts, tmp_path: Path
) -> None:
    objs = model(configs["dev"], artefacts)
    assert configs["dev"].registry.kind == "sqlite"
    path = tmp_path / "config.yaml"
    path.write_text(pol.one(objs, "ConfigMap", "cap-verifier-config")["data"]["config.yaml"])
    registry = load_settings(path, environ={}).registry
    assert registry.url.startswith("sqlite:///")
    assert registry.audit_prune_interval_hours > 0


@pytest.mark.orr("1.5-01", "1.5-04", "1.5-05")
@pytest.mark.parametrize("env", POSTGRESQL_ENVS)
def test_the_prune_pod_is_restricted_like_the_service(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    objs = model(configs[env], artefacts)
    pod, service = _cron_pod(objs)["spec"], pol.pod_spec(objs)
    assert pod_security_restricted(pod) == []
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == service["securityContext"]
    assert pod["volumes"] == service["volumes"]
    (prune,) = pod["containers"]
    (served,) = service["containers"]
    assert prune["securityContext"] == served["securityContext"]
    assert prune["securityContext"]["readOnlyRootFilesystem"] is True
    assert prune["securityContext"]["runAsUser"] == 1000
    assert prune["image"] == served["image"]
    assert prune["volumeMounts"] == served["volumeMounts"]  # the config and the registry URL
    assert prune["args"] == ["audit", "prune", "--config", "/etc/cap-verifier/config.yaml"]
    privileged = copy.deepcopy(pod)
    privileged["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    assert pod_security_restricted(privileged) != []


@pytest.mark.parametrize("env", POSTGRESQL_ENVS)
def test_no_service_selector_counts_the_prune_pods(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    objs = model(configs[env], artefacts)
    prune_labels = _cron_pod(objs)["metadata"]["labels"]
    service_labels = pol.workload(objs)["spec"]["template"]["metadata"]["labels"]
    selectors = [s["spec"]["selector"] for s in pol.find(objs, "Service")] + [
        p["spec"]["selector"]["matchLabels"] for p in pol.find(objs, "PodDisruptionBudget")
    ]
    assert selectors
    for selector in selectors:
        assert _selects(selector, service_labels)  # the check sees a match when there is one
        assert not _selects(selector, prune_labels)


@pytest.mark.parametrize("env", POSTGRESQL_ENVS)
def test_the_prune_pods_reach_dns_and_postgresql_only(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    cfg = configs[env]
    assert cfg.database is not None
    objs = model(cfg, artefacts)
    prune_labels = _cron_pod(objs)["metadata"]["labels"]
    egress = pol.one(objs, "NetworkPolicy", f"{audit.NAME}-egress")["spec"]
    assert _selects(egress["podSelector"]["matchLabels"], prune_labels)
    peers = [peer for rule in egress["egress"] for peer in rule["to"]]
    assert [peer["namespaceSelector"]["matchLabels"] for peer in peers] == [
        {"kubernetes.io/metadata.name": cfg.cluster.dns_namespace},
        {"kubernetes.io/metadata.name": cfg.database.namespace},
    ]
    ingress = pol.one(objs, "NetworkPolicy", f"{audit.NAME}-ingress")
    assert ingress["metadata"]["namespace"] == cfg.database.namespace
    (rule,) = ingress["spec"]["ingress"]
    (peer,) = rule["from"]
    assert _selects(peer["podSelector"]["matchLabels"], prune_labels)
    assert rule["ports"] == [{"protocol": "TCP", "port": cfg.database.port}]


@pytest.mark.parametrize("which", ["oldest", "newest"])
def test_the_cron_job_validates_and_a_broken_one_does_not(
    configs: dict[str, EnvConfig], which: str, artefacts: Artefacts
) -> None:
    cfg = configs["prod"]
    version = getattr(cfg.cluster, f"k8s_version_{which}")
    cron = pol.one(model(cfg, artefacts), "CronJob", audit.NAME)
    validate(cron, version)
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    broken = copy.deepcopy(cron)
    broken["spec"]["jobTemplate"]["spec"]["backoffLimit"] = "twice"
    with pytest.raises(pytest.fail.Exception):
        validate(broken, version)
