"""Plain-manifest helpers the policies share: find objects, reach into the pod template."""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml import YAML

from infra.policies.registry import Objs

RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
# Kinds without a namespace; every other object must live in cap-verifier (or, for PostgreSQL,
# in the database's own namespace).
CLUSTER_SCOPED = frozenset(
    {"Namespace", "ClusterIssuer", "GatewayClass", "ClusterSecretStore", "ClusterImagePolicy"}
)
WORKLOAD_KINDS = ("Deployment", "Rollout")
CREDENTIAL = re.compile(r"-----BEGIN |://[^/\s:@\"']+:[^/\s@\"']+@")
SECRET_WORDS = ("password", "secret", "token", "private", "BEGIN ", "client_secret")


def one(objs: Objs, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def find(objs: Objs, kind: str) -> Objs:
    return [o for o in objs if o["kind"] == kind]


def workload(objs: Objs) -> dict[str, Any]:
    """The one Deployment, or the Rollout that replaces it where the canary is on."""
    found = [o for o in objs if o["kind"] in WORKLOAD_KINDS]
    assert len(found) == 1, f"expected one Deployment or Rollout, found {len(found)}"
    return found[0]


def pod_spec(objs: Objs) -> dict[str, Any]:
    spec: dict[str, Any] = workload(objs)["spec"]["template"]["spec"]
    return spec


def in_namespace(objs: Objs, namespace: str) -> Objs:
    return [o for o in objs if o["metadata"].get("namespace") == namespace]


def service_config(objs: Objs) -> dict[str, Any]:
    data = one(objs, "ConfigMap", "cap-verifier-config")["data"]["config.yaml"]
    loaded: dict[str, Any] = YAML(typ="safe", pure=True).load(data)
    return loaded
