"""``python -m cap_ops.image <command> [options]``: each command is a module's ``main``."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "build": "cap_ops.image.build",
    "base": "cap_ops.image.base",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m cap_ops.image {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]])
    status: int = module.main(argv[1:])
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
