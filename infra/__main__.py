"""The Pulumi program: one stack per environment, direct or GitOps delivery.

- direct (``gitops: false``): the platform charts as Helm releases, then every object of
  ``model(cfg)`` as a typed resource;
- GitOps (``gitops: true``): only Argo CD and its root Application; Argo CD then syncs the
  platform Applications and the service from ``deploy/<env>/``.

Resources are created by :func:`build`, never at import time; tests call it under mocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from infra import gitops
from infra.artefacts import Artefacts
from infra.artefacts import load as load_artefacts
from infra.charts import ARGOCD, PLATFORM_CHARTS
from infra.components import (
    GitOpsBootstrap,
    GitOpsBootstrapArgs,
    KubernetesObjects,
    KubernetesObjectsArgs,
    PlatformCharts,
    PlatformChartsArgs,
)
from infra.config import EnvConfig
from infra.model import model
from infra.stack import stack_config

Mode = Literal["direct", "gitops"]


@dataclass(frozen=True)
class Program:
    """What :func:`build` registered: the provider and the components of the chosen mode."""

    mode: Mode
    provider: k8s.Provider
    charts: PlatformCharts | None = None
    objects: KubernetesObjects | None = None
    bootstrap: GitOpsBootstrap | None = None


def build(cfg: EnvConfig, artefacts: Artefacts) -> Program:
    """Register the resources of ``cfg``'s environment."""
    # An explicit provider on the stack's kubeconfig context (the current context when unset).
    provider = k8s.Provider("kubernetes", context=cfg.cluster.kube_context)
    opts = pulumi.ResourceOptions(providers=[provider])  # inherited by every child
    if cfg.delivery.gitops:
        bootstrap = GitOpsBootstrap(
            "gitops",
            GitOpsBootstrapArgs(argocd=ARGOCD, manifests=gitops.bootstrap(cfg, artefacts)),
            opts,
        )
        return Program(mode="gitops", provider=provider, bootstrap=bootstrap)
    charts = PlatformCharts("platform", PlatformChartsArgs(charts=PLATFORM_CHARTS), opts)
    objects = KubernetesObjects(
        "verifier",
        # The objects need the charts' CRDs and controllers (webhooks) first.
        KubernetesObjectsArgs(manifests=model(cfg, artefacts), after=[charts]),
        opts,
    )
    return Program(mode="direct", provider=provider, charts=charts, objects=objects)


def main() -> Program:
    """Read the stack config and the artefacts (a ConfigError stops here, before any resource),
    build, export."""
    cfg = stack_config()
    program = build(cfg, load_artefacts())
    pulumi.export("mode", program.mode)
    pulumi.export("namespace", cfg.namespace)
    pulumi.export("host", cfg.host)
    pulumi.export("url", f"https://{cfg.host}/")
    return program


if __name__ == "__main__":
    main()
