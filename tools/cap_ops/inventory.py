"""Ansible inventories of the playbooks, built from the facts' own homes.

``playbooks/inventories/<env>/inventory.py`` calls :func:`main` with its environment: the local
environment's paths, ports and service user come from :mod:`cap_ops.localenv.layout` (what
``make up`` uses), a cluster's namespace, context, registry and backup location from its
``Pulumi.<env>.yaml`` (:mod:`infra.config`). Nothing is written twice.

Every inventory has one group, ``verifier``, with one host, ``localhost``: the playbooks run on
the operator's machine and reach the environment from there (supervisord locally, the
Kubernetes API on clusters).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from cap_ops.localenv.layout import Layout
from cap_ops.localenv.pki import PKIFiles

GROUP = "verifier"
HOST = "localhost"
CONFIRMED_ENVIRONMENTS = ("staging", "prod")
"""Where a restore, a scale or a rollback must be confirmed with ``confirm=<env>``."""


def run_as_service(user: str | None) -> list[str]:
    """The command prefix that runs a program as the local service user (nothing without one):
    files the programs read, such as the IdP's keys and clients, must stay theirs."""
    if not user:
        return []
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]


def daily_at() -> str:
    """``HH:MM`` UTC of the clusters' daily database backup (its CloudNativePG schedule,
    ``sec min hour * * *``): the local backup runs at the same time."""
    from infra.model.database import BACKUP_SCHEDULE  # noqa: PLC0415

    _, minute, hour, *_ = BACKUP_SCHEDULE.split()
    return f"{int(hour):02d}:{int(minute):02d}"


def prod_retention_days(root: Path) -> int:
    """The local environment keeps backups as long as prod does (ORR 4.1: 30 days)."""
    from infra.config import load  # noqa: PLC0415

    database = load("prod", root).database
    if database is None:
        raise ValueError("Pulumi.prod.yaml: database: missing (it holds the backup retention)")
    return database.backup.retention_days


def jwks_refetch_seconds() -> float:
    """The least time between two JWKS refetches of a verifier worker for an unknown kid (its
    setting's default; the local environment keeps it): signing keys must not rotate faster."""
    from cap_verifier.settings import OAuth2Settings  # noqa: PLC0415

    (field,) = [
        f for f in msgspec.structs.fields(OAuth2Settings) if f.name == "jwks_refetch_interval"
    ]
    return float(field.default)


def local_vars(layout: Layout) -> dict[str, Any]:
    pki = PKIFiles.under(layout.pki)
    return {
        "env_name": "local",
        "restart_method": "supervisor",
        "registry_kind": "sqlite",
        "registry_url": layout.registry_url,
        # what the running service uses; -e registry_url=... backs up or restores another one
        "service_registry_url": layout.registry_url,
        "registry_file": str(layout.registry_file),
        "backup_root": str(layout.backups),
        "backup_keep_days": prod_retention_days(layout.root),
        "backup_daily_at": daily_at(),
        "service_user": layout.service_user or "",
        "repo_root": str(layout.root),
        "venv_python": str(layout.root / ".venv" / "bin" / "python"),
        "runtime_python": str(layout.runtime_venv / "bin" / "python"),
        "service_run_as": run_as_service(layout.service_user),
        "env_json": str(layout.env_json),
        "config_paths": [
            str(path.relative_to(layout.root))
            for path in (layout.verifier_dir, layout.idp_dir, layout.pki, layout.env_json)
        ],
        "supervisor_conf": str(layout.supervisor_conf),
        "supervisor_include_dir": str(layout.supervisor_include_dir),
        "supervisorctl": str(layout.root / ".venv" / "bin" / "supervisorctl"),
        "verifier_program": "cap-verifier",
        "idp_program": "cap-dev-idp",
        "verifier_url": layout.url("cap-verifier"),
        "idp_url": layout.url("cap-dev-idp"),
        "idp_config": str(layout.idp_config),
        "idp_keys_manifest": str(layout.idp_keys_dir / "keys.json"),
        "jwks_refetch_seconds": jwks_refetch_seconds(),
        "prometheus_url": layout.url("prometheus"),
        "ca_cert": str(pki.ca_cert),
        "ca_key": str(pki.ca_key),
        "server_cert": str(pki.server_cert),
        "server_key": str(pki.server_key),
        "certificates": [str(pki.ca_cert), str(pki.server_cert), str(pki.client_cert)],
        "logs_dir": str(layout.logs),
        "confirm_required": False,
    }


def cluster_vars(env: str, root: Path) -> dict[str, Any]:
    # Imported here: the local inventory must not need the infra program's dependencies.
    from infra.charts import ARGOCD  # noqa: PLC0415
    from infra.config import load  # noqa: PLC0415
    from infra.gitops import deploy_path, root_name  # noqa: PLC0415
    from infra.model import certs, secrets  # noqa: PLC0415
    from infra.model import database as db_model  # noqa: PLC0415
    from infra.model.common import APP  # noqa: PLC0415

    cfg = load(env, root)
    database = cfg.database
    return {
        "env_name": env,
        "restart_method": "kubernetes",
        "cluster_context": cfg.cluster.kube_context or "",
        "k8s_namespace": cfg.namespace,
        "workload_kind": "Rollout" if cfg.delivery.canary.enabled else "Deployment",
        "workload_name": APP,
        "hpa_enabled": cfg.scaling.hpa.enabled,
        "min_replicas_in_git": cfg.scaling.min_replicas,
        "registry_kind": cfg.registry.kind,
        "registry_url": cfg.registry.url,
        "service_registry_url": cfg.registry.url,
        "database_cluster": db_model.CLUSTER if database else "",
        "database_namespace": database.namespace if database else "",
        "backup_root": database.backup.destination if database else "",
        "backup_keep_days": (
            database.backup.retention_days if database else prod_retention_days(root)
        ),
        "secret_key_prefix": cfg.secrets.key_prefix,
        "secret_store_region": cfg.secrets.store_region,
        "oauth2_external_secret": secrets.OAUTH2_SECRET,
        "tls_certificate": certs.certificate(cfg)["metadata"]["name"],
        "oauth2_secret_key": f"{cfg.secrets.key_prefix}/oauth2",
        "verifier_url": f"https://{cfg.host}",
        "repo_root": str(root),
        "venv_python": sys.executable,
        "deploy_dir": str(root / deploy_path(cfg)),
        "stack_file": str(root / f"Pulumi.{env}.yaml"),
        "gitops": cfg.delivery.gitops,
        "gitops_revision": cfg.delivery.revision,
        "argocd_app": root_name(cfg),
        "argocd_namespace": ARGOCD.namespace,
        "confirm_required": env in CONFIRMED_ENVIRONMENTS,
    }


def inventory(env: str, root: Path) -> dict[str, Any]:
    hostvars = local_vars(Layout.default()) if env == "local" else cluster_vars(env, root)
    hostvars.update(ansible_connection="local", ansible_python_interpreter=sys.executable)
    return {
        GROUP: {"hosts": [HOST]},
        "_meta": {"hostvars": {HOST: hostvars}},
    }


def main(env: str, root: Path) -> None:
    """The dynamic-inventory protocol: ``--list`` prints everything, ``--host`` nothing more.

    ``root`` is the checkout the inventory script sits in (a rollback commits to that one).
    """
    if "--host" in sys.argv:
        print("{}")
        return
    json.dump(inventory(env, root), sys.stdout, indent=2)
    print()
