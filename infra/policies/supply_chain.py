"""Policies over the images the environment runs and admits (ORR section 2.4).

What the model renders is checked here; what the cluster admits is policy-controller's
ClusterImagePolicy (:mod:`infra.model.admission`), checked here too, so that a rendered image and
the admission rule cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from infra.charts import POLICY_CONTROLLER, POLICY_INCLUDE_LABEL
from infra.config import EnvConfig
from infra.model.secrets import DOCKER_CONFIG_TYPE, registry_host
from infra.policies.delivery import application_errors, named
from infra.policies.manifests import find
from infra.policies.registry import Objs, pins_digests, policy, pull_secret

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# Where each kind keeps its pod template.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template", "spec"),
    "Rollout": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


class Image(NamedTuple):
    """An image reference in parts: ``repository[:tag][@digest]``."""

    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, reference: str) -> Image:
        name, _, digest = reference.partition("@")
        path, slash, last = name.rpartition("/")
        last, _, tag = last.partition(":")
        return cls(f"{path}{slash}{last}", tag or None, digest or None)


def pod_specs(objs: Objs) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(kind/name, pod spec)`` of every object that runs pods."""
    for obj in objs:
        path = POD_SPEC_PATHS.get(obj["kind"])
        if path is None:
            continue
        spec: Any = obj
        for key in path:
            spec = spec.get(key, {})
        yield f"{obj['kind']}/{obj['metadata']['name']}", spec


def images(objs: Objs) -> Iterator[tuple[str, str]]:
    """``(where, image)`` of every container of every pod template."""
    for where, spec in pod_specs(objs):
        for field in CONTAINER_LISTS:
            for container in spec.get(field, []):
                yield f"{where} {container['name']}", container["image"]


def _policies(objs: Objs) -> Objs:
    return find(objs, "ClusterImagePolicy")


# --- ORR 2.4 -------------------------------------------------------------------------------------


@policy("2.4-01", scope="everything")
def signed_images_admitted(objs: Objs, cfg: EnvConfig) -> list[str]:
    """policy-controller runs, watches the service's namespace, refuses images no policy matches,
    and one ClusterImagePolicy admits only images signed by a public key (no keyless identity,
    no static pass), enforced wherever the image is pinned by digest."""
    errors = application_errors(objs, POLICY_CONTROLLER.name)
    app = named(objs, "Application", POLICY_CONTROLLER.name)
    if app is not None:
        webhook = app["spec"]["source"]["helm"]["valuesObject"].get("webhook", {})
        if webhook.get("configData", {}).get("no-match-policy") != "deny":
            errors.append("policy-controller admits images that no policy matches")
        selector = webhook.get("namespaceSelector", {}).get("matchExpressions", [])
        if selector != [{"key": POLICY_INCLUDE_LABEL, "operator": "In", "values": ["true"]}]:
            errors.append(f"policy-controller selects namespaces by {selector}")
    ns = named(objs, "Namespace", cfg.namespace)
    if ns is None or ns["metadata"].get("labels", {}).get(POLICY_INCLUDE_LABEL) != "true":
        errors.append(f"namespace {cfg.namespace} is not watched by policy-controller")
    policies = _policies(objs)
    if len(policies) != 1:
        return [*errors, f"expected one ClusterImagePolicy, found {len(policies)}"]
    spec = policies[0]["spec"]
    authorities = spec.get("authorities", [])
    if not authorities:
        errors.append("the ClusterImagePolicy has no authority")
    for authority in authorities:
        name = authority.get("name")
        if set(authority) - {"name", "key"}:
            errors.append(f"authority {name} is not a key alone: {sorted(authority)}")
        try:
            load_pem_public_key(str(authority.get("key", {}).get("data", "")).encode())
        except ValueError:
            errors.append(f"authority {name} has no inline PEM public key")
    if cfg.image.digest is not None and spec.get("mode") != "enforce":
        errors.append(f"mode {spec.get('mode')!r} where the image is pinned by digest")
    return errors


@policy("2.4-05")
def images_from_private_registry(objs: Objs, cfg: EnvConfig) -> list[str]:
    """Every container runs the environment's own repository, and the admission policy matches
    that repository only."""
    errors = [
        f"{where} runs {image}, not from {cfg.image.repository}"
        for where, image in images(objs)
        if Image.parse(image).repository != cfg.image.repository
    ]
    for cip in _policies(objs):
        for glob in cip["spec"]["images"]:
            if Image.parse(glob["glob"]).repository != cfg.image.repository:
                errors.append(f"the admission policy matches {glob['glob']}")
    return errors


@policy("2.4-07", pins_digests)
def images_by_digest(objs: Objs, cfg: EnvConfig) -> list[str]:
    """Every container runs its image by digest alone (no tag, never latest), and the admission
    policy matches digests only.

    The cluster does not refuse a tag by itself: policy-controller resolves it to a digest and
    verifies that digest's signature. Tags are kept out by the config (staging and prod refuse
    ``image.tag``), this check, and ECR's immutable tags.
    """
    errors = []
    for where, image in images(objs):
        ref = Image.parse(image)
        if ref.tag is not None or ref.digest is None or not DIGEST.match(ref.digest):
            errors.append(f"{where} runs {image}, not by digest")
    policies = _policies(objs)
    if not policies:
        errors.append("no ClusterImagePolicy refuses an image by tag")
    for cip in policies:
        for glob in cip["spec"]["images"]:
            if not glob["glob"].endswith("@sha256:*"):
                errors.append(f"the admission policy matches {glob['glob']}, not digests")
    return errors


@policy("2.4-06", pull_secret)
def image_pull_secret(objs: Objs, cfg: EnvConfig) -> list[str]:
    """Where nodes have no registry identity, every pod pulls through a ServiceAccount that lists
    a Docker config Secret for the image's registry, made by External Secrets."""
    errors = []
    accounts = {spec.get("serviceAccountName", "default") for _, spec in pod_specs(objs)}
    for account_name in sorted(accounts):
        account = named(objs, "ServiceAccount", account_name)
        listed = [s["name"] for s in account.get("imagePullSecrets", [])] if account else []
        if not listed:
            errors.append(f"ServiceAccount {account_name} lists no imagePullSecret")
        for secret in listed:
            errors.extend(_docker_config_errors(objs, cfg, secret))
    return errors


def _docker_config_errors(objs: Objs, cfg: EnvConfig, name: str) -> list[str]:
    external = named(objs, "ExternalSecret", name)
    if external is None:
        return [f"no ExternalSecret makes the pull secret {name}"]
    template = external["spec"]["target"].get("template", {})
    if template.get("type") != DOCKER_CONFIG_TYPE:
        return [f"pull secret {name} is of type {template.get('type')!r}"]
    config = str(template.get("data", {}).get(".dockerconfigjson", ""))
    if f'"auths":{{"{registry_host(cfg)}":' not in config:
        return [f"pull secret {name} holds no credentials for {registry_host(cfg)}"]
    return []
