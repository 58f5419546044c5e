"""PostgreSQL for the registry: a CloudNativePG Cluster with daily backups to object storage.

Only where ``registry.kind`` is ``postgresql``. The cluster lives in its own namespace
(``database.namespace``, Pod Security "restricted") behind default-deny NetworkPolicies.
Backups and WAL go to S3 with barman-cloud (in-tree ``barmanObjectStore``, still served by
CloudNativePG 1.30), authenticated by the IAM role of the instances' ServiceAccount, and are kept
``database.backup.retention_days`` days.
"""

from __future__ import annotations

from typing import Any

from infra.charts import CLOUDNATIVE_PG, KUBE_PROMETHEUS_STACK
from infra.config import Database, EnvConfig
from infra.model.common import APP, Manifest, labels, selector_labels
from infra.model.namespace import restricted_namespace
from infra.model.network import dns_egress, namespace_selector
from infra.model.secrets import DATABASE_CREDENTIALS, DATABASE_OWNER

CNPG_API = "postgresql.cnpg.io/v1"
CLUSTER = f"{APP}-db"
DATABASE = "cap_verifier"
CLUSTER_LABEL = "cnpg.io/cluster"
INSTANCE_PORTS = (5432, 8000)  # PostgreSQL, and the instance manager's status port
METRICS_PORT = 9187
# Daily at 02:30 UTC; CloudNativePG schedules take six fields, seconds first.
BACKUP_SCHEDULE = "0 30 2 * * *"


def database(cfg: EnvConfig) -> Database:
    if cfg.database is None:
        raise ValueError(f"{cfg.env}: no PostgreSQL registry")
    return cfg.database


def _meta(cfg: EnvConfig, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": database(cfg).namespace, "labels": labels(cfg)}


def cluster(cfg: EnvConfig) -> Manifest:
    db = database(cfg)
    return {
        "apiVersion": CNPG_API,
        "kind": "Cluster",
        "metadata": _meta(cfg, CLUSTER),
        "spec": {
            "instances": db.instances,
            "primaryUpdateStrategy": "unsupervised",
            "enableSuperuserAccess": False,
            "storage": {"size": db.storage_size},
            "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"cpu": "2", "memory": "2Gi"},
            },
            "affinity": {
                "enablePodAntiAffinity": True,
                "podAntiAffinityType": "required",
                "topologyKey": "kubernetes.io/hostname",
            },
            "bootstrap": {
                "initdb": {
                    "database": DATABASE,
                    "owner": DATABASE_OWNER,
                    "secret": {"name": DATABASE_CREDENTIALS},
                }
            },
            "serviceAccountTemplate": {
                "metadata": {"annotations": {"eks.amazonaws.com/role-arn": db.backup.role_arn}}
            },
            "backup": {
                "retentionPolicy": f"{db.backup.retention_days}d",
                "barmanObjectStore": {
                    "destinationPath": db.backup.destination,
                    "s3Credentials": {"inheritFromIAMRole": True},
                    "wal": {"compression": "gzip"},
                    "data": {"compression": "gzip"},
                },
            },
        },
    }


def scheduled_backup(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": CNPG_API,
        "kind": "ScheduledBackup",
        "metadata": _meta(cfg, f"{CLUSTER}-daily"),
        "spec": {
            "schedule": BACKUP_SCHEDULE,
            "immediate": True,
            "backupOwnerReference": "self",
            "method": "barmanObjectStore",
            "cluster": {"name": CLUSTER},
        },
    }


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _policy(cfg: EnvConfig, name: str, spec: dict[str, Any]) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(cfg, name),
        "spec": spec,
    }


def network_policies(cfg: EnvConfig) -> list[Manifest]:
    db = database(cfg)
    instances = {"matchLabels": {CLUSTER_LABEL: CLUSTER}}
    peers = [{"podSelector": instances}]
    return [
        _policy(
            cfg,
            f"{CLUSTER}-default-deny",
            {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        ),
        _policy(
            cfg,
            f"{CLUSTER}-ingress",
            {
                "podSelector": instances,
                "policyTypes": ["Ingress"],
                "ingress": [
                    # The verifier only, on PostgreSQL's port.
                    {
                        "from": [
                            {
                                "namespaceSelector": namespace_selector(cfg.namespace),
                                "podSelector": {"matchLabels": selector_labels(cfg)},
                            }
                        ],
                        "ports": _tcp(5432),
                    },
                    # Replication and the instance managers between instances.
                    {"from": peers, "ports": _tcp(*INSTANCE_PORTS)},
                    # The operator: status checks and management connections.
                    {
                        "from": [
                            {"namespaceSelector": namespace_selector(CLOUDNATIVE_PG.namespace)}
                        ],
                        "ports": _tcp(*INSTANCE_PORTS),
                    },
                    {
                        "from": [
                            {
                                "namespaceSelector": namespace_selector(
                                    KUBE_PROMETHEUS_STACK.namespace
                                )
                            }
                        ],
                        "ports": _tcp(METRICS_PORT),
                    },
                ],
            },
        ),
        _policy(
            cfg,
            f"{CLUSTER}-egress",
            {
                "podSelector": instances,
                "policyTypes": ["Egress"],
                "egress": [
                    dns_egress(cfg),
                    {"to": peers, "ports": _tcp(*INSTANCE_PORTS)},
                    # The instance manager watches its Cluster through the API server.
                    {
                        "to": [{"ipBlock": {"cidr": db.kube_api_cidr}}],
                        "ports": _tcp(443, 6443),
                    },
                    # barman-cloud to object storage (and the STS endpoint of the IAM role).
                    {"to": [{"ipBlock": {"cidr": db.object_storage_cidr}}], "ports": _tcp(443)},
                ],
            },
        ),
    ]


def objects(cfg: EnvConfig) -> list[Manifest]:
    if cfg.database is None:
        return []
    return [
        restricted_namespace(cfg, cfg.database.namespace),
        *network_policies(cfg),
        cluster(cfg),
        scheduled_backup(cfg),
    ]
