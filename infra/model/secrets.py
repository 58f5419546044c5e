"""External Secrets: every Secret the service needs, fetched from AWS Secrets Manager.

No secret value is ever rendered. A ClusterSecretStore (usable from this environment's namespaces
only) authenticates as a dedicated ServiceAccount bound to an IAM role that reads
``<secrets.key_prefix>/*`` and nothing else. The remote keys are:

- ``<prefix>/oauth2``: ``client_id``, ``client_secret`` (ORR 2.3-01, ``cap-verifier-oauth2``);
- ``<prefix>/registry``: ``password`` of the database owner ``cap_verifier`` (PostgreSQL only);
- ``<prefix>/client-ca``: ``ca.crt``, the client CA bundle (mTLS only, ORR 2.3-03);
- ``<prefix>/image-pull``: ``username``, ``password`` of the image registry, read-only (clusters
  other than EKS only, :func:`pulls_with_secret`; ORR 2.4-06).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from infra.config import EnvConfig
from infra.model.common import APP, Manifest, labels, metadata

ESO_API = "external-secrets.io/v1"
STORE = APP
STORE_SERVICE_ACCOUNT = f"{APP}-secrets"
OAUTH2_SECRET = f"{APP}-oauth2"
REGISTRY_SECRET = f"{APP}-registry"
REGISTRY_URL_KEY = "url"
DATABASE_OWNER = "cap_verifier"
DATABASE_CREDENTIALS = f"{APP}-db-owner"
IMAGE_PULL_SECRET = f"{APP}-image-pull"
DOCKER_CONFIG_TYPE = "kubernetes.io/dockerconfigjson"
DOCKER_HUB = "https://index.docker.io/v1/"
REFRESH = "1h"


def store_service_account(cfg: EnvConfig) -> Manifest:
    meta = metadata(cfg, STORE_SERVICE_ACCOUNT)
    meta["annotations"] = {"eks.amazonaws.com/role-arn": cfg.secrets.store_role_arn}
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta,
        "automountServiceAccountToken": False,
    }


def namespaces(cfg: EnvConfig) -> list[str]:
    """The namespaces allowed to read through the store."""
    extra = [cfg.database.namespace] if cfg.database is not None else []
    return [cfg.namespace, *extra]


def cluster_secret_store(cfg: EnvConfig) -> Manifest:
    return {
        "apiVersion": ESO_API,
        "kind": "ClusterSecretStore",
        "metadata": metadata(cfg, STORE, namespaced=False),
        "spec": {
            "conditions": [{"namespaces": namespaces(cfg)}],
            "provider": {
                "aws": {
                    "service": "SecretsManager",
                    "region": cfg.secrets.store_region,
                    "auth": {
                        "jwt": {
                            "serviceAccountRef": {
                                "name": STORE_SERVICE_ACCOUNT,
                                "namespace": cfg.namespace,
                            }
                        }
                    },
                }
            },
        },
    }


def external_secret(
    cfg: EnvConfig,
    name: str,
    namespace: str,
    remote_key: str,
    properties: dict[str, str],
    *,
    template: dict[str, Any] | None = None,
) -> Manifest:
    """An ExternalSecret producing Secret ``name``: ``properties`` maps secret key -> property."""
    target: dict[str, Any] = {"name": name, "creationPolicy": "Owner", "deletionPolicy": "Retain"}
    if template is not None:
        target["template"] = template
    return {
        "apiVersion": ESO_API,
        "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(cfg)},
        "spec": {
            "refreshInterval": REFRESH,
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": STORE},
            "target": target,
            "data": [
                {
                    "secretKey": key,
                    "remoteRef": {
                        "key": f"{cfg.secrets.key_prefix}/{remote_key}",
                        "property": prop,
                    },
                }
                for key, prop in properties.items()
            ],
        },
    }


def pulls_with_secret(cfg: EnvConfig) -> bool:
    """Whether the service's pulls authenticate with an imagePullSecret.

    On EKS they need none: the nodes' role reads the environment's ECR repository
    (``AmazonEC2ContainerRegistryReadOnly``, :mod:`infra.cloud.cluster`) and nothing else may. The
    nodes of an ``existing`` cluster carry no identity this program grants, so the registry's
    credentials come from Secrets Manager into :data:`IMAGE_PULL_SECRET`, which the service's
    ServiceAccount lists (its pods and policy-controller's digest lookups use it).
    """
    return cfg.cluster.provider != "eks"


def registry_host(cfg: EnvConfig) -> str:
    """The registry of ``image.repository``, as a Docker config names it."""
    first, _, rest = cfg.image.repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB


def docker_config_template(cfg: EnvConfig) -> str:
    """``.dockerconfigjson`` for the registry, the credentials spliced in by External Secrets
    (base64 ``user:password``, which needs no JSON escaping)."""
    auth = '{{ printf "%s:%s" .username .password | b64enc }}'
    return f'{{"auths":{{"{registry_host(cfg)}":{{"auth":"{auth}"}}}}}}'


def registry_url_template(cfg: EnvConfig) -> str:
    """``registry_url`` with the password spliced in by the External Secrets template engine."""
    parts = urlsplit(cfg.registry.url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{DATABASE_OWNER}:{{{{ .password | urlquery }}}}@{host}"
    query = parts.query or "sslmode=require"
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def objects(cfg: EnvConfig) -> list[Manifest]:
    out = [
        store_service_account(cfg),
        cluster_secret_store(cfg),
        external_secret(
            cfg,
            OAUTH2_SECRET,
            cfg.namespace,
            "oauth2",
            {"client_id": "client_id", "client_secret": "client_secret"},
        ),
    ]
    if cfg.database is not None:
        out.append(
            external_secret(
                cfg,
                REGISTRY_SECRET,
                cfg.namespace,
                "registry",
                {"password": "password"},
                template={
                    "type": "Opaque",
                    "engineVersion": "v2",
                    "data": {REGISTRY_URL_KEY: registry_url_template(cfg)},
                },
            )
        )
        out.append(
            external_secret(
                cfg,
                DATABASE_CREDENTIALS,
                cfg.database.namespace,
                "registry",
                {"password": "password"},
                template={
                    "type": "kubernetes.io/basic-auth",
                    "engineVersion": "v2",
                    "data": {"username": DATABASE_OWNER, "password": "{{ .password }}"},
                },
            )
        )
    if pulls_with_secret(cfg):
        out.append(
            external_secret(
                cfg,
                IMAGE_PULL_SECRET,
                cfg.namespace,
                "image-pull",
                {"username": "username", "password": "password"},
                template={
                    "type": DOCKER_CONFIG_TYPE,
                    "engineVersion": "v2",
                    "data": {".dockerconfigjson": docker_config_template(cfg)},
                },
            )
        )
    if cfg.edge.require_mtls and cfg.edge.mtls_ca_secret is not None:
        out.append(
            external_secret(
                cfg, cfg.edge.mtls_ca_secret, cfg.namespace, "client-ca", {"ca.crt": "ca.crt"}
            )
        )
    return out
