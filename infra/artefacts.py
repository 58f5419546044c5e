"""The committed files that the model embeds, read once at the edge.

``model(cfg, artefacts)`` does no file I/O: the callers at the edge (``make render``, the Pulumi
entry point, the test fixtures) read the rule files, the Alertmanager routing, the dashboards,
the monitoring table and the image-signing public key here, into one frozen :class:`Artefacts`
value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from cap_ops import monitoring
from cap_ops.monitoring import Monitoring
from cap_verifier.typed_yaml import ConfigError, read_yaml
from infra.charts import BLACKBOX_MODULE
from infra.config import REPO_ROOT

RULES_GLOB = "*.rules.yaml"
DASHBOARDS_GLOB = "*.json"
COSIGN_PUBLIC_KEY = "keys/cosign.pub"
"""The public half of the key that signs the service's images (``make sign``), relative to the
repository; the admission policy trusts it and nothing else."""


@dataclass(frozen=True)
class Artefacts:
    rule_groups: tuple[Mapping[str, Any], ...]
    """The ``groups`` of every ``alerts/*.rules.yaml``, in file-name order."""
    alertmanager: Mapping[str, Any]
    """``alerts/alertmanager.yml``: routing tree, inhibit rules, receivers."""
    dashboards: tuple[tuple[str, str], ...]
    """``(file name, JSON text)`` of every ``dashboards/*.json``, in file-name order."""
    monitoring: Monitoring
    """The monitoring table (``alerts/config.yaml``): the canary's limits come from it."""
    cosign_public_key: str
    """The PEM text of :data:`COSIGN_PUBLIC_KEY`, as committed."""


def _rule_groups(directory: Path) -> tuple[Mapping[str, Any], ...]:
    groups: list[Mapping[str, Any]] = []
    for path in sorted(directory.glob(RULES_GLOB)):
        document = read_yaml(path, path.name)
        if not isinstance(document, dict) or not isinstance(document.get("groups"), list):
            raise ConfigError(f"{path.name}: groups: expected a list")
        groups.extend(document["groups"])
    if not groups:
        raise ConfigError(f"{directory}: no rule groups in {RULES_GLOB}")
    return tuple(groups)


def _dashboards(directory: Path) -> tuple[tuple[str, str], ...]:
    found = []
    for path in sorted(directory.glob(DASHBOARDS_GLOB)):
        text = path.read_text(encoding="utf-8")
        try:
            json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path.name}: not valid JSON: {exc}") from None
        found.append((path.name, text))
    if not found:
        raise ConfigError(f"{directory}: no dashboards ({DASHBOARDS_GLOB})")
    return tuple(found)


def _public_key(path: Path) -> str:
    """The PEM public key at ``path``; anything else (a private key too) is a ConfigError."""
    try:
        text = path.read_text(encoding="ascii")
        load_pem_public_key(text.encode("ascii"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{COSIGN_PUBLIC_KEY}: not a PEM public key: {exc}") from None
    return text


def load(root: Path = REPO_ROOT) -> Artefacts:
    """Read every artefact under ``root``; a missing or broken one is a one-line ConfigError."""
    alerts = root / "alerts"
    alertmanager = read_yaml(alerts / "alertmanager.yml", "alertmanager.yml")
    if not isinstance(alertmanager, dict):
        raise ConfigError("alertmanager.yml: expected a mapping")
    table = monitoring.load(alerts / "config.yaml")
    if table.probe.module != BLACKBOX_MODULE:
        raise ConfigError(
            f"alerts/config.yaml: probe.module: {table.probe.module!r} is not a module of the"
            f" blackbox exporter chart ({BLACKBOX_MODULE!r}, infra/charts.py)"
        )
    return Artefacts(
        rule_groups=_rule_groups(alerts),
        alertmanager=alertmanager,
        dashboards=_dashboards(root / "dashboards"),
        monitoring=table,
        cosign_public_key=_public_key(root / COSIGN_PUBLIC_KEY),
    )
