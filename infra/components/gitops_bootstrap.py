"""``GitOpsBootstrap``: Argo CD and the root Application, the only resources of GitOps mode.

Argo CD is installed as a Helm release; the AppProjects and the root Application
(:func:`infra.gitops.bootstrap`) are custom resources that wait for it. Argo CD then syncs
``deploy/<env>/``: the platform Applications and the service, in sync-wave order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from infra.charts import Chart
from infra.components.kubernetes_objects import (
    KubernetesObjects,
    KubernetesObjectsArgs,
    Manifest,
    is_custom,
    plan,
)
from infra.components.platform_charts import DEFAULT_TIMEOUT_SECONDS, check_charts, release

RESOURCE_TYPE = "capverifier:k8s:GitOpsBootstrap"


@dataclass(frozen=True)
class GitOpsBootstrapArgs:
    argocd: Chart
    """The Argo CD chart (``infra.charts.ARGOCD``)."""
    manifests: Sequence[Manifest]
    """Argo CD custom resources, e.g. ``gitops.bootstrap(cfg)``."""
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS


class GitOpsBootstrap(pulumi.ComponentResource):
    """The Argo CD release, then the AppProjects and the root Application."""

    argocd: pulumi.Resource
    objects: KubernetesObjects

    def __init__(
        self,
        name: str,
        args: GitOpsBootstrapArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # Everything is checked before any resource exists.
        check_charts([args.argocd], args.timeout_seconds)
        for manifest in args.manifests:
            api_version = manifest.get("apiVersion")
            if not isinstance(api_version, str) or not is_custom(api_version):
                raise ValueError(
                    f"{api_version} {manifest.get('kind')}: GitOps bootstrap objects are "
                    "Argo CD custom resources only"
                )
        plan(f"{name}-objects", args.manifests)
        super().__init__(RESOURCE_TYPE, name, None, opts)
        self.argocd = release(
            f"{name}-argocd",
            args.argocd,
            args.timeout_seconds,
            pulumi.ResourceOptions(parent=self),
        )
        self.objects = KubernetesObjects(
            f"{name}-objects",
            KubernetesObjectsArgs(manifests=args.manifests, after=[self.argocd]),
            pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"argocd": args.argocd.name, "objects": self.objects.urns})
