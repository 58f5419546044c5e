"""The Pulumi program: one stack per environment, direct or GitOps delivery, on an existing
cluster or on the EKS cluster it provisions (``cluster.provider``, :mod:`infra.cloud`).

- existing: the provider on the stack's kubeconfig context, once the server's version is
  within the supported range;
- eks: the cloud resources first, the provider on the cluster's kubeconfig output, and the
  Kubernetes objects and chart values bound to the resources' outputs (role ARNs, backup
  destination, image repository, Loki's bucket) instead of the values of
  ``infra/outputs/<env>.yaml``;
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
from infra.charts import ARGOCD, PLATFORM_CHARTS, for_env
from infra.cloud import existing
from infra.cloud.component import EksEnvironment
from infra.cloud.values import PLACEHOLDERS, applicable, with_placeholders
from infra.components import (
    GitOpsBootstrap,
    GitOpsBootstrapArgs,
    KubernetesObjects,
    KubernetesObjectsArgs,
    PlatformCharts,
    PlatformChartsArgs,
)
from infra.components.binding import Values
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
    cloud: EksEnvironment | None = None


def build(cfg: EnvConfig, artefacts: Artefacts) -> Program:
    """Register the resources of ``cfg``'s environment."""
    cloud: EksEnvironment | None = None
    values: Values = {}
    if cfg.cluster.provider == "eks":
        cloud = EksEnvironment(f"cap-verifier-{cfg.env}", cfg)
        # The objects need nodes to run on; the provider waits for the whole environment.
        provider = k8s.Provider(
            "kubernetes",
            kubeconfig=cloud.kubeconfig,
            opts=pulumi.ResourceOptions(depends_on=[cloud]),
        )
        values = {PLACEHOLDERS[name]: cloud.outputs[name] for name in applicable(cfg)}
        cfg = with_placeholders(cfg)
    else:
        # An explicit provider on the stack's kubeconfig context (the current one when unset).
        provider = k8s.Provider("kubernetes", context=cfg.cluster.kube_context)
    opts = pulumi.ResourceOptions(providers=[provider])  # inherited by every child
    if cfg.delivery.gitops:
        bootstrap = GitOpsBootstrap(
            "gitops",
            GitOpsBootstrapArgs(
                argocd=for_env(ARGOCD, cfg), manifests=gitops.bootstrap(cfg, artefacts)
            ),
            opts,
        )
        return Program(mode="gitops", provider=provider, bootstrap=bootstrap, cloud=cloud)
    charts = PlatformCharts(
        "platform",
        # Loki's bucket and role are the resources' outputs, like the objects' values.
        PlatformChartsArgs(charts=[for_env(c, cfg) for c in PLATFORM_CHARTS], values=values),
        opts,
    )
    objects = KubernetesObjects(
        "verifier",
        # The objects need the charts' CRDs and controllers (webhooks) first.
        KubernetesObjectsArgs(manifests=model(cfg, artefacts), after=[charts], values=values),
        opts,
    )
    return Program(mode="direct", provider=provider, charts=charts, objects=objects, cloud=cloud)


def main() -> Program:
    """Read the stack config and the artefacts (a ConfigError stops here, before any resource),
    build, export."""
    cfg = stack_config()
    if cfg.cluster.provider == "existing":
        existing.check_version(cfg, existing.server_version(cfg.cluster.kube_context))
    program = build(cfg, load_artefacts())
    if program.cloud is not None:
        pulumi.export("kubeconfig", program.cloud.kubeconfig)
        for name, value in program.cloud.outputs.items():
            pulumi.export(name, value)
    pulumi.export("mode", program.mode)
    pulumi.export("namespace", cfg.namespace)
    pulumi.export("host", cfg.host)
    pulumi.export("url", f"https://{cfg.host}/")
    return program


if __name__ == "__main__":
    main()
