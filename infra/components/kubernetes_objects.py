"""``KubernetesObjects``: every manifest of a list registered as a typed Pulumi resource.

Built-in kinds map to their ``pulumi_kubernetes`` class (:data:`RESOURCE_CLASSES`); kinds of any
other API group are custom resources (``apiextensions.CustomResource``). Objects are created in
the order Argo CD applies them: by sync wave, and within a wave namespaces and CRDs before the
rest. Each step ``depends_on`` the whole previous step, so custom resources wait for their CRDs
and controllers and the workload waits for its Secrets and ConfigMaps.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.components.binding import Values, bind
from infra.model import WAVE_ANNOTATION
from infra.model.common import BUILTIN_GROUPS, api_group

Manifest = Mapping[str, Any]

RESOURCE_TYPE = "capverifier:k8s:KubernetesObjects"


# (apiVersion, kind) -> typed resource class, for the built-in kinds the model may contain.
RESOURCE_CLASSES: Mapping[tuple[str, str], type[pulumi.CustomResource]] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ResourceQuota"): k8s.core.v1.ResourceQuota,
    ("v1", "LimitRange"): k8s.core.v1.LimitRange,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "PersistentVolumeClaim"): k8s.core.v1.PersistentVolumeClaim,
    ("v1", "Service"): k8s.core.v1.Service,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("apps/v1", "StatefulSet"): k8s.apps.v1.StatefulSet,
    ("batch/v1", "Job"): k8s.batch.v1.Job,
    ("batch/v1", "CronJob"): k8s.batch.v1.CronJob,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): k8s.rbac.v1.ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): k8s.rbac.v1.ClusterRoleBinding,
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
    ): k8s.apiextensions.v1.CustomResourceDefinition,
}

# Created first within a wave, like Argo CD's kind order: what other objects live in or need.
FIRST_KINDS = frozenset({"Namespace", "CustomResourceDefinition"})

# The Python CustomResource class takes these top-level fields and no others.
CUSTOM_RESOURCE_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec"})


def is_custom(api_version: str) -> bool:
    """A CRD kind: its group is not one the API server serves itself."""
    return api_group(api_version) not in BUILTIN_GROUPS


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _fields(cls: type[pulumi.CustomResource]) -> frozenset[str]:
    """The keyword arguments of a typed class, from its generated ``<Kind>InitArgs``."""
    init_args = getattr(importlib.import_module(cls.__module__), f"{cls.__name__}InitArgs")
    return frozenset(inspect.signature(init_args.__init__).parameters) - {"self", "__self__"}


@dataclass(frozen=True)
class Planned:
    """One manifest, checked: where it goes and how it is registered."""

    key: str
    resource_name: str
    step: tuple[int, int]
    manifest: Manifest
    cls: type[pulumi.CustomResource] | None  # None: a CustomResource


def _wave(where: str, metadata: Mapping[str, Any]) -> int:
    annotations = metadata.get("annotations") or {}
    raw = annotations.get(WAVE_ANNOTATION, "0")
    if not isinstance(raw, str) or not re.fullmatch(r"-?[0-9]+", raw):
        raise ValueError(f"{where}: {WAVE_ANNOTATION} must be an integer string, got {raw!r}")
    return int(raw)


def plan(name: str, manifests: Sequence[Manifest]) -> list[Planned]:
    """Check every manifest and name its resource; raises ValueError on the first bad one."""
    planned: list[Planned] = []
    seen: set[str] = set()
    for index, manifest in enumerate(manifests):
        api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
        metadata = manifest.get("metadata")
        if not isinstance(api_version, str) or not isinstance(kind, str) or not kind:
            raise ValueError(f"manifest #{index}: apiVersion and kind must be strings")
        if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str):
            raise ValueError(f"{kind} (manifest #{index}): metadata.name must be a string")
        namespace = metadata.get("namespace")
        where = f"{api_version} {kind} {namespace + '/' if namespace else ''}{metadata['name']}"
        key = f"{api_version}/{kind}/{namespace or ''}/{metadata['name']}"
        if key in seen:
            raise ValueError(f"{where}: listed twice")
        seen.add(key)
        cls: type[pulumi.CustomResource] | None = None
        if is_custom(api_version):
            extra = sorted(set(manifest) - CUSTOM_RESOURCE_FIELDS)
            if extra:
                raise ValueError(
                    f"{where}: a custom resource takes only metadata and spec: {extra}"
                )
        else:
            found = RESOURCE_CLASSES.get((api_version, kind))
            if found is None:
                raise ValueError(f"{where}: no resource class for built-in kind {kind}")
            unknown = sorted(k for k in manifest if _snake(k) not in _fields(found))
            if unknown:
                raise ValueError(f"{where}: not fields of {found.__name__}: {unknown}")
            cls = found
        scope = f"{namespace}/" if namespace else ""
        planned.append(
            Planned(
                key=key,
                resource_name=f"{name}-{kind.lower()}-{scope}{metadata['name']}",
                step=(_wave(where, metadata), 0 if kind in FIRST_KINDS else 1),
                manifest=copy.deepcopy(dict(manifest)),
                cls=cls,
            )
        )
    return planned


@dataclass(frozen=True)
class KubernetesObjectsArgs:
    manifests: Sequence[Manifest]
    """Plain Kubernetes manifests (camelCase fields), e.g. ``model(cfg)``."""
    after: Sequence[pulumi.Resource] = ()
    """Resources the first step waits for (e.g. the platform charts); no data edge."""
    values: Values = field(default_factory=dict)
    """Placeholders in the manifests -> the outputs that replace them (:mod:`.binding`)."""


class KubernetesObjects(pulumi.ComponentResource):
    """Every manifest as a resource, ordered by sync wave."""

    objects: dict[str, pulumi.CustomResource]
    """``apiVersion/kind/namespace/name`` -> resource, in manifest order."""
    steps: list[list[pulumi.CustomResource]]
    """The creation steps in order; each resource depends on the whole previous step."""
    urns: pulumi.Output[dict[str, str]]

    def __init__(
        self,
        name: str,
        args: KubernetesObjectsArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        planned = plan(name, args.manifests)  # before any resource exists
        super().__init__(RESOURCE_TYPE, name, None, opts)
        self.objects = {}
        self.steps = []
        self._values = args.values
        previous: Sequence[pulumi.Resource] = list(args.after)
        for step in sorted({p.step for p in planned}):
            created = [self._register(p, previous) for p in planned if p.step == step]
            self.steps.append(created)
            previous = created
        self.urns = pulumi.Output.all(
            **{key: resource.urn for key, resource in self.objects.items()}
        )
        self.register_outputs({"urns": self.urns})

    def _register(
        self, planned: Planned, depends_on: Sequence[pulumi.Resource]
    ) -> pulumi.CustomResource:
        opts = pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))
        manifest = bind(planned.manifest, self._values)
        resource: pulumi.CustomResource
        if planned.cls is None:
            resource = k8s.apiextensions.CustomResource(
                planned.resource_name,
                api_version=manifest["apiVersion"],
                kind=manifest["kind"],
                metadata=manifest["metadata"],
                spec=manifest.get("spec"),
                opts=opts,
            )
        else:
            fields = {_snake(k): v for k, v in manifest.items()}
            resource = planned.cls(planned.resource_name, opts=opts, **fields)
        self.objects[planned.key] = resource
        return resource
