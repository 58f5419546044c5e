"""The Kubernetes model: rendering, drift, schema validation, Pod Security, ORR lines."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import infra.policies.manifests as pol
import kubernetes_validate
import pytest
from config_edits import unchecked
from infra.artefacts import Artefacts
from infra.config import ENVIRONMENTS, EnvConfig
from infra.model import model, workload
from infra.model.common import APP
from infra.policies import objects
from infra.policies.pod_security import pod_security_restricted

from infra import render
from support import crd_schemas

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


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.yaml")}


def test_render_matches_committed_deploy(tmp_path: Path) -> None:
    render.write(tmp_path)
    for env in ENVIRONMENTS:
        fresh = _tree(tmp_path / env)
        committed = _tree(ROOT / "deploy" / env)
        assert sorted(fresh) == sorted(committed), f"deploy/{env}: file set drifted; re-render"
        for name, content in fresh.items():
            assert content == committed[name], f"deploy/{env}/{name} drifted: run make render"


def test_render_lists_every_file_in_kustomization(
    configs: dict[str, EnvConfig], artefacts: Artefacts
) -> None:
    for cfg in configs.values():
        files = render.render_env(cfg, artefacts)
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
def test_every_object_has_labels_and_unique_file(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    objs = objects("everything", configs[env], artefacts)
    names = [render.file_name(o) for o in objs]
    assert len(names) == len(set(names))
    for obj in objs:
        for label in LABELS:
            assert obj["metadata"]["labels"].get(label), (obj["kind"], label)


# --- schema validation -------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("which", ["oldest", "newest"])
def test_objects_valid_for_supported_versions(
    configs: dict[str, EnvConfig], env: str, which: str, artefacts: Artefacts
) -> None:
    cfg = configs[env]
    version = (
        cfg.cluster.k8s_version_oldest if which == "oldest" else cfg.cluster.k8s_version_newest
    )
    for obj in objects("everything", cfg, artefacts):
        validate(obj, version)


def test_unknown_kind_fails_validation() -> None:
    bogus = {"apiVersion": "example.com/v1", "kind": "Canary", "metadata": {"name": "x"}}
    with pytest.raises(pytest.fail.Exception, match="no schema"):
        validate(bogus, "1.34")


def test_invalid_object_fails_validation(
    configs: dict[str, EnvConfig], artefacts: Artefacts
) -> None:
    bad = copy.deepcopy(pol.one(model(configs["staging"], artefacts), "Deployment"))
    bad["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8080"
    with pytest.raises(pytest.fail.Exception):
        validate(bad, "1.34")


# --- Pod Security "restricted" -----------------------------------------------------------------


@pytest.mark.orr("1.5-01", "1.5-04", "1.5-05")
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_pod_security_restricted(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    objs = model(configs[env], artefacts)
    assert pod_security_restricted(pol.pod_spec(objs)) == []
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
    configs: dict[str, EnvConfig],
    mutate: Callable[[dict[str, Any]], Any],
    message: str,
    artefacts: Artefacts,
) -> None:
    spec = copy.deepcopy(pol.pod_spec(model(configs["prod"], artefacts)))
    mutate(spec)
    errors = pod_security_restricted(spec)
    assert any(message in e for e in errors), errors


def test_net_bind_service_is_the_one_allowed_add(
    configs: dict[str, EnvConfig], artefacts: Artefacts
) -> None:
    spec = copy.deepcopy(pol.pod_spec(model(configs["prod"], artefacts)))
    spec["containers"][0]["securityContext"]["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    assert pod_security_restricted(spec) == []


# --- workload details --------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_grace_period_covers_prestop_and_drain(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    cfg = configs[env]
    spec = pol.pod_spec(model(cfg, artefacts))
    prestop = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert prestop == ["sleep", str(cfg.service.prestop_sleep_seconds)]
    graceful = pol.service_config(model(cfg, artefacts))["server"]["graceful_timeout"]
    assert spec["terminationGracePeriodSeconds"] >= graceful + cfg.service.prestop_sleep_seconds


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_image_pinned_by_digest(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    image = pol.pod_spec(model(configs[env], artefacts))["containers"][0]["image"]
    assert "@sha256:" in image
    tagged = unchecked(configs[env], {"image.tag": "0.11.0", "image.digest": None})
    with pytest.raises(ValueError, match="digest"):
        workload.image(tagged)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_config_file_mounted_and_valid_for_the_verifier(
    configs: dict[str, EnvConfig], env: str, tmp_path: Path, artefacts: Artefacts
) -> None:
    from cap_verifier.settings import load_settings

    objs = model(configs[env], artefacts)
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
    assert settings.logging.level == configs[env].service.log_level


@pytest.mark.orr("3.4-04", "3.4-05", "3.4-06")
def test_log_levels_follow_the_design(configs: dict[str, EnvConfig], artefacts: Artefacts) -> None:
    levels = {
        env: pol.service_config(model(c, artefacts))["logging"]["level"]
        for env, c in configs.items()
    }
    assert levels == {"dev": "DEBUG", "staging": "DEBUG", "prod": "INFO"}


def test_registry_volume_by_kind(configs: dict[str, EnvConfig], artefacts: Artefacts) -> None:
    for cfg in configs.values():
        data = next(
            v for v in pol.pod_spec(model(cfg, artefacts))["volumes"] if v["name"] == "data"
        )
        expected = "persistentVolumeClaim" if cfg.registry.kind == "sqlite" else "emptyDir"
        assert expected in data, cfg.env


def test_service_account_token_not_mounted(
    configs: dict[str, EnvConfig], artefacts: Artefacts
) -> None:
    for cfg in configs.values():
        objs = model(cfg, artefacts)
        assert pol.one(objs, "ServiceAccount", APP)["automountServiceAccountToken"] is False
        assert pol.pod_spec(objs)["automountServiceAccountToken"] is False
