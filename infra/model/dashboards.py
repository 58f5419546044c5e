"""Grafana dashboards: one ConfigMap per committed ``dashboards/*.json``.

Grafana's dashboard sidecar (kube-prometheus-stack, :data:`infra.platform.GRAFANA_DASHBOARD_LABEL`
with value ``"1"``, every namespace) loads every ConfigMap carrying the label. The JSON is the
committed file byte for byte: ``dashboards/generate.py`` writes it, and its ``--check`` keeps it
current.
"""

from __future__ import annotations

from pathlib import Path

from infra.config import REPO_ROOT, EnvConfig
from infra.model.common import APP, Manifest, metadata
from infra.platform import GRAFANA_DASHBOARD_LABEL

DASHBOARDS_DIR = REPO_ROOT / "dashboards"
DASHBOARDS_GLOB = "*.json"
SIDECAR_LABEL_VALUE = "1"  # the kube-prometheus-stack values set sidecar.dashboards.labelValue


def config_map_name(path: Path) -> str:
    """``dashboards/verifier.json`` -> ``cap-verifier-dashboard-verifier``."""
    return f"{APP}-dashboard-{path.stem}"


def config_map(cfg: EnvConfig, path: Path) -> Manifest:
    meta = metadata(cfg, config_map_name(path))
    meta["labels"] = {**meta["labels"], GRAFANA_DASHBOARD_LABEL: SIDECAR_LABEL_VALUE}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {path.name: path.read_text(encoding="utf-8")},
    }


def objects(cfg: EnvConfig, directory: Path = DASHBOARDS_DIR) -> list[Manifest]:
    """One ConfigMap per dashboard, in file-name order."""
    paths = sorted(directory.glob(DASHBOARDS_GLOB))
    if not paths:
        raise ValueError(f"{directory}: no dashboards ({DASHBOARDS_GLOB})")
    return [config_map(cfg, path) for path in paths]
