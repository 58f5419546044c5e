"""Waiting for something to become true: the one polling loop of the tooling and the tests."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.05,
    ignore: tuple[type[BaseException], ...] = (),
) -> None:
    """Poll ``predicate`` until it is true; an exception of ``ignore`` counts as "not yet".
    After ``timeout`` seconds: :class:`TimeoutError` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except ignore:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
