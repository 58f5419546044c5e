"""The ORR policies: checks over an environment's rendered objects, each proving one checklist
line where it applies.

A policy is a function ``(objs, cfg) -> violations`` (empty: the line holds), registered with its
ORR id, where it applies (a predicate over the config) and which objects it reads: the
service's (``model(cfg, artefacts)``) or everything rendered for the environment (the platform
Applications and the Argo CD bootstrap too). Tests run every policy on every environment where
it applies and against a deliberately bad input; the ORR report reads the same registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from infra.config import DIGEST_ENVIRONMENTS, EnvConfig
from infra.model import secrets

Objs = list[dict[str, Any]]
Check = Callable[[Objs, EnvConfig], list[str]]
Applies = Callable[[EnvConfig], bool]
Scope = Literal["service", "everything"]


def everywhere(cfg: EnvConfig) -> bool:
    return True


def autoscaled(cfg: EnvConfig) -> bool:
    return cfg.scaling.hpa.enabled


def production(cfg: EnvConfig) -> bool:
    """The checklist's figures for prod (replica counts, PDB): other environments are smaller."""
    return cfg.env == "prod"


def sqlite_registry(cfg: EnvConfig) -> bool:
    return cfg.registry.kind == "sqlite"


def postgresql_registry(cfg: EnvConfig) -> bool:
    return cfg.database is not None


def mutual_tls(cfg: EnvConfig) -> bool:
    return cfg.edge.require_mtls


def canary(cfg: EnvConfig) -> bool:
    return cfg.delivery.canary.enabled


def pins_digests(cfg: EnvConfig) -> bool:
    """Staging and prod run their image by digest only; dev may run a tag."""
    return cfg.env in DIGEST_ENVIRONMENTS


def pull_secret(cfg: EnvConfig) -> bool:
    """Pulls authenticate with an imagePullSecret (not on EKS, whose node role pulls)."""
    return secrets.pulls_with_secret(cfg)


@dataclass(frozen=True)
class Policy:
    orr_id: str
    check: Check
    applies: Applies
    scope: Scope

    @property
    def name(self) -> str:
        return self.check.__name__

    def __call__(self, objs: Objs, cfg: EnvConfig) -> list[str]:
        return self.check(objs, cfg)


POLICIES: list[Policy] = []


def policy(
    orr_id: str, applies: Applies = everywhere, scope: Scope = "service"
) -> Callable[[Check], Check]:
    """Register the decorated check as proving ORR ``orr_id`` where ``applies``."""

    def register(check: Check) -> Check:
        POLICIES.append(Policy(orr_id, check, applies, scope))
        return check

    return register
