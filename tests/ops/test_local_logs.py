"""`make logs` (cap_ops.logs) and the rotation of the local logs.

The reader is tested on lines in each program's real format; the rotation on a real supervisord
with the section `make up` writes for every program, at a small size limit: every line a program
wrote is found again, once, in order, across the rotated files.
"""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cap_ops import logs
from cap_ops.localenv.configs import LOG_ROTATION, LogRotation, program_section
from cap_ops.localenv.layout import Layout, Ports
from cap_ops.poll import wait_until

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
VERIFIER = (
    '{"timestamp": "2026-11-30T11:59:00.100+00:00", "level": "INFO", "logger": '
    '"cap_verifier.access", "message": "request", "request_id": "req-aaaaaaaa", "pid": 1, '
    '"method": "POST", "endpoint": "/verify", "status": 200, "duration_ms": 3.2}'
)
IDP = (
    '{"timestamp": "2026-11-30T11:58:59.900+00:00", "level": "INFO", "logger": '
    '"cap_dev_idp.app", "message": "token issued", "request_id": "req-aaaaaaaa", "pid": 2}'
)
PROMETHEUS = (
    '{"caller":"main.go:1","level":"error","msg":"scrape failed","ts":"2026-11-30T11:51:00.000Z"}'
)
SUPERVISORD = "2026-11-30 11:40:00,250 WARN exited: cap-verifier (exit status 1; not expected)"


def _write(folder: Path, name: str, *lines: str) -> None:
    (folder / name).write_text("".join(f"{line}\n" for line in lines))


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    _write(tmp_path, "cap-verifier.log", VERIFIER)
    _write(tmp_path, "cap-dev-idp.log", IDP)
    _write(tmp_path, "prometheus.log", PROMETHEUS)
    _write(tmp_path, "supervisord.log", SUPERVISORD)
    return tmp_path


def test_every_programs_format_is_read_and_ordered_in_time(logs_dir: Path) -> None:
    lines = logs.read_all(logs_dir)
    assert [(line.program, line.level) for line in lines] == [
        ("supervisord", "WARNING"),
        ("prometheus", "ERROR"),
        ("cap-dev-idp", "INFO"),
        ("cap-verifier", "INFO"),
    ]
    assert lines[1].message == "scrape failed"


def test_a_request_id_selects_its_lines_across_programs(logs_dir: Path) -> None:
    selection = logs.Selection.parse("req-aaaaaaaa", None, None, NOW)
    found = logs.select(logs.read_all(logs_dir), selection)
    assert [line.program for line in found] == ["cap-dev-idp", "cap-verifier"]
    other = logs.Selection.parse("req-b", None, None, NOW)
    assert logs.select(logs.read_all(logs_dir), other) == []


def test_level_and_age_select_the_recent_errors(logs_dir: Path) -> None:
    lines = logs.read_all(logs_dir)
    recent_errors = logs.select(lines, logs.Selection.parse(None, "ERROR", "10m", NOW))
    assert [line.message for line in recent_errors] == ["scrape failed"]
    warnings = logs.select(lines, logs.Selection.parse(None, "warning", "30m", NOW))
    assert [line.program for line in warnings] == ["supervisord", "prometheus"]


@pytest.mark.parametrize(
    ("level", "since", "problem"),
    [("LOUD", None, "LEVEL=LOUD: not one of"), (None, "ten minutes", "SINCE=ten minutes: not a")],
)
def test_a_bad_selection_is_one_line(level: str | None, since: str | None, problem: str) -> None:
    with pytest.raises(logs.LogQueryError, match=problem) as caught:
        logs.Selection.parse(None, level, since, NOW)
    assert "\n" not in str(caught.value)


def test_the_command_says_what_was_wrong_and_exits_non_zero(
    logs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert logs.main(["--dir", str(logs_dir), "--since", "soon"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert logs.main(["--dir", str(logs_dir / "missing")]) == 2
    assert "make up" in capsys.readouterr().err
    assert logs.main(["--dir", str(logs_dir), "--request-id", "req-none"]) == 1
    assert logs.main(["--dir", str(logs_dir), "--request-id", "req-aaaaaaaa", "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["program"] for line in printed] == ["cap-dev-idp", "cap-verifier"]


def test_rotated_files_are_read_oldest_first(tmp_path: Path) -> None:
    for n, name in enumerate(("x.log.2", "x.log.1", "x.log")):
        _write(tmp_path, name, json.dumps({"ts": "2026-11-30T11:00:00Z", "msg": str(n)}))
    assert [line.message for line in logs.read_all(tmp_path)] == ["0", "1", "2"]


def test_local_logs_are_rotated_by_size_and_bounded() -> None:
    assert 1024 * 1024 <= LOG_ROTATION.max_bytes <= 100 * 1024 * 1024
    assert 1 <= LOG_ROTATION.backups <= 10


# --- rotation on a real supervisord ---------------------------------------------------------------

LINES = 20_000
WRITER = (
    "import json, sys\n"
    f"for n in range({LINES}):\n"
    "    print(json.dumps({'timestamp': '2026-11-30T12:00:00+00:00', 'level': 'INFO',"
    " 'message': 'line', 'request_id': None, 'seq': n, 'pad': 'x' * 40}), flush=True)\n"
)


def _supervisord_conf(tmp_path: Path, rotation: LogRotation) -> Path:
    layout = Layout(root=tmp_path, ports=Ports(), service_user=None)
    writer = tmp_path / "writer.py"
    writer.write_text(WRITER)
    section = program_section(layout, [sys.executable, str(writer)], 10, rotation=rotation)
    section.update(autostart="true", autorestart="false", startsecs="0", directory=str(tmp_path))
    section["stdout_logfile"] = str(tmp_path / "writer.log")
    parser = configparser.ConfigParser(interpolation=None)
    parser["unix_http_server"] = {"file": str(tmp_path / "supervisor.sock"), "chmod": "0700"}
    parser["supervisord"] = {
        "logfile": str(tmp_path / "supervisord.log"),
        "pidfile": str(tmp_path / "supervisord.pid"),
        "nodaemon": "true",
        "silent": "true",
    }
    parser["program:writer"] = section
    conf = tmp_path / "supervisord.conf"
    with conf.open("w") as out:
        parser.write(out)
    return conf


def _seqs(tmp_path: Path) -> list[int]:
    files = logs.program_files(tmp_path).get("writer", [])
    return [int(line.fields["seq"]) for line in logs.read_program("writer", files)]


@pytest.mark.parametrize(
    "rotation",
    [LogRotation(max_bytes=64 * 1024, backups=100), LogRotation(max_bytes=64 * 1024, backups=3)],
    ids=["every-file-kept", "oldest-dropped"],
)
def test_rotation_loses_no_line(tmp_path: Path, rotation: LogRotation) -> None:
    """supervisord rotates while the program writes: the files kept hold the newest lines, each
    once, whole and in order, with no gap; with enough backups, every line written."""
    conf = _supervisord_conf(tmp_path, rotation)
    supervisord = Path(sys.executable).parent / "supervisord"
    process = subprocess.Popen([str(supervisord), "-c", str(conf)])
    try:
        log = tmp_path / "supervisord.log"
        wait_until(lambda: "exited: writer" in log.read_text(), 60, "the writer", ignore=(OSError,))
    finally:
        process.terminate()
        process.wait(timeout=30)
    files = logs.program_files(tmp_path)["writer"]
    assert 3 < len(files) <= rotation.backups + 1, files
    # Rotated when a write crossed the limit: each file at least the limit, and over it by one
    # read of the program's pipe at most (the pipe buffer, 64 KiB).
    sizes = [path.stat().st_size for path in files[:-1]]
    assert all(rotation.max_bytes <= size <= rotation.max_bytes + 65536 for size in sizes), sizes
    seqs = _seqs(tmp_path)  # every line parsed as JSON: a split line would raise here
    assert seqs == list(range(seqs[0], LINES)), "a line is missing, repeated or out of order"
    if rotation.backups >= 100:
        assert seqs[0] == 0, "every line written is kept"
    else:
        assert seqs[0] > 0, "the oldest file was dropped at the backup limit"


def test_rotation_check_notices_a_lost_line(tmp_path: Path) -> None:
    """The check above fails on a gap: one line deleted from a rotated file."""
    lines = [json.dumps({"ts": "2026-11-30T12:00:00Z", "msg": "x", "seq": n}) for n in range(10)]
    _write(tmp_path, "writer.log.1", *lines[:5])
    _write(tmp_path, "writer.log", *lines[6:])
    seqs = _seqs(tmp_path)
    assert seqs != list(range(seqs[0], 10))
