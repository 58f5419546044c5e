"""Retention of the verification audit table (``registry.audit_retention_days``).

One prune is shared by ``cap-verifier audit prune`` (the Kubernetes CronJob of a PostgreSQL
registry) and by :class:`AuditPruner`, the service's own schedule for a SQLite registry: a
SQLite file has one writer, the service's pod, whose ReadWriteOnce volume no second pod should
open. Every prune writes one log line, ``event="audit_prune"``, with the rows it removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio

from cap_verifier.registry import Registry, RegistryError
from cap_verifier.registry.records import utc_now
from cap_verifier.settings import RegistrySettings

log = logging.getLogger("cap_verifier.retention")


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What one prune did: ``rows`` removed (a dry run: rows it would remove)."""

    rows: int
    cutoff: datetime
    dry_run: bool


def cutoff(settings: RegistrySettings, now: datetime | None = None) -> datetime:
    """Records created before this instant are past their retention."""
    return (now or utc_now()) - timedelta(days=settings.audit_retention_days)


def prune(
    registry: Registry,
    settings: RegistrySettings,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneResult:
    """Delete (or, with ``dry_run``, count) the audit records past their retention."""
    before = cutoff(settings, now)
    fields: dict[str, object] = {
        "event": "audit_prune",
        "cutoff": before.isoformat(timespec="seconds"),
        "dry_run": dry_run,
    }
    try:
        if dry_run:
            rows = registry.count_verifications_before(before)
        else:
            rows = registry.prune_verifications(before)
    except RegistryError as exc:
        log.error(
            "audit prune failed",
            extra={**fields, "outcome": "error", "reason": type(exc).__name__},
        )
        raise
    log.info("audit prune", extra={**fields, "outcome": "success", "rows": rows})
    return PruneResult(rows, before, dry_run)


class AuditPruner:
    """Prunes a SQLite registry at start-up and then every ``audit_prune_interval_hours``.

    Idle for PostgreSQL (the CronJob prunes it once for every replica) and when the interval
    is 0. With several workers each one prunes: the deletes are idempotent, and after the
    first a prune finds nothing to delete.
    """

    def __init__(self, registry: Registry, settings: RegistrySettings) -> None:
        self._registry = registry
        self._settings = settings
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self._registry.backend == "sqlite" and self._settings.audit_prune_interval_hours > 0

    async def start(self) -> None:
        if self.active:
            self._task = asyncio.create_task(self._run(), name="audit-pruner")

    async def _run(self) -> None:
        interval = self._settings.audit_prune_interval_hours * 3600
        while True:
            # A failure is logged by prune() and retried at the next interval.
            with contextlib.suppress(RegistryError):
                await anyio.to_thread.run_sync(prune, self._registry, self._settings)
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        """Cancel the schedule; a prune in progress (in its thread) is finished first."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
