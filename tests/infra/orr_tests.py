"""Turn an ORR table (id, check, environments, bad input) into named pytest tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from infra.config import EnvConfig
from infra.model import model

from infra import gitops

Objs = list[dict[str, Any]]
Check = Callable[[Objs, EnvConfig], list[str]]
Bad = Callable[[EnvConfig], tuple[Objs, EnvConfig]]


def rendered(cfg: EnvConfig) -> Objs:
    """Every object rendered for ``cfg``: platform Applications, the model, the bootstrap."""
    return [*gitops.applications(cfg), *model(cfg), *gitops.bootstrap(cfg)]


def make_orr_test(
    item: str,
    check: Check,
    envs: tuple[str, ...],
    bad: Bad,
    objects: Callable[[EnvConfig], Objs] = model,
) -> Any:
    """A test proving ``check`` on every env of ``envs`` and refusing the ``bad`` input."""

    @pytest.mark.parametrize("env", envs)
    def test(configs: dict[str, EnvConfig], env: str) -> None:
        cfg = configs[env]
        assert check(objects(cfg), cfg) == [], f"ORR {item} fails in {env}"
        bad_objs, bad_cfg = bad(cfg)
        assert check(bad_objs, bad_cfg) != [], f"ORR {item}: the check accepts a bad input"

    test.__name__ = f"test_{check.__name__}"
    test.__doc__ = f"ORR {item}, proven on {', '.join(envs)} and against a bad input."
    return test


def orr_tests(
    table: Sequence[tuple[str, Check, tuple[str, ...], Bad]],
    objects: Callable[[EnvConfig], Objs] = model,
) -> dict[str, Any]:
    """Module-level test functions, one per row, named after the check (and so the ORR id)."""
    return {
        f"test_{check.__name__}": make_orr_test(i, check, e, b, objects) for i, check, e, b in table
    }
