"""infra/model/dashboards.py: one ConfigMap per committed dashboard, found by Grafana's sidecar."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import kubernetes_validate
import pytest
from dashboard_checks import COMMITTED
from infra.charts import GRAFANA_DASHBOARD_LABEL, chart
from infra.config import ENVIRONMENTS, load
from infra.model import dashboards
from infra.model.common import labels

from cap_verifier.typed_yaml import ConfigError
from infra import artefacts

ROOT = Path(__file__).resolve().parents[2]
# kubectl's client-side apply copies the object into an annotation limited to 256 KiB.
LAST_APPLIED_LIMIT = 262144


@pytest.mark.orr("3.2-01")
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_one_config_map_per_dashboard_with_the_sidecar_label_and_the_exact_json(env: str) -> None:
    cfg = load(env)
    objects = dashboards.objects(cfg, artefacts.load())
    assert len(objects) == len(COMMITTED)
    for obj, path in zip(objects, COMMITTED, strict=True):
        meta = obj["metadata"]
        assert (obj["apiVersion"], obj["kind"]) == ("v1", "ConfigMap")
        assert meta["name"] == f"cap-verifier-dashboard-{path.stem}"
        assert meta["namespace"] == cfg.namespace
        assert meta["labels"] == {**labels(cfg), GRAFANA_DASHBOARD_LABEL: "1"}
        assert obj["data"] == {path.name: path.read_text(encoding="utf-8")}
        assert json.loads(obj["data"][path.name])["uid"]
        assert len(json.dumps(obj).encode()) < LAST_APPLIED_LIMIT
        for version in cfg.cluster.k8s_versions:
            kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.orr("3.2-01")
def test_the_label_is_the_one_the_grafana_sidecar_watches() -> None:
    sidecar = chart("kube-prometheus-stack").values["grafana"]["sidecar"]["dashboards"]
    assert sidecar["enabled"] is True
    assert (sidecar["label"], sidecar["labelValue"]) == (
        GRAFANA_DASHBOARD_LABEL,
        dashboards.SIDECAR_LABEL_VALUE,
    )
    assert sidecar["searchNamespace"] == "ALL"  # the ConfigMaps sit in the service's namespace


def test_no_dashboard_is_an_error(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "alerts", tmp_path / "alerts")
    (tmp_path / "dashboards").mkdir()
    with pytest.raises(ConfigError, match="no dashboards"):
        artefacts.load(tmp_path)
