"""Third-party platform software, described once as chart specs.

Each :class:`Chart` becomes a Helm release on the Pulumi path (``helm.v3.Release``) and an Argo CD
``Application`` on the GitOps path. Versions are pinned; ``app_version`` is the upstream release
whose CRDs are pinned in ``infra/crds.lock``, so the objects validated offline are the objects
these charts install.

Chart versions were matched to those app versions from published chart metadata (no Helm
repository is reachable from the build machines); confirm with ``helm show chart`` when bumping.

Values are static (:attr:`Chart.values`) but for what differs per environment: a chart's
``values_for(cfg)`` is merged over them (:func:`for_env`), e.g. Loki's mode and storage.

Sync waves order the GitOps path: CRDs first, then the controllers, then the custom resources,
then the service (see :data:`WAVE_CRDS` … :data:`WAVE_SERVICE`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cap_ops import log_store
from infra.config import EnvConfig
from infra.logs import alloy, loki, notifications

# Argo CD sync waves, in the order the root application applies them.
WAVE_CRDS = -3
WAVE_CONTROLLERS = -2
WAVE_PLATFORM_RESOURCES = -1
WAVE_NAMESPACE = 0
WAVE_CUSTOM_RESOURCES = 1
WAVE_SERVICE = 2


@dataclass(frozen=True)
class Chart:
    """One Helm chart at a pinned version, with the values both paths install it with."""

    name: str
    namespace: str
    repo_url: str
    chart: str
    version: str
    app_version: str
    sync_wave: int
    values: Mapping[str, Any] = field(default_factory=dict)
    server_side_apply: bool = False
    oci: bool = False
    helm_release: bool = True
    """False for CRD bundles too big for Helm's release Secret (1 MiB, which stores the chart's
    templates): the Pulumi path then renders the chart client-side (``helm.v4.Chart``); Argo CD
    always renders client-side."""
    values_for: Callable[[EnvConfig], Mapping[str, Any]] | None = None
    """The values of one environment, merged over :attr:`values` (:func:`for_env`)."""

    @property
    def helm_repo(self) -> str:
        """The repository as Helm wants it: ``oci://`` for OCI registries."""
        return f"oci://{self.repo_url}" if self.oci else self.repo_url


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, mappings merged key by key (as Helm merges values)."""
    result = dict(base)
    for key, value in override.items():
        below = result.get(key)
        if isinstance(below, Mapping) and isinstance(value, Mapping):
            result[key] = merged(below, value)
        else:
            result[key] = value
    return result


def for_env(chart: Chart, cfg: EnvConfig) -> Chart:
    """``chart`` with the values of ``cfg``'s environment (itself when it has none)."""
    if chart.values_for is None:
        return chart
    return replace(chart, values=merged(chart.values, chart.values_for(cfg)), values_for=None)


# The Gateway API route plugin lets Argo Rollouts shift exact traffic weights on the HTTPRoute.
ROLLOUTS_GATEWAY_PLUGIN = "argoproj-labs/gatewayAPI"
ROLLOUTS_GATEWAY_PLUGIN_VERSION = "v0.17.0"
ROLLOUTS_GATEWAY_PLUGIN_SHA256 = "1904ca787d33107c140521899d61fff030ee75d99908bd175fca5a4647759061"
ROLLOUTS_GATEWAY_PLUGIN_URL = (
    "https://github.com/argoproj-labs/rollouts-plugin-trafficrouter-gatewayapi/releases/download/"
    f"{ROLLOUTS_GATEWAY_PLUGIN_VERSION}/gatewayapi-plugin-linux-amd64"
)

# Grafana's dashboard sidecar loads every ConfigMap carrying this label.
GRAFANA_DASHBOARD_LABEL = "grafana_dashboard"

# Argo CD waits for a child Application to be Healthy before the next wave only with this check.
ARGOCD_APPLICATION_HEALTH = """hs = {}
hs.status = "Progressing"
hs.message = ""
if obj.status ~= nil and obj.status.health ~= nil then
  hs.status = obj.status.health.status
  if obj.status.health.message ~= nil then
    hs.message = obj.status.health.message
  end
end
return hs
"""

ARGOCD = Chart(
    name="argo-cd",
    namespace="argocd",
    repo_url="https://argoproj.github.io/argo-helm",
    chart="argo-cd",
    version="10.4.0",
    app_version="v3.5.1",
    sync_wave=WAVE_CONTROLLERS,
    server_side_apply=True,
    values={
        "crds": {"install": True, "keep": True},
        "configs": {
            "cm": {
                "resource.customizations.health.argoproj.io_Application": (
                    ARGOCD_APPLICATION_HEALTH
                ),
            },
            "params": {"server.insecure": False},
        },
        "dex": {"enabled": False},
    },
    # Sync and health events of every Application, recorded in Loki (their environment named).
    values_for=lambda cfg: {"notifications": notifications.values(cfg)},
)

ENVOY_GATEWAY = Chart(
    name="envoy-gateway",
    namespace="envoy-gateway-system",
    repo_url="docker.io/envoyproxy",
    chart="gateway-helm",
    version="v1.9.0",
    app_version="v1.9.0",
    sync_wave=WAVE_CONTROLLERS,
    oci=True,
    # The CRDs (standard channel) come from gateway-crds at the earlier wave.
    values={"crds": {"enabled": False}},
)

CERT_MANAGER = Chart(
    name="cert-manager",
    namespace="cert-manager",
    repo_url="https://charts.jetstack.io",
    chart="cert-manager",
    version="v1.21.1",
    app_version="v1.21.1",
    sync_wave=WAVE_CONTROLLERS,
    server_side_apply=True,
    values={
        "crds": {"enabled": True, "keep": True},
        # HTTP-01 through the Gateway needs cert-manager's Gateway API support.
        "config": {
            "apiVersion": "controller.config.cert-manager.io/v1alpha1",
            "kind": "ControllerConfiguration",
            "enableGatewayAPI": True,
        },
        "prometheus": {"enabled": True, "servicemonitor": {"enabled": True}},
    },
)

KUBE_PROMETHEUS_STACK = Chart(
    name="kube-prometheus-stack",
    namespace="monitoring",
    repo_url="https://prometheus-community.github.io/helm-charts",
    chart="kube-prometheus-stack",
    version="88.2.0",
    app_version="v0.93.0",
    sync_wave=WAVE_CONTROLLERS,
    server_side_apply=True,
    values={
        # The CRDs come from prometheus-operator-crds at the earlier wave.
        "crds": {"enabled": False},
        "prometheus": {
            "prometheusSpec": {
                # Pick up ServiceMonitors and PrometheusRules from every namespace.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "probeSelectorNilUsesHelmValues": False,
                "retention": "15d",
            }
        },
        "alertmanager": {
            "alertmanagerSpec": {
                # Route with the AlertmanagerConfig of this repository from any namespace.
                # Its alerts aggregate `by (job)` and carry no namespace label, so the
                # operator must not add a namespace matcher to its route.
                "alertmanagerConfigSelector": {
                    "matchLabels": {"app.kubernetes.io/part-of": "cap-verifier-ops"}
                },
                "alertmanagerConfigNamespaceSelector": {},
                "alertmanagerConfigMatcherStrategy": {"type": "None"},
            }
        },
        "grafana": {
            "additionalDataSources": [
                {
                    "name": "Loki",
                    "type": "loki",
                    "uid": log_store.DATASOURCE_UID,
                    "url": loki.GATEWAY_URL,
                    "access": "proxy",
                }
            ],
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": GRAFANA_DASHBOARD_LABEL,
                    "labelValue": "1",
                    "searchNamespace": "ALL",
                }
            },
        },
    },
)

BLACKBOX_MODULE = "https_healthz"
"""The probe module of the public endpoint (alerts/config.yaml ``probe.module`` names it; the
artefacts are refused when it names another): GET, 200 only, TLS required and verified."""
_BLACKBOX_HTTP = {
    "method": "GET",
    "valid_status_codes": [200],
    "fail_if_not_ssl": True,
    "preferred_ip_protocol": "ip4",
    "follow_redirects": False,
}
BLACKBOX_EXPORTER = Chart(
    name="prometheus-blackbox-exporter",
    namespace="monitoring",
    repo_url="https://prometheus-community.github.io/helm-charts",
    chart="prometheus-blackbox-exporter",
    version="11.17.2",
    app_version="v0.28.0",
    sync_wave=WAVE_CONTROLLERS,
    values={
        "config": {
            "modules": {
                BLACKBOX_MODULE: {"prober": "http", "timeout": "5s", "http": _BLACKBOX_HTTP},
                # ACME staging certificates (dev, staging) are in no trust store: probed
                # without verification, their expiry still measured.
                f"{BLACKBOX_MODULE}_untrusted_ca": {
                    "prober": "http",
                    "timeout": "5s",
                    "http": {**_BLACKBOX_HTTP, "tls_config": {"insecure_skip_verify": True}},
                },
            }
        },
    },
)

ARGO_ROLLOUTS = Chart(
    name="argo-rollouts",
    namespace="argo-rollouts",
    repo_url="https://argoproj.github.io/argo-helm",
    chart="argo-rollouts",
    version="2.41.1",
    app_version="v1.9.1",
    sync_wave=WAVE_CONTROLLERS,
    server_side_apply=True,
    values={
        "installCRDs": True,
        "keepCRDs": True,
        "controller": {
            "trafficRouterPlugins": [
                {
                    "name": ROLLOUTS_GATEWAY_PLUGIN,
                    "location": ROLLOUTS_GATEWAY_PLUGIN_URL,
                    "sha256": ROLLOUTS_GATEWAY_PLUGIN_SHA256,
                }
            ],
            "metrics": {"enabled": True, "serviceMonitor": {"enabled": True}},
        },
    },
)

CLOUDNATIVE_PG = Chart(
    name="cloudnative-pg",
    namespace="cnpg-system",
    repo_url="https://cloudnative-pg.github.io/charts",
    chart="cloudnative-pg",
    version="0.29.0",
    app_version="1.30.0",
    sync_wave=WAVE_CONTROLLERS,
    server_side_apply=True,
    values={"crds": {"create": True}, "monitoring": {"podMonitorEnabled": True}},
)

EXTERNAL_SECRETS = Chart(
    name="external-secrets",
    namespace="external-secrets",
    repo_url="https://charts.external-secrets.io",
    chart="external-secrets",
    version="2.9.0",
    app_version="v2.9.0",
    sync_wave=WAVE_CONTROLLERS,
    server_side_apply=True,
    values={"installCRDs": True, "serviceMonitor": {"enabled": True}},
)

METRICS_SERVER = Chart(
    name="metrics-server",
    namespace="kube-system",
    repo_url="https://kubernetes-sigs.github.io/metrics-server",
    chart="metrics-server",
    version="3.14.0",
    app_version="0.9.0",
    sync_wave=WAVE_CONTROLLERS,
)

# The admission webhook of policy-controller only sees namespaces labelled so (opt-in).
POLICY_INCLUDE_LABEL = "policy.sigstore.dev/include"
# Chart 0.10.6 is the newest in sigstore/helm-charts and ships app 0.13.1; its CRDs are the same
# as v0.15.1's (upstream's config/300-*.yaml are byte-identical from v0.13.1 to v0.15.1), so only
# the webhook's image is moved to v0.15.1. No registry is reachable here to resolve its digest:
# pin `crane digest ghcr.io/sigstore/policy-controller/policy-controller:v0.15.1` when one is.
POLICY_CONTROLLER = Chart(
    name="policy-controller",
    namespace="cosign-system",
    repo_url="https://sigstore.github.io/helm-charts",
    chart="policy-controller",
    version="0.10.6",
    app_version="v0.15.1",
    sync_wave=WAVE_CONTROLLERS,
    server_side_apply=True,
    values={
        "installCRDs": True,
        "webhook": {
            "image": {"version": "v0.15.1"},
            # An image of a labelled namespace that no ClusterImagePolicy matches is refused
            # (the controller's default, stated).
            "configData": {"no-match-policy": "deny"},
            "namespaceSelector": {
                "matchExpressions": [
                    {"key": POLICY_INCLUDE_LABEL, "operator": "In", "values": ["true"]}
                ]
            },
            "failurePolicy": "Fail",
        },
        "serviceMonitor": {"enabled": True},
    },
)

GRAFANA_HELM_REPO = "https://grafana.github.io/helm-charts"


def _logging_chart(
    name: str,
    version: str,
    app_version: str,
    *,
    values: Mapping[str, Any] | None = None,
    values_for: Callable[[EnvConfig], Mapping[str, Any]] | None = None,
) -> Chart:
    """A chart of Grafana's repository, released under its own name in the logging namespace
    with the controllers."""
    # Chart's fields in order: name, namespace, repository, chart, version, app version, wave.
    spec = Chart(
        name, loki.NAMESPACE, GRAFANA_HELM_REPO, name, version, app_version, WAVE_CONTROLLERS
    )
    return replace(spec, values=values or {}, values_for=values_for)


LOKI = _logging_chart(loki.RELEASE, "7.3.0", "3.6.12", values_for=loki.values)
ALLOY = _logging_chart("alloy", "1.11.1", "v1.18.1", values=alloy.values())

# The CRD bundles install into their controllers' namespaces.
GATEWAY_CRDS = Chart(
    name="gateway-crds",
    namespace=ENVOY_GATEWAY.namespace,
    repo_url="docker.io/envoyproxy",
    chart="gateway-crds-helm",
    version="v1.9.0",
    app_version="v1.9.0",
    sync_wave=WAVE_CRDS,
    server_side_apply=True,
    oci=True,
    # About 4 MB of CRDs in templates/ (envoyproxy/gateway#6105): never a Helm release.
    helm_release=False,
    values={
        "crds": {
            "gatewayAPI": {"enabled": True, "channel": "standard"},
            "envoyGateway": {"enabled": True},
        }
    },
)

PROMETHEUS_OPERATOR_CRDS = Chart(
    name="prometheus-operator-crds",
    namespace=KUBE_PROMETHEUS_STACK.namespace,
    repo_url="https://prometheus-community.github.io/helm-charts",
    chart="prometheus-operator-crds",
    version="31.0.0",
    app_version="v0.93.0",
    sync_wave=WAVE_CRDS,
    server_side_apply=True,
    helm_release=False,
)

PLATFORM_CHARTS: tuple[Chart, ...] = (
    GATEWAY_CRDS,
    PROMETHEUS_OPERATOR_CRDS,
    ENVOY_GATEWAY,
    CERT_MANAGER,
    KUBE_PROMETHEUS_STACK,
    BLACKBOX_EXPORTER,
    ARGO_ROLLOUTS,
    CLOUDNATIVE_PG,
    EXTERNAL_SECRETS,
    POLICY_CONTROLLER,
    METRICS_SERVER,
    LOKI,
    ALLOY,
)


def chart(name: str) -> Chart:
    """The platform chart called ``name``."""
    for spec in (*PLATFORM_CHARTS, ARGOCD):
        if spec.name == name:
            return spec
    raise KeyError(f"no platform chart {name!r}")
