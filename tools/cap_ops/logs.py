"""``make logs``: the local environment's log lines, from every program, in time order.

Every program of ``make up`` writes under ``.local/logs/<program>.log`` (supervisord captures
its output and rotates the file by size into ``<program>.log.1``, ``.log.2``…). This reads them
all, the rotated files included, and selects by request id, level and age::

    make logs REQUEST_ID=<id>          # every line of one request, across programs
    make logs LEVEL=ERROR SINCE=10m    # what went wrong lately

The service and the dev IdP write the schema of ``cap_verifier.logs`` (``timestamp``, ``level``,
``message``, ``request_id`` …); Prometheus, Alertmanager and the blackbox exporter write Go's
(``ts``, ``level``, ``msg``); supervisord its own text lines. Each is read into one
:class:`Line`. A line no reader understands is kept, dated by the line before it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cap_ops import durations
from cap_ops.localenv.layout import Layout

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LEVEL_NAMES = {"WARN": "WARNING", "ERR": "ERROR", "FATAL": "CRITICAL", "CRIT": "CRITICAL"}
_SUPERVISORD = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(?P<ms>\d{3}) (?P<level>[A-Z]+) (?P<msg>.*)"
)
_ROTATED = re.compile(r"\.log(?:\.(?P<n>\d+))?$")


class LogQueryError(ValueError):
    """A bad selection (level, age) or an unreadable logs folder: one line for the user."""


@dataclass(frozen=True, order=True)
class Line:
    """One log line of one program, normalised for sorting and selection."""

    time: datetime
    program: str
    seq: int
    """The line's position in the program's log: keeps equal timestamps in written order."""
    level: str = field(compare=False)
    message: str = field(compare=False)
    request_id: str | None = field(compare=False)
    fields: dict[str, Any] = field(compare=False, default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"program": self.program, **self.fields}

    def as_text(self) -> str:
        rest = {
            k: v
            for k, v in self.fields.items()
            if k not in ("timestamp", "ts", "level", "message", "msg", "logger")
        }
        extra = f" {json.dumps(rest, ensure_ascii=False, default=str)}" if rest else ""
        stamp = self.time.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return f"{stamp} {self.program} {self.level} {self.message}{extra}"


def level_name(raw: object) -> str:
    """Python's level name for any program's spelling (``info``, ``warn``, ``ERROR`` …)."""
    name = str(raw).upper()
    return _LEVEL_NAMES.get(name, name)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_line(program: str, seq: int, raw: str, previous: datetime) -> Line:
    """One raw line as a :class:`Line`; an unknown format keeps the time of the line before."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict):
        time = _parse_time(data.get("timestamp", data.get("ts"))) or previous
        message = data.get("message", data.get("msg", ""))
        request_id = data.get("request_id")
        return Line(
            time=time,
            program=program,
            seq=seq,
            level=level_name(data.get("level", "INFO")),
            message=str(message),
            request_id=request_id if isinstance(request_id, str) else None,
            fields=data,
        )
    match = _SUPERVISORD.fullmatch(raw)
    if match:
        local = datetime.strptime(match["date"], "%Y-%m-%d %H:%M:%S").astimezone()
        time = (local + timedelta(milliseconds=int(match["ms"]))).astimezone(UTC)
        fields = {"level": match["level"], "message": match["msg"]}
        return Line(time, program, seq, level_name(match["level"]), match["msg"], None, fields)
    return Line(previous, program, seq, "INFO", raw, None, {"message": raw})


def program_files(logs_dir: Path) -> dict[str, list[Path]]:
    """Program → its log files, oldest first (``x.log.2``, ``x.log.1``, ``x.log``)."""
    found: dict[str, list[tuple[int, Path]]] = {}
    for path in logs_dir.iterdir():
        match = _ROTATED.search(path.name)
        if not match or not path.is_file():
            continue
        program = path.name[: match.start()]
        found.setdefault(program, []).append((int(match["n"] or 0), path))
    return {name: [p for _, p in sorted(files, reverse=True)] for name, files in found.items()}


def read_program(program: str, files: Sequence[Path]) -> Iterator[Line]:
    """Every line of one program, across its rotated files, in written order."""
    previous = datetime.min.replace(tzinfo=UTC)
    seq = 0
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as stream:
            for text in stream:
                raw = text.rstrip("\n")
                if not raw.strip():
                    continue
                line = parse_line(program, seq, raw, previous)
                previous = line.time
                seq += 1
                yield line


def read_all(logs_dir: Path) -> list[Line]:
    """Every line of every program, in time order."""
    if not logs_dir.is_dir():
        raise LogQueryError(f"{logs_dir}: no such folder (is the local environment up? make up)")
    lines: list[Line] = []
    for program, files in sorted(program_files(logs_dir).items()):
        lines.extend(read_program(program, files))
    return sorted(lines)


@dataclass(frozen=True)
class Selection:
    """What ``make logs`` was asked for; None selects everything."""

    request_id: str | None = None
    min_level: str | None = None
    since: datetime | None = None

    @classmethod
    def parse(
        cls, request_id: str | None, level: str | None, since: str | None, now: datetime
    ) -> Selection:
        """From the make variables; a bad level or age raises one line."""
        min_level = None
        if level:
            min_level = level_name(level)
            if min_level not in LEVELS:
                raise LogQueryError(f"LEVEL={level}: not one of {', '.join(LEVELS)}")
        start = None
        if since:
            try:
                start = now - timedelta(seconds=durations.seconds(since))
            except ValueError:
                raise LogQueryError(f"SINCE={since}: not a duration such as 10m or 1h30m") from None
        return cls(request_id or None, min_level, start)

    def matches(self, line: Line) -> bool:
        if self.request_id is not None and line.request_id != self.request_id:
            return False
        if self.min_level is not None:
            rank = LEVELS.index(line.level) if line.level in LEVELS else 0
            if rank < LEVELS.index(self.min_level):
                return False
        return self.since is None or line.time >= self.since


def select(lines: Iterable[Line], selection: Selection) -> list[Line]:
    return [line for line in lines if selection.matches(line)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make logs", description=__doc__.splitlines()[0])
    parser.add_argument("--request-id", default=None, help="every line of this request")
    parser.add_argument("--level", default=None, help="this level and above (ERROR, WARNING …)")
    parser.add_argument("--since", default=None, help="only the last DURATION (10m, 1h)")
    parser.add_argument("--json", action="store_true", help="JSON lines, with a program field")
    parser.add_argument("--dir", type=Path, default=Layout.default().logs, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        selection = Selection.parse(args.request_id, args.level, args.since, datetime.now(UTC))
        found = select(read_all(args.dir), selection)
    except (LogQueryError, OSError) as exc:
        print(f"make logs: {exc}", file=sys.stderr)
        return 2
    for line in found:
        text = json.dumps(line.as_json(), ensure_ascii=False) if args.json else line.as_text()
        print(text)
    if not found:
        print("make logs: no line matches", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
