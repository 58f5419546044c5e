"""Pulumi components of the program: Kubernetes objects, platform charts, GitOps bootstrap."""

from infra.components.gitops_bootstrap import GitOpsBootstrap, GitOpsBootstrapArgs
from infra.components.kubernetes_objects import KubernetesObjects, KubernetesObjectsArgs
from infra.components.platform_charts import PlatformCharts, PlatformChartsArgs

__all__ = [
    "GitOpsBootstrap",
    "GitOpsBootstrapArgs",
    "KubernetesObjects",
    "KubernetesObjectsArgs",
    "PlatformCharts",
    "PlatformChartsArgs",
]
