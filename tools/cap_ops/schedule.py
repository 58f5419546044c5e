"""Run a command once a day at a fixed UTC time: the local environment's backup schedule.

``playbooks/backup.yml -e schedule=true`` installs it as a supervisord program::

    python -m cap_ops.schedule --daily-at 02:30 --log .local/logs/backup-schedule.jsonl -- \\
        ansible-playbook -i inventories/local/inventory.py backup.yml -e ...

Each run appends one JSON line to ``--log`` (start, end, exit code, seconds); the command's own
output goes to supervisord's log of the program. A failed run is logged and retried the next
day (the backup alerts of the clusters have no local counterpart: the log is the record).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def parse_time(text: str) -> tuple[int, int]:
    """``HH:MM`` (UTC) -> (hour, minute); ValueError with one line otherwise."""
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"--daily-at: expected HH:MM (UTC, 00:00 to 23:59), got {text!r}")
    return int(match[1]), int(match[2])


def next_run(now: datetime, hour: int, minute: int) -> datetime:
    """The first ``hour:minute`` UTC strictly after ``now``."""
    today = now.astimezone(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return today if today > now else today + timedelta(days=1)


def run_once(command: Sequence[str], log: Path) -> int:
    started = datetime.now(UTC)
    clock = time.monotonic()
    code = subprocess.run(list(command), check=False).returncode
    entry = {
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": round(time.monotonic() - clock, 1),
        "exit_code": code,
        "command": command[0],
    }
    with log.open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")
    return code


def loop(
    command: Sequence[str],
    hour: int,
    minute: int,
    log: Path,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Forever: sleep until the next run (in steps of at most a minute, so a changed system
    clock is noticed), run, repeat."""
    while True:
        due = next_run(clock(), hour, minute)
        while (left := (due - clock()).total_seconds()) > 0:
            sleep(min(left, 60.0))
        run_once(command, log)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cap_ops.schedule", description=__doc__)
    parser.add_argument("--daily-at", required=True, metavar="HH:MM")
    parser.add_argument("--log", required=True, type=Path)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        hour, minute = parse_time(args.daily_at)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not command:
        print("no command: give it after --", file=sys.stderr)
        return 2
    loop(command, hour, minute, args.log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
