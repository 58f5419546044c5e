"""Group commit of verification audit records.

Every /verify waits until its audit record is committed (no verification goes unrecorded),
but records of concurrent requests share one transaction: under load the cost of a commit
is paid once per batch instead of once per request.
"""

from __future__ import annotations

import asyncio

import anyio

from cap_verifier.registry import AuditRecord, Registry

MAX_BATCH = 256

_Item = tuple[AuditRecord, "asyncio.Future[None]"]


class AuditWriter:
    """Queues records; one task writes whatever has queued up, in one transaction."""

    def __init__(self, registry: Registry, max_batch: int = MAX_BATCH) -> None:
        self._registry = registry
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Item | None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def record(self, record: AuditRecord) -> None:
        """Return once ``record`` is committed; raise what the registry raised."""
        if self._queue is None:  # not started (direct use): write it alone
            await anyio.to_thread.run_sync(self._registry.record_verifications, [record])
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((record, done))
        await done

    async def _run(self) -> None:
        """Write batches until the ``None`` that ``stop`` queues."""
        assert self._queue is not None
        stopping = False
        while not stopping:
            first = await self._queue.get()
            batch: list[_Item] = [] if first is None else [first]
            stopping = first is None
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[_Item]) -> None:
        try:
            await anyio.to_thread.run_sync(
                self._registry.record_verifications, [record for record, _ in batch]
            )
        except Exception as exc:  # handed to every waiting request
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
        else:
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def stop(self) -> None:
        """Write everything queued so far, then end the writer task."""
        if self._queue is not None and self._task is not None:
            self._queue.put_nowait(None)
            await self._task
        self._queue, self._task = None, None
