"""The Kubernetes objects git holds for a cluster environment (``deploy/<env>/``), JSON merge
patches onto them, and their schema validation: core kinds with ``kubernetes_validate`` (strict),
custom resources against the pinned CRD schemas of ``infra/crds.lock`` (``make crds``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
from ruamel.yaml import YAML

from support import crd_schemas

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BOOTSTRAP = "bootstrap"

Obj = dict[str, Any]
Key = tuple[str, str, str, str]
"""apiVersion, kind, namespace ("" when cluster-scoped), name."""


def key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return (
        str(obj.get("apiVersion", "")),
        str(obj.get("kind", "")),
        str(meta.get("namespace") or ""),
        str(meta.get("name", "")),
    )


def describe(k: Key) -> str:
    api_version, kind, namespace, name = k
    return f"{kind} {namespace + '/' if namespace else ''}{name} ({api_version})"


@dataclass(frozen=True)
class GitObject:
    path: Path
    body: Obj

    @property
    def relpath(self) -> str:
        return self.path.relative_to(DEPLOY).as_posix()


def deploy_objects(env: str) -> dict[Key, GitObject]:
    """Every object of ``deploy/<env>/`` and its ``bootstrap/``, by identity."""
    yaml = YAML(typ="safe", pure=True)
    found: dict[Key, GitObject] = {}
    for path in sorted((DEPLOY / env).rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.load_all(path.read_text(encoding="utf-8")):
            if not doc:
                continue
            k = key(doc)
            assert k not in found, f"{describe(k)} twice: {found[k].path} and {path}"
            found[k] = GitObject(path, doc)
    return found


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` deletes, anything else
    (lists included) replaces. Neither argument is modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def is_custom(obj: Obj) -> bool:
    """A custom resource: its API group is a domain name (core groups have no dot)."""
    return "." in str(obj.get("apiVersion", "")).rpartition("/")[0]


def schema_problems(obj: Obj, k8s_versions: Iterable[str]) -> list[str]:
    """Strict schema violations of ``obj``; a kind without a schema is a problem, never skipped.

    Custom resources: the served version of their pinned CRD. Core kinds: ``kubernetes_validate``
    at every Kubernetes version given (the environment's oldest and newest).
    """
    if is_custom(obj):
        try:
            return crd_schemas.errors(obj)
        except crd_schemas.NoSchemaError as exc:
            return [f"no schema: {exc}"]
    problems = []
    for version in k8s_versions:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path) or "<root>"
            problems.append(f"@{version} {where}: {exc.message}")
        except (kubernetes_validate.SchemaNotFoundError, FileNotFoundError) as exc:
            problems.append(f"@{version}: no schema for {obj.get('kind')}: {exc}")
    return problems


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def is_rfc3339(value: object) -> bool:
    """An RFC 3339 date-time (what Kubernetes' ``format: date-time`` accepts)."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
