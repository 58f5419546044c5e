"""Write generated files, or (``--check``) report those that are not current."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path


def write_or_check(
    outputs: Mapping[str, str], directory: Path, generator: str, *, check: bool
) -> int:
    """Write each changed file of ``outputs`` into ``directory``; with ``check``, write nothing
    and return 1 with one line naming the stale files. Unchanged files are left untouched."""
    stale = []
    for name, text in outputs.items():
        path = directory / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if check:
            stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"not current, run {generator}: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0
