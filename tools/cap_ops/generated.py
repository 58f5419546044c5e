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


END = "<!-- END generated -->"


class MissingBlock(ValueError):
    """The file has no generated block with that marker."""


def replace_block(text: str, block: str, begin: str, where: str) -> str:
    """``text`` with the lines between ``begin`` and :data:`END` replaced by ``block``; a
    document can hold several blocks, each with its own ``begin`` marker."""
    head, found_begin, rest = text.partition(begin)
    _, found_end, tail = rest.partition(END)
    if not (found_begin and found_end):
        raise MissingBlock(f"{where}: no generated block ({begin} ... {END})")
    return f"{head}{begin}\n{block}{END}{tail}"
