"""The config values the cloud provides (role ARNs, backup destination, image repository),
by stack output name, and the placeholders that stand for them on the Pulumi path until the
resources' outputs replace them (:func:`infra.components.binding.bind`).
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from infra.cloud.outputs import CLOUD_KEYS as FILE_KEYS
from infra.config import EnvConfig

S = TypeVar("S", bound=msgspec.Struct)

CLOUD_KEYS: dict[str, str] = dict(FILE_KEYS)
"""Stack output -> the dotted config key it fills on the Pulumi path (the same keys the Argo
CD path reads from ``infra/outputs/<env>.yaml``)."""

PLACEHOLDERS: dict[str, str] = {
    "secrets_role_arn": "arn:aws:iam::000000000000:role/pulumi-output-secrets-role-arn",
    "backup_role_arn": "arn:aws:iam::000000000000:role/pulumi-output-backup-role-arn",
    "backup_destination": "s3://pulumi-output-backup-destination",
    "repository_url": "pulumi-output.invalid/repository-url",
    "logs_bucket": "pulumi-output-logs-bucket",
    "logs_role_arn": "arn:aws:iam::000000000000:role/pulumi-output-logs-role-arn",
}
"""Stack output -> a value its config key accepts and no real config holds."""


def _replace(struct: S, path: str, value: str) -> S:
    head, _, rest = path.partition(".")
    new = _replace(getattr(struct, head), rest, value) if rest else value
    return msgspec.structs.replace(struct, **{head: new})


def applicable(cfg: EnvConfig) -> list[str]:
    """The outputs whose config section ``cfg`` has (no database: no backup values; a
    single-binary Loki: no log bucket)."""
    sections = {
        "database": cfg.database is not None,
        "logging": cfg.logging.mode == "simple-scalable",
    }
    return [name for name, key in CLOUD_KEYS.items() if sections.get(key.split(".")[0], True)]


def with_placeholders(cfg: EnvConfig) -> EnvConfig:
    """``cfg`` with a placeholder for every value the cloud provides."""
    for name in applicable(cfg):
        cfg = _replace(cfg, CLOUD_KEYS[name], PLACEHOLDERS[name])
    return cfg
