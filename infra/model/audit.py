"""The daily prune of the verification audit table, where the registry is PostgreSQL.

A CronJob runs ``cap-verifier audit prune`` in the service namespace, after the database's
daily backup (:data:`infra.model.database.BACKUP_SCHEDULE`), so the last copy of a pruned row
is in a backup. Its container is the service's migrate container with other arguments: the same
image, security context (restricted, read-only root, uid 1000), config and registry-URL volumes;
no ServiceAccount token. Its pods carry labels of their own, so that the Service, the
PodDisruptionBudget and the autoscaler never count them, with NetworkPolicies of their own:
egress to DNS and PostgreSQL, and ingress to PostgreSQL from them.

A SQLite registry gets no CronJob: its file lives on a ReadWriteOnce volume with one writer, the
service's pod, which prunes it itself (``registry.audit_prune_interval_hours``).
"""

from __future__ import annotations

from typing import Any

from infra.config import EnvConfig
from infra.model import workload
from infra.model.common import APP, CONFIG_DIR, CONFIG_FILE, Manifest, labels, metadata
from infra.model.database import CLUSTER, CLUSTER_LABEL, database
from infra.model.network import dns_egress, namespace_selector

NAME = f"{APP}-audit-prune"
CONTAINER = "audit-prune"
SCHEDULE = "30 4 * * *"
"""Daily at 04:30 UTC, two hours after the database's backup starts."""
TIME_ZONE = "Etc/UTC"
DEADLINE_SECONDS = 3600
"""A run (all its retries) ends within the hour; a schedule missed by more is skipped."""


def pod_labels(cfg: EnvConfig) -> dict[str, str]:
    """The prune pods' labels: not the service's selector, so no Service routes to them."""
    return {
        **labels(cfg),
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/component": CONTAINER,
    }


def _pod_selector(cfg: EnvConfig) -> dict[str, Any]:
    selected = ("app.kubernetes.io/name", "app.kubernetes.io/instance")
    return {"matchLabels": {key: pod_labels(cfg)[key] for key in selected}}


def container(cfg: EnvConfig) -> dict[str, Any]:
    """The service's migrate container (image, security context, mounts), pruning instead."""
    return {
        **workload.migrate_container(cfg),
        "name": CONTAINER,
        "args": ["audit", "prune", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
    }


def pod_spec(cfg: EnvConfig) -> dict[str, Any]:
    service = workload.pod_spec(cfg)
    return {
        "serviceAccountName": service["serviceAccountName"],
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "securityContext": service["securityContext"],
        "containers": [container(cfg)],
        "volumes": service["volumes"],
    }


def cron_job(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(cfg, NAME),
        "spec": {
            "schedule": SCHEDULE,
            "timeZone": TIME_ZONE,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": DEADLINE_SECONDS,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": pod_labels(cfg)},
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": DEADLINE_SECONDS,
                    "template": {"metadata": {"labels": pod_labels(cfg)}, "spec": pod_spec(cfg)},
                },
            },
        },
    }


def egress(cfg: EnvConfig) -> Manifest:
    """The prune pods reach DNS and PostgreSQL, nothing else."""
    db = database(cfg)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(cfg, f"{NAME}-egress"),
        "spec": {
            "podSelector": _pod_selector(cfg),
            "policyTypes": ["Egress"],
            "egress": [
                dns_egress(cfg),
                {
                    "to": [
                        {
                            "namespaceSelector": namespace_selector(db.namespace),
                            "podSelector": {"matchLabels": dict(db.pod_labels)},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": db.port}],
                },
            ],
        },
    }


def database_ingress(cfg: EnvConfig) -> Manifest:
    """PostgreSQL admits the prune pods too (NetworkPolicies add up)."""
    db = database(cfg)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{NAME}-ingress", "namespace": db.namespace, "labels": labels(cfg)},
        "spec": {
            "podSelector": {"matchLabels": {CLUSTER_LABEL: CLUSTER}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": namespace_selector(cfg.namespace),
                            "podSelector": _pod_selector(cfg),
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": db.port}],
                }
            ],
        },
    }


def objects(cfg: EnvConfig) -> list[Manifest]:
    if cfg.registry.kind != "postgresql":
        return []
    return [cron_job(cfg), egress(cfg), database_ingress(cfg)]
