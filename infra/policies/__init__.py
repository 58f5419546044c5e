"""The ORR policies over the rendered objects (see :mod:`infra.policies.registry`)."""

from __future__ import annotations

from infra import gitops
from infra.artefacts import Artefacts
from infra.config import EnvConfig
from infra.model import model
from infra.policies import delivery, kubernetes, supply_chain
from infra.policies.registry import POLICIES, Objs, Policy, Scope

__all__ = [
    "POLICIES",
    "Objs",
    "Policy",
    "delivery",
    "kubernetes",
    "objects",
    "supply_chain",
    "violations",
]


def objects(scope: Scope, cfg: EnvConfig, artefacts: Artefacts) -> Objs:
    """What a policy of ``scope`` reads for ``cfg``."""
    if scope == "service":
        return model(cfg, artefacts)
    return [*gitops.applications(cfg), *model(cfg, artefacts), *gitops.bootstrap(cfg, artefacts)]


def violations(cfg: EnvConfig, artefacts: Artefacts) -> dict[Policy, list[str]]:
    """Every policy that applies to ``cfg``, with what it found wrong (empty: the line holds)."""
    return {p: p(objects(p.scope, cfg, artefacts), cfg) for p in POLICIES if p.applies(cfg)}
