"""Grafana Loki's Helm values per environment.

- ``single-binary`` (dev): one Loki on its filesystem volume, replication 1, no caches;
- ``simple-scalable`` (staging, prod): read, write and backend targets on the S3 bucket of
  ``logging.bucket``, reached through the IRSA role ``logging.role_arn`` of Loki's service
  account (no key in any value).

Retention: :data:`cap_ops.log_store.RETENTION_HOURS`, enforced by the compactor (deletes go
through the same store as the chunks). Tenancy: one tenant per cluster (``auth_enabled:
false``): each environment is its own cluster; Loki has ClusterIP services only and Grafana,
with its own login, is the only reader outside the cluster.
"""

from __future__ import annotations

from typing import Any

from cap_ops import log_store
from infra.config import EnvConfig

NAMESPACE = "logging"
RELEASE = "loki"
SERVICE_ACCOUNT = "loki"
"""Loki's service account (IRSA trusts exactly this one)."""
GATEWAY_URL = f"http://{RELEASE}-gateway.{NAMESPACE}.svc.cluster.local"
"""The chart's gateway (nginx, port 80): every client writes and reads through it."""
PUSH_PATH = "/loki/api/v1/push"
PUSH_URL = GATEWAY_URL + PUSH_PATH
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
SCHEMA_FROM = "2026-01-01"
"""The first day of the TSDB v13 schema (before any line is stored; never changed later)."""
RETENTION = f"{log_store.RETENTION_HOURS}h"

MODES = {"single-binary": "SingleBinary", "simple-scalable": "SimpleScalable"}
"""``logging.mode`` -> the chart's ``deploymentMode``."""


def _storage(cfg: EnvConfig) -> tuple[str, dict[str, Any]]:
    """The object store's name in Loki's config, and the chart's ``loki.storage``."""
    bucket, eks = cfg.logging.bucket, cfg.cluster.eks
    if cfg.logging.mode == "single-binary":
        return "filesystem", {"type": "filesystem"}
    assert bucket is not None  # the config requires it with simple-scalable
    assert eks is not None  # and cluster.eks
    return "s3", {
        "type": "s3",
        "bucketNames": {"chunks": bucket},
        "s3": {"region": eks.region},
    }


def _targets(cfg: EnvConfig) -> dict[str, Any]:
    """Replicas of each target: the single binary, or read, write and backend (3 each)."""
    single = cfg.logging.mode == "single-binary"
    scalable = 0 if single else 3
    return {
        "singleBinary": {"replicas": 1 if single else 0},
        "read": {"replicas": scalable},
        "write": {"replicas": scalable},
        "backend": {"replicas": scalable},
    }


def _service_account(cfg: EnvConfig) -> dict[str, Any]:
    account: dict[str, Any] = {"create": True, "name": SERVICE_ACCOUNT}
    if cfg.logging.role_arn is not None:
        account["annotations"] = {IRSA_ANNOTATION: cfg.logging.role_arn}
    return account


def values(cfg: EnvConfig) -> dict[str, Any]:
    """The chart's values for ``cfg``'s environment."""
    store, storage = _storage(cfg)
    single = cfg.logging.mode == "single-binary"
    return {
        "deploymentMode": MODES[cfg.logging.mode],
        "loki": {
            "auth_enabled": False,
            "commonConfig": {"replication_factor": 1 if single else 3},
            "storage": storage,
            "schemaConfig": {
                "configs": [
                    {
                        "from": SCHEMA_FROM,
                        "store": "tsdb",
                        "object_store": store,
                        "schema": "v13",
                        "index": {"prefix": "index_", "period": "24h"},
                    }
                ]
            },
            "limits_config": {"retention_period": RETENTION},
            "compactor": {
                "retention_enabled": True,
                "delete_request_store": store,
                "working_directory": "/var/loki/compactor",
            },
        },
        **_targets(cfg),
        # No log-based rules: the alerts are Prometheus rules (alerts/); no ruler bucket.
        "ruler": {"enabled": False},
        "chunksCache": {"enabled": not single, "allocatedMemory": 2048},
        "resultsCache": {"enabled": not single},
        "serviceAccount": _service_account(cfg),
    }
