"""The Pulumi program: one stack per environment, direct or GitOps delivery.

- direct (``gitops: false``): the platform charts as Helm releases, then every object of
  ``model(cfg)`` as a typed resource;
- GitOps (``gitops: true``): only Argo CD and its root Application; Argo CD then syncs the
  platform Applications and the service from ``deploy/<env>/``.

Resources are created by :func:`build`, never at import time; tests call it under mocks.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Pulumi runs this file as ``runpy.run_path("infra/")``: sys.path[0] is then infra/ itself, where
# our modules (config, platform, ...) would shadow top-level names. Import from the repo root.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

from dataclasses import dataclass  # noqa: E402
from typing import Literal  # noqa: E402

import pulumi  # noqa: E402
import pulumi_kubernetes as k8s  # noqa: E402

from infra import gitops  # noqa: E402
from infra.components import (  # noqa: E402
    GitOpsBootstrap,
    GitOpsBootstrapArgs,
    KubernetesObjects,
    KubernetesObjectsArgs,
    PlatformCharts,
    PlatformChartsArgs,
)
from infra.config import EnvConfig  # noqa: E402
from infra.model import model  # noqa: E402
from infra.platform import ARGOCD, PLATFORM_CHARTS  # noqa: E402
from infra.stack import stack_config  # noqa: E402

Mode = Literal["direct", "gitops"]


@dataclass(frozen=True)
class Program:
    """What :func:`build` registered: the provider and the components of the chosen mode."""

    mode: Mode
    provider: k8s.Provider
    charts: PlatformCharts | None = None
    objects: KubernetesObjects | None = None
    bootstrap: GitOpsBootstrap | None = None


def build(cfg: EnvConfig) -> Program:
    """Register the resources of ``cfg``'s environment."""
    # An explicit provider on the stack's kubeconfig context (the current context when unset).
    provider = k8s.Provider("kubernetes", context=cfg.kube_context)
    opts = pulumi.ResourceOptions(providers=[provider])  # inherited by every child
    if cfg.gitops:
        bootstrap = GitOpsBootstrap(
            "gitops",
            GitOpsBootstrapArgs(argocd=ARGOCD, manifests=gitops.bootstrap(cfg)),
            opts,
        )
        return Program(mode="gitops", provider=provider, bootstrap=bootstrap)
    charts = PlatformCharts("platform", PlatformChartsArgs(charts=PLATFORM_CHARTS), opts)
    objects = KubernetesObjects(
        "verifier",
        # The objects need the charts' CRDs and controllers (webhooks) first.
        KubernetesObjectsArgs(manifests=model(cfg), after=[charts]),
        opts,
    )
    return Program(mode="direct", provider=provider, charts=charts, objects=objects)


def main() -> Program:
    """Read the stack config (a ConfigError stops here, before any resource), build, export."""
    cfg = stack_config()
    program = build(cfg)
    pulumi.export("mode", program.mode)
    pulumi.export("namespace", cfg.namespace)
    pulumi.export("host", cfg.host)
    pulumi.export("url", f"https://{cfg.host}/")
    return program


if __name__ == "__main__":
    main()
