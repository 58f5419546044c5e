"""Argo CD: the app-of-apps of one environment.

- :func:`bootstrap`: the AppProjects and the root Application. Installed once per cluster, by the
  Pulumi program in ``gitops: true`` mode or by ``kubectl apply -f deploy/<env>/bootstrap/``.
- :func:`applications`: one Application per platform chart (:mod:`infra.charts`). They live in
  ``deploy/<env>/`` beside the service's objects, so the root Application syncs them first (their
  sync waves are lower) and waits for each to be healthy before the next wave.
"""

from __future__ import annotations

from typing import Any

from infra.artefacts import Artefacts
from infra.charts import ARGOCD, PLATFORM_CHARTS, Chart, for_env
from infra.config import EnvConfig
from infra.model import WAVE_ANNOTATION, model
from infra.model.common import APP, Manifest, labels

ARGOCD_API = "argoproj.io/v1alpha1"
IN_CLUSTER = "https://kubernetes.default.svc"
SERVICE_PROJECT = APP
PLATFORM_PROJECT = "platform"
FINALIZER = "resources-finalizer.argocd.argoproj.io"

# Retry failed syncs with exponential backoff: 10 s, 20 s, 40 s … capped at 5 minutes.
RETRY: dict[str, Any] = {
    "limit": 10,
    "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"},
}


def root_name(cfg: EnvConfig) -> str:
    return f"{APP}-{cfg.env}"


def deploy_path(cfg: EnvConfig) -> str:
    return f"deploy/{cfg.env}"


def _metadata(
    cfg: EnvConfig, name: str, wave: int | None = None, *, cascade: bool = False
) -> dict[str, Any]:
    """Argo CD metadata; ``cascade``: deleting the Application deletes what it deployed."""
    meta: dict[str, Any] = {"name": name, "namespace": ARGOCD.namespace, "labels": labels(cfg)}
    if wave is not None:
        meta["annotations"] = {WAVE_ANNOTATION: str(wave)}
    if cascade:
        meta["finalizers"] = [FINALIZER]
    return meta


def _sync_policy(
    server_side_apply: bool, create_namespace: bool, respect_ignore: bool = False
) -> dict[str, Any]:
    options = ["PruneLast=true"]
    if respect_ignore:
        options.append("RespectIgnoreDifferences=true")
    if create_namespace:
        options.append("CreateNamespace=true")
    if server_side_apply:
        options.append("ServerSideApply=true")
    return {
        "automated": {"prune": True, "selfHeal": True, "allowEmpty": False},
        "syncOptions": options,
        "retry": RETRY,
    }


def chart_source(chart: Chart) -> dict[str, Any]:
    """An Argo CD source for ``chart``: a Helm repository, or an OCI registry (Argo CD >= 3.1)."""
    helm = {"releaseName": chart.name, "valuesObject": dict(chart.values)}
    if chart.oci:
        return {
            "repoURL": f"{chart.helm_repo}/{chart.chart}",
            "targetRevision": chart.version,
            "path": ".",
            "helm": helm,
        }
    return {
        "repoURL": chart.repo_url,
        "chart": chart.chart,
        "targetRevision": chart.version,
        "helm": helm,
    }


def chart_application(cfg: EnvConfig, chart: Chart) -> Manifest:
    return {
        "apiVersion": ARGOCD_API,
        "kind": "Application",
        "metadata": _metadata(cfg, chart.name, chart.sync_wave, cascade=True),
        "spec": {
            "project": PLATFORM_PROJECT,
            "source": chart_source(chart),
            "destination": {"server": IN_CLUSTER, "namespace": chart.namespace},
            "syncPolicy": _sync_policy(chart.server_side_apply, create_namespace=True),
        },
    }


def applications(cfg: EnvConfig) -> list[Manifest]:
    """One Application per platform chart, at the chart's sync wave, with ``cfg``'s values."""
    return [chart_application(cfg, for_env(chart, cfg)) for chart in PLATFORM_CHARTS]


def _source_repos(cfg: EnvConfig) -> list[str]:
    return sorted({chart_source(c)["repoURL"] for c in PLATFORM_CHARTS} | {cfg.delivery.repo_url})


def service_project(cfg: EnvConfig, objects: list[Manifest]) -> Manifest:
    """The root Application's project: this repository only, only the kinds it deploys."""
    destinations = sorted({cfg.namespace, ARGOCD.namespace, *_extra_namespaces(cfg)})
    return {
        "apiVersion": ARGOCD_API,
        "kind": "AppProject",
        "metadata": _metadata(cfg, SERVICE_PROJECT),
        "spec": {
            "description": f"CAP Verifier ({cfg.env}): the service and its platform Applications",
            "sourceRepos": [cfg.delivery.repo_url],
            "destinations": [{"server": IN_CLUSTER, "namespace": ns} for ns in destinations],
            "clusterResourceWhitelist": [
                {"group": g, "kind": k} for g, k in kinds(objects, namespaced=False)
            ],
            "namespaceResourceWhitelist": [
                {"group": g, "kind": k} for g, k in kinds(objects, namespaced=True)
            ],
            "orphanedResources": {"warn": True},
        },
    }


def _extra_namespaces(cfg: EnvConfig) -> list[str]:
    return [cfg.database.namespace] if cfg.database is not None else []


def platform_project(cfg: EnvConfig) -> Manifest:
    """The platform charts' project: the pinned chart repositories, their namespaces only.

    Controllers install CRDs, cluster roles and webhooks, so cluster-scoped kinds are allowed here
    and nowhere else.
    """
    return {
        "apiVersion": ARGOCD_API,
        "kind": "AppProject",
        "metadata": _metadata(cfg, PLATFORM_PROJECT),
        "spec": {
            "description": "Platform controllers at pinned chart versions",
            "sourceRepos": [r for r in _source_repos(cfg) if r != cfg.delivery.repo_url],
            "destinations": [
                {"server": IN_CLUSTER, "namespace": ns}
                for ns in sorted({c.namespace for c in PLATFORM_CHARTS})
            ],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            "namespaceResourceWhitelist": [{"group": "*", "kind": "*"}],
        },
    }


def root_application(cfg: EnvConfig) -> Manifest:
    """The app-of-apps: syncs ``deploy/<env>/`` (platform Applications and the service)."""
    return {
        "apiVersion": ARGOCD_API,
        "kind": "Application",
        "metadata": _metadata(cfg, root_name(cfg), cascade=True),
        "spec": {
            "project": SERVICE_PROJECT,
            "source": {
                "repoURL": cfg.delivery.repo_url,
                "targetRevision": cfg.delivery.revision,
                "path": deploy_path(cfg),
            },
            "destination": {"server": IN_CLUSTER, "namespace": cfg.namespace},
            "syncPolicy": _sync_policy(
                server_side_apply=True,
                create_namespace=False,
                respect_ignore=cfg.delivery.canary.enabled,
            ),
            # The canary controller owns the HTTPRoute weights while a rollout runs.
            "ignoreDifferences": [
                {
                    "group": "gateway.networking.k8s.io",
                    "kind": "HTTPRoute",
                    "jqPathExpressions": [".spec.rules[].backendRefs[].weight"],
                }
            ]
            if cfg.delivery.canary.enabled
            else [],
        },
    }


def kinds(objects: list[Manifest], *, namespaced: bool) -> list[tuple[str, str]]:
    """(API group, kind) of every namespaced, or every cluster-scoped, object."""
    return sorted(
        {
            (o["apiVersion"].rpartition("/")[0], o["kind"])
            for o in objects
            if ("namespace" in o["metadata"]) == namespaced
        }
    )


def bootstrap(cfg: EnvConfig, artefacts: Artefacts) -> list[Manifest]:
    """AppProjects, then the root Application: what is applied by hand or by Pulumi."""
    deployed = [*model(cfg, artefacts), *applications(cfg)]
    return [platform_project(cfg), service_project(cfg, deployed), root_application(cfg)]
