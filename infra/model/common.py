"""Names, labels and metadata shared by every object."""

from __future__ import annotations

from typing import Any

from infra.config import EnvConfig

APP = "cap-verifier"
PART_OF = "cap-verifier-ops"
PORT = 8080
PORT_NAME = "http"
CONFIG_DIR = "/etc/cap-verifier"
CONFIG_FILE = "config.yaml"
UID = 1000

Manifest = dict[str, Any]


def selector_labels(cfg: EnvConfig) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/instance": f"{APP}-{cfg.env}"}


def labels(cfg: EnvConfig) -> dict[str, str]:
    return {
        **selector_labels(cfg),
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/version": cfg.app_version,
    }


def metadata(cfg: EnvConfig, name: str, *, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespaced:
        meta["namespace"] = cfg.namespace
    meta["labels"] = labels(cfg)
    return meta
