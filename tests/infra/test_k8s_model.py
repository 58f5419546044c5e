"""The Kubernetes model: rendering, drift, schema validation, Pod Security, ORR lines."""

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
from infra.model import model, workload
from infra.model.common import APP
from orr_tests import Bad, Check, orr_tests

from infra import gitops, render

ROOT = Path(__file__).resolve().parents[2]
NS_LABEL = "kubernetes.io/metadata.name"
LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/version",
)


def validate(obj: dict[str, Any], version: str) -> None:
    """Strict schema validation; a kind without a schema fails, it is never skipped.

    Core kinds go through ``kubernetes_validate``; custom resources through their CRD schema.
    """
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')} @ {version}"
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except (kubernetes_validate.SchemaNotFoundError, FileNotFoundError) as exc:
        # kubernetes_validate raises FileNotFoundError for some unknown group versions.
        try:
            problems = crd_schemas.errors(obj)
        except crd_schemas.NoSchemaError as crd_exc:
            pytest.fail(f"{where}: no schema for this kind ({exc}; {crd_exc})")
        if problems:
            pytest.fail(f"{where}: {'; '.join(problems)}")
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{where}: {exc.message} at {list(exc.path)}")


# --- render and drift --------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_model_is_pure_and_stable(configs: dict[str, EnvConfig], env: str) -> None:
    first = model(configs[env])
    assert first, env
    assert model(configs[env]) == first
    assert render.render_env(configs[env]) == render.render_env(configs[env])


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.yaml")}


def everything(cfg: EnvConfig) -> list[dict[str, Any]]:
    """Every rendered object: platform Applications, the model, and the bootstrap."""
    return [*gitops.applications(cfg), *model(cfg), *gitops.bootstrap(cfg)]


def test_render_matches_committed_deploy(tmp_path: Path) -> None:
    render.write(tmp_path)
    for env in ENVIRONMENTS:
        fresh = _tree(tmp_path / env)
        committed = _tree(ROOT / "deploy" / env)
        assert sorted(fresh) == sorted(committed), f"deploy/{env}: file set drifted; re-render"
        for name, content in fresh.items():
            assert content == committed[name], (
                f"deploy/{env}/{name} drifted: run python -m infra.render"
            )


def test_render_lists_every_file_in_kustomization(configs: dict[str, EnvConfig]) -> None:
    for cfg in configs.values():
        files = render.render_env(cfg)
        for folder in ("", f"{render.BOOTSTRAP}/"):
            kustomization = files[f"{folder}kustomization.yaml"]
            names = [
                n[len(folder) :]
                for n in files
                if n.startswith(folder) and "/" not in n[len(folder) :]
            ]
            assert len(names) > 1, (cfg.env, folder)
            for name in names:
                if name != "kustomization.yaml":
                    assert f"- {name}\n" in kustomization, (cfg.env, folder, name)


def test_render_main_writes_out_dir(tmp_path: Path) -> None:
    assert render.main(["--out", str(tmp_path)]) == 0
    assert (tmp_path / "staging" / "deployment-cap-verifier.yaml").is_file()
    assert (tmp_path / "prod" / "rollout-cap-verifier.yaml").is_file()
    assert (tmp_path / "prod" / "bootstrap" / "application-cap-verifier-prod.yaml").is_file()


def test_render_removes_stale_files(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    stale = tmp_path / "dev" / "ingress-old.yaml"
    stale.write_text("kind: Ingress\n")
    render.write(tmp_path)
    assert not stale.exists()


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_object_has_labels_and_unique_file(configs: dict[str, EnvConfig], env: str) -> None:
    objs = everything(configs[env])
    names = [render.file_name(o) for o in objs]
    assert len(names) == len(set(names))
    for obj in objs:
        for label in LABELS:
            assert obj["metadata"]["labels"].get(label), (obj["kind"], label)


# --- schema validation -------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("which", ["oldest", "newest"])
def test_objects_valid_for_supported_versions(
    configs: dict[str, EnvConfig], env: str, which: str
) -> None:
    cfg = configs[env]
    version = cfg.k8s_version_oldest if which == "oldest" else cfg.k8s_version_newest
    for obj in everything(cfg):
        validate(obj, version)


def test_unknown_kind_fails_validation() -> None:
    bogus = {"apiVersion": "example.com/v1", "kind": "Canary", "metadata": {"name": "x"}}
    with pytest.raises(pytest.fail.Exception, match="no schema"):
        validate(bogus, "1.34")


def test_invalid_object_fails_validation(configs: dict[str, EnvConfig]) -> None:
    bad = copy.deepcopy(pol.one(model(configs["staging"]), "Deployment"))
    bad["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8080"
    with pytest.raises(pytest.fail.Exception):
        validate(bad, "1.34")


# --- Pod Security "restricted" -----------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_pod_security_restricted(configs: dict[str, EnvConfig], env: str) -> None:
    objs = model(configs[env])
    assert pol.pod_security_restricted(pol.pod_spec(objs)) == []
    for namespace in pol.find(objs, "Namespace"):
        ns = namespace["metadata"]["labels"]
        for mode in ("enforce", "audit", "warn"):
            assert ns[f"pod-security.kubernetes.io/{mode}"] == "restricted"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.update(hostNetwork=True), "hostNetwork"),
        (lambda s: s.update(hostPID=True), "hostPID"),
        (lambda s: s.update(hostIPC=True), "hostIPC"),
        (lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
        (lambda s: s["containers"][0]["ports"][0].update(hostPort=8080), "hostPort"),
        (lambda s: s["containers"][0]["securityContext"].update(privileged=True), "privileged"),
        (
            lambda s: s["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
            "allowPrivilegeEscalation",
        ),
        (
            lambda s: s["containers"][0]["securityContext"]["capabilities"].update(
                add=["NET_ADMIN"]
            ),
            "NET_BIND_SERVICE",
        ),
        (
            lambda s: s["containers"][0]["securityContext"]["capabilities"].update(drop=[]),
            "drop ALL",
        ),
        (
            lambda s: (
                s["containers"][0]["securityContext"].pop("runAsNonRoot"),
                s["securityContext"].pop("runAsNonRoot"),
            ),
            "runAsNonRoot",
        ),
        (
            lambda s: s["containers"][0]["securityContext"].update(
                seccompProfile={"type": "Unconfined"}
            ),
            "seccompProfile",
        ),
    ],
)
def test_pod_security_rejects_bad_pod(
    configs: dict[str, EnvConfig], mutate: Callable[[dict[str, Any]], Any], message: str
) -> None:
    spec = copy.deepcopy(pol.pod_spec(model(configs["prod"])))
    mutate(spec)
    errors = pol.pod_security_restricted(spec)
    assert any(message in e for e in errors), errors


def test_net_bind_service_is_the_one_allowed_add(configs: dict[str, EnvConfig]) -> None:
    spec = copy.deepcopy(pol.pod_spec(model(configs["prod"])))
    spec["containers"][0]["securityContext"]["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    assert pol.pod_security_restricted(spec) == []


# --- workload details --------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_grace_period_covers_prestop_and_drain(configs: dict[str, EnvConfig], env: str) -> None:
    cfg = configs[env]
    spec = pol.pod_spec(model(cfg))
    prestop = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert prestop == ["sleep", str(cfg.prestop_sleep_seconds)]
    graceful = pol.service_config(model(cfg))["server"]["graceful_timeout"]
    assert spec["terminationGracePeriodSeconds"] >= graceful + cfg.prestop_sleep_seconds


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_image_pinned_by_digest(configs: dict[str, EnvConfig], env: str) -> None:
    image = pol.pod_spec(model(configs[env]))["containers"][0]["image"]
    assert "@sha256:" in image
    tagged = dataclasses.replace(configs[env], image_tag="0.11.0", image_digest=None)
    with pytest.raises(ValueError, match="digest"):
        workload.image(tagged)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_config_file_mounted_and_valid_for_the_verifier(
    configs: dict[str, EnvConfig], env: str, tmp_path: Path
) -> None:
    from cap_verifier.settings import load_settings

    objs = model(configs[env])
    container = pol.pod_spec(objs)["containers"][0]
    env_vars = {e["name"]: e.get("value") for e in container["env"]}
    assert env_vars["CAP_VERIFIER_CONFIG"] == "/etc/cap-verifier/config.yaml"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/cap-verifier"]["readOnly"] is True
    assert {"/tmp", "/data"} <= set(mounts)
    text = pol.one(objs, "ConfigMap", "cap-verifier-config")["data"]["config.yaml"]
    url_file = pol.service_config(objs)["registry"].get("url_file")
    if url_file is not None:
        # The mounted Secret, as External Secrets renders its template with a test password.
        es = pol.one(objs, "ExternalSecret", "cap-verifier-registry")
        template = es["spec"]["target"]["template"]["data"]["url"]
        secret = tmp_path / "url"
        secret.write_text(template.replace("{{ .password | urlquery }}", "test%2Fpass"))
        text = text.replace(url_file, str(secret))
    path = tmp_path / "config.yaml"
    path.write_text(text)
    settings = load_settings(path, environ={})
    if url_file is not None:
        assert settings.registry.url.startswith("postgresql+psycopg://cap_verifier:test%2Fpass@")
    assert settings.server.port == 8080
    assert settings.tls.enabled is False
    assert settings.logging.level == configs[env].log_level


def test_log_levels_follow_the_design(configs: dict[str, EnvConfig]) -> None:
    levels = {env: pol.service_config(model(c))["logging"]["level"] for env, c in configs.items()}
    assert levels == {"dev": "DEBUG", "staging": "DEBUG", "prod": "INFO"}


def test_registry_volume_by_kind(configs: dict[str, EnvConfig]) -> None:
    for cfg in configs.values():
        data = next(v for v in pol.pod_spec(model(cfg))["volumes"] if v["name"] == "data")
        expected = "persistentVolumeClaim" if cfg.registry_kind == "sqlite" else "emptyDir"
        assert expected in data, cfg.env


def test_service_account_token_not_mounted(configs: dict[str, EnvConfig]) -> None:
    for cfg in configs.values():
        objs = model(cfg)
        assert pol.one(objs, "ServiceAccount", APP)["automountServiceAccountToken"] is False
        assert pol.pod_spec(objs)["automountServiceAccountToken"] is False


# --- ORR lines ---------------------------------------------------------------------------------

ALL = ENVIRONMENTS
HA = ("staging", "prod")
PROD = ("prod",)
SQLITE = tuple(e for e in ENVIRONMENTS if e == "dev")


Objs = list[dict[str, Any]]


def _bad(cfg: EnvConfig, **changes: Any) -> tuple[Objs, EnvConfig]:
    """A deliberately bad config, and the model built from it."""
    bad = dataclasses.replace(cfg, **changes)
    return model(bad), bad


def _drop(cfg: EnvConfig, kind: str) -> tuple[Objs, EnvConfig]:
    return [o for o in model(cfg) if o["kind"] != kind], cfg


def _edit(cfg: EnvConfig, edit: Callable[[Objs], Any]) -> tuple[Objs, EnvConfig]:
    objs = copy.deepcopy(model(cfg))
    edit(objs)
    return objs, cfg


def _dns_by_namespace_only(objs: Objs) -> None:
    """DNS egress to the whole kube-system namespace instead of kube-dns pods only."""
    egress = pol.one(objs, "NetworkPolicy", "cap-verifier-egress")["spec"]["egress"]
    egress[0]["to"][0].pop("podSelector")


def _enable_pod_tls(objs: Objs) -> None:
    data = pol.one(objs, "ConfigMap", "cap-verifier-config")["data"]
    data["config.yaml"] = data["config.yaml"].replace("enabled: false", "enabled: true")


# ORR id, check, environments where the line applies, a deliberately bad input.
ORR: list[tuple[str, Check, tuple[str, ...], Bad]] = [
    (
        "1.1-03",
        pol.orr_1_1_03_anti_affinity,
        ALL,
        lambda c: _edit(c, lambda o: pol.pod_spec(o).pop("affinity")),
    ),
    ("1.1-04", pol.orr_1_1_04_k8s_version, ALL, lambda c: _bad(c, k8s_version_oldest="1.23")),
    ("1.1-05", pol.orr_1_1_05_namespace, ALL, lambda c: _bad(c, namespace="default")),
    ("1.1-06", pol.orr_1_1_06_resource_quota, ALL, lambda c: _drop(c, "ResourceQuota")),
    ("1.1-07", pol.orr_1_1_07_limit_range, ALL, lambda c: _drop(c, "LimitRange")),
    (
        "1.1-08",
        pol.orr_1_1_08_registry_volume,
        SQLITE,
        lambda c: _drop(c, "PersistentVolumeClaim"),
    ),
    (
        "1.2-08",
        pol.orr_1_2_08_backend_service,
        ALL,
        lambda c: _edit(
            c, lambda o: pol.one(o, "Service", APP)["spec"]["ports"][0].update(port=80)
        ),
    ),
    (
        "1.2-09",
        pol.orr_1_2_09_health_paths,
        ALL,
        lambda c: _edit(
            c,
            lambda o: pol.pod_spec(o)["containers"][0]["readinessProbe"]["httpGet"].update(
                path="/healthz"
            ),
        ),
    ),
    ("1.3-02", pol.orr_1_3_02_hpa_deployed, HA, lambda c: _bad(c, hpa_enabled=False)),
    ("1.3-03", pol.orr_1_3_03_hpa_min_replicas, PROD, lambda c: _bad(c, hpa_min_replicas=2)),
    ("1.3-04", pol.orr_1_3_04_hpa_max_replicas, PROD, lambda c: _bad(c, hpa_max_replicas=10)),
    (
        "1.3-05",
        pol.orr_1_3_05_hpa_cpu_target,
        HA,
        lambda c: _edit(
            c,
            lambda o: pol.one(o, "HorizontalPodAutoscaler")["spec"]["metrics"].pop(0),
        ),
    ),
    (
        "1.3-06",
        pol.orr_1_3_06_hpa_memory_target,
        HA,
        lambda c: _edit(
            c,
            lambda o: pol.one(o, "HorizontalPodAutoscaler")["spec"]["metrics"].pop(1),
        ),
    ),
    (
        "1.3-07",
        pol.orr_1_3_07_scale_up,
        HA,
        lambda c: _edit(
            c,
            lambda o: pol.one(o, "HorizontalPodAutoscaler")["spec"]["behavior"]["scaleUp"][
                "policies"
            ].append({"type": "Percent", "value": 100, "periodSeconds": 15}),
        ),
    ),
    (
        "1.3-08",
        pol.orr_1_3_08_scale_down,
        HA,
        lambda c: _edit(
            c,
            lambda o: pol.one(o, "HorizontalPodAutoscaler")["spec"]["behavior"]["scaleDown"][
                "policies"
            ][0].update(value=4),
        ),
    ),
    (
        "1.3-09",
        pol.orr_1_3_09_stabilization,
        PROD,
        lambda c: _bad(c, hpa_scale_down_stabilization_seconds=60),
    ),
    (
        "1.4-01",
        pol.orr_1_4_01_ingress_only_from_gateway,
        ALL,
        lambda c: _edit(
            c,
            lambda o: pol.one(o, "NetworkPolicy", "cap-verifier-ingress")["spec"]["ingress"].append(
                {"from": [{"podSelector": {}}]}
            ),
        ),
    ),
    (
        "1.4-02",
        pol.orr_1_4_02_egress,
        ALL,
        lambda c: _edit(c, _dns_by_namespace_only),
    ),
    ("1.4-03", pol.orr_1_4_03_default_deny, ALL, lambda c: _drop(c, "NetworkPolicy")),
    (
        "1.4-04",
        pol.orr_1_4_04_no_pod_to_pod,
        ALL,
        lambda c: _edit(
            c,
            lambda o: pol.one(o, "NetworkPolicy", "cap-verifier-ingress")["spec"]["ingress"].append(
                {"from": [{"namespaceSelector": {"matchLabels": {NS_LABEL: c.namespace}}}]}
            ),
        ),
    ),
    ("1.4-05", pol.orr_1_4_05_jwks_reachable, ALL, lambda c: _bad(c, idp_jwks_port=8443)),
    (
        "1.5-01",
        pol.orr_1_5_01_run_as_non_root,
        ALL,
        lambda c: _edit(
            c,
            lambda o: pol.pod_spec(o)["containers"][0]["securityContext"].update(
                runAsNonRoot=False
            ),
        ),
    ),
    (
        "1.5-02",
        pol.orr_1_5_02_run_as_user,
        ALL,
        lambda c: _edit(
            c,
            lambda o: pol.pod_spec(o)["containers"][0]["securityContext"].update(runAsUser=0),
        ),
    ),
    (
        "1.5-03",
        pol.orr_1_5_03_read_only_root,
        ALL,
        lambda c: _edit(
            c,
            lambda o: pol.pod_spec(o)["containers"][0]["securityContext"].pop(
                "readOnlyRootFilesystem"
            ),
        ),
    ),
    (
        "1.5-04",
        pol.orr_1_5_04_no_privilege_escalation,
        ALL,
        lambda c: _edit(
            c,
            lambda o: pol.pod_spec(o)["containers"][0]["securityContext"].pop(
                "allowPrivilegeEscalation"
            ),
        ),
    ),
    (
        "1.5-05",
        pol.orr_1_5_05_drop_all,
        ALL,
        lambda c: _edit(
            c,
            lambda o: pol.pod_spec(o)["containers"][0]["securityContext"].update(capabilities={}),
        ),
    ),
    ("1.5-06", pol.orr_1_5_06_pdb, PROD, lambda c: _bad(c, pdb_min_available=1)),
    (
        "1.5-07",
        pol.orr_1_5_07_drain_safe,
        HA,
        lambda c: _bad(c, pdb_min_available=c.hpa_min_replicas),
    ),
    ("1.6-01", pol.orr_1_6_01_requests, HA, lambda c: _bad(c, cpu_request="250m")),
    ("1.6-02", pol.orr_1_6_02_limits, HA, lambda c: _bad(c, memory_limit="2Gi")),
    (
        "2.2-05",
        pol.orr_2_2_05_mtls_per_env,
        ALL,
        lambda c: _edit(
            c,
            _enable_pod_tls,
        ),
    ),
    (
        "2.2-07",
        pol.orr_2_2_07_allowed_client_sans,
        ALL,
        lambda c: _bad(c, require_mtls=True, allowed_client_sans=()),
    ),
    (
        "2.3-07",
        pol.orr_2_3_07_no_secrets_in_configmaps,
        ALL,
        lambda c: _bad(c, registry_url="postgresql+psycopg://cap:hunter2@db/cap"),
    ),
]


globals().update(orr_tests(ORR))


def test_policy_table_covers_each_line_once() -> None:
    items = [item for item, *_ in ORR]
    assert len(items) == len(set(items))
    for item, check, _, _ in ORR:
        assert check.__name__.startswith("orr_" + item.replace(".", "_").replace("-", "_"))
