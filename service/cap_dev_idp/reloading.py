"""A value loaded from a file and reloaded when the file changes (inode, mtime or size).

A file that no longer loads is logged and the last good value keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from cap_verifier.typed_yaml import ConfigError

T = TypeVar("T")
_log = logging.getLogger("cap_dev_idp")


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Reloading(Generic[T]):
    """``current()`` returns ``load()``'s value, loading again after ``watched`` changed."""

    def __init__(self, watched: Path, load: Callable[[], T], what: str) -> None:
        self._watched = watched
        self._load = load
        self._what = what
        self._lock = threading.Lock()
        self._stamp = file_stamp(watched)
        self._value = load()

    def current(self) -> T:
        self.refresh()
        return self._value

    def refresh(self, force: bool = False) -> bool:
        """Reload if the file changed (or ``force``); True when a new value was loaded."""
        stamp = file_stamp(self._watched)
        if stamp == self._stamp and not force:
            return False
        with self._lock:
            if stamp == self._stamp and not force:
                return False
            self._stamp = stamp
            try:
                self._value = self._load()
            except ConfigError as exc:
                _log.error("%s not reloaded, keeping the last good one: %s", self._what, exc)
                return False
            return True
