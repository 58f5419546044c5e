"""``PlatformCharts``: one Helm release per platform chart, in sync-wave order.

The same :class:`~infra.charts.Chart` specs become Argo CD Applications on the GitOps path
(:mod:`infra.gitops`); here each is a ``helm.v3.Release`` (a plain resource: its inputs are
visible to ``pulumi preview`` and to tests, and Helm hooks run). CRD bundles too big for a
release Secret (``helm_release=False``) are rendered client-side instead (``helm.v4.Chart``,
applied server-side, no hooks). Charts of a later wave ``depends_on`` every chart of the
previous wave: CRDs, then controllers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_kubernetes.helm import v4
from pulumi_kubernetes.helm.v3 import Release, RepositoryOptsArgs

from infra.charts import Chart
from infra.components.binding import Values, bind

RESOURCE_TYPE = "capverifier:k8s:PlatformCharts"
DEFAULT_TIMEOUT_SECONDS = 600


def _plain(value: Any) -> Any:
    """Helm values as plain dicts and lists (chart specs may hold read-only mappings)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def rendered_chart(
    resource_name: str, chart: Chart, opts: pulumi.ResourceOptions, values: Values
) -> v4.Chart:
    """``chart`` rendered client-side and applied object by object (no release Secret)."""
    if chart.oci:
        source: dict[str, Any] = {"chart": f"{chart.helm_repo}/{chart.chart}"}
    else:
        source = {
            "chart": chart.chart,
            "repository_opts": v4.RepositoryOptsArgs(repo=chart.helm_repo),
        }
    return v4.Chart(
        resource_name,
        name=chart.name,
        version=chart.version,
        namespace=chart.namespace,
        values=bind(_plain(chart.values), values),
        opts=opts,
        **source,
    )


def release(
    resource_name: str,
    chart: Chart,
    timeout_seconds: int,
    opts: pulumi.ResourceOptions,
    values: Values | None = None,
) -> pulumi.Resource:
    """``chart`` as an atomic Helm release named like the chart, in its own namespace; the
    placeholders of ``values`` in its values replaced by their outputs."""
    values = values or {}
    if not chart.helm_release:
        return rendered_chart(resource_name, chart, opts, values)
    if chart.oci:
        # Helm takes an OCI chart as one reference, without repository options.
        source: dict[str, Any] = {"chart": f"{chart.helm_repo}/{chart.chart}"}
    else:
        source = {"chart": chart.chart, "repository_opts": RepositoryOptsArgs(repo=chart.helm_repo)}
    return Release(
        resource_name,
        name=chart.name,
        version=chart.version,
        namespace=chart.namespace,
        create_namespace=True,
        values=bind(_plain(chart.values), values),
        atomic=True,
        timeout=timeout_seconds,
        opts=opts,
        **source,
    )


def check_charts(charts: Sequence[Chart], timeout_seconds: int) -> None:
    """Reject duplicate release names and a non-positive timeout (ValueError)."""
    if timeout_seconds <= 0:
        raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
    names = [c.name for c in charts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"charts listed twice: {duplicates}")


@dataclass(frozen=True)
class PlatformChartsArgs:
    charts: Sequence[Chart]
    """The charts to install, e.g. ``PLATFORM_CHARTS``."""
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    """Per release; an atomic release rolls back when it is not ready in time."""
    values: Values = field(default_factory=dict)
    """Placeholder -> the output that replaces it in the charts' values (Loki's bucket)."""


class PlatformCharts(pulumi.ComponentResource):
    """Helm releases of the platform charts, ordered by sync wave."""

    releases: dict[str, pulumi.Resource]
    """Chart name -> its Helm release (or client-side rendered chart)."""

    def __init__(
        self,
        name: str,
        args: PlatformChartsArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        check_charts(args.charts, args.timeout_seconds)  # before any resource exists
        super().__init__(RESOURCE_TYPE, name, None, opts)
        self.releases = {}
        previous: list[pulumi.Resource] = []
        for wave in sorted({c.sync_wave for c in args.charts}):
            current: list[pulumi.Resource] = []
            for chart in (c for c in args.charts if c.sync_wave == wave):
                self.releases[chart.name] = release(
                    f"{name}-{chart.name}",
                    chart,
                    args.timeout_seconds,
                    pulumi.ResourceOptions(parent=self, depends_on=list(previous)),
                    args.values,
                )
                current.append(self.releases[chart.name])
            previous = current
        self.register_outputs({"charts": sorted(self.releases)})
