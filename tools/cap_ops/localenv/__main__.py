"""`python -m cap_ops.localenv up|down|status` (the Makefile's up, down and status)."""

from __future__ import annotations

import argparse
import sys

from cap_ops.localenv import environment, preflight, supervisor
from cap_ops.localenv.layout import Layout


def main() -> int:
    parser = argparse.ArgumentParser(prog="cap_ops.localenv", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    args = parser.parse_args()
    try:
        if args.command == "up":
            environment.up()
        elif args.command == "down":
            environment.down()
        else:
            return environment.status()
    except (preflight.Problem, supervisor.SupervisorError) as problem:
        layout = Layout.default()
        hint = ""
        if args.command == "up" and supervisor.running_pid(layout) is not None:
            hint = " (`make down` stops what was started)"
        print(f"[local] {problem}{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("[local] interrupted; `make down` stops what was started", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
