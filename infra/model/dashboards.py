"""Grafana dashboards: one ConfigMap per committed ``dashboards/*.json``.

Grafana's dashboard sidecar (kube-prometheus-stack, :data:`infra.charts.GRAFANA_DASHBOARD_LABEL`
with value ``"1"``, every namespace) loads every ConfigMap carrying the label. The JSON is the
committed file byte for byte: ``dashboards/generate.py`` writes it, and its ``--check`` keeps it
current.
"""

from __future__ import annotations

from infra.artefacts import Artefacts
from infra.charts import GRAFANA_DASHBOARD_LABEL
from infra.config import EnvConfig
from infra.model.common import APP, Manifest, metadata

SIDECAR_LABEL_VALUE = "1"  # the kube-prometheus-stack values set sidecar.dashboards.labelValue


def config_map_name(file_name: str) -> str:
    """``verifier.json`` -> ``cap-verifier-dashboard-verifier``."""
    return f"{APP}-dashboard-{file_name.removesuffix('.json')}"


def config_map(cfg: EnvConfig, file_name: str, text: str) -> Manifest:
    meta = metadata(cfg, config_map_name(file_name))
    meta["labels"] = {**meta["labels"], GRAFANA_DASHBOARD_LABEL: SIDECAR_LABEL_VALUE}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {file_name: text}}


def objects(cfg: EnvConfig, artefacts: Artefacts) -> list[Manifest]:
    """One ConfigMap per dashboard, in file-name order."""
    return [config_map(cfg, name, text) for name, text in artefacts.dashboards]
