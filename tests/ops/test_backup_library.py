"""`cap_ops.backup`: snapshot, verify, restore and keep backups of the registry, for real.

Real SQLite files and the real PostgreSQL server (a fresh database per test), registries built
and filled by the service's own code (migrations, ``Registry``, the domain's hashing), real
``pg_dump``/``pg_restore``. Every writer thread is bounded in rows and time; every database a
test creates is dropped by it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from psycopg import sql

from cap_ops.backup import (
    MANIFEST_NAME,
    BackupError,
    FileEntry,
    Manifest,
    RestoreReport,
    add_file,
    check_revision,
    code_revision,
    latest,
    list_backups,
    newest_good,
    partial_directory,
    prune,
    publish,
    read_manifest,
    restore,
    snapshot,
    verify_files,
    write_manifest,
)
from cap_ops.backup.checksums import file_entry
from cap_ops.backup.revisions import compare_revisions
from cap_ops.backup.timestamps import rfc3339
from cap_ops.devkit.net import free_port
from cap_ops.poll import wait_until
from cap_verifier import __version__
from cap_verifier.registry import Registry
from support.postgres import PG_ADMIN_DB, PG_HOST, PG_PORT, require_postgres
from support.registry_data import TABLES, audit, counts_of, store_policies, table_rows

NOW = datetime(2026, 11, 20, 3, 0, 0, tzinfo=UTC)
WRITER_ROWS = 300
WRITER_PAUSE_S = 0.004
WRITER_DEADLINE_S = 10.0


def one_line(err: pytest.ExceptionInfo[BackupError]) -> str:
    text = str(err.value)
    assert text, "an empty message"
    assert "\n" not in text, text
    return text


# --------------------------------------------------------------------------- fixtures


@dataclass
class SqliteRegistry:
    url: str
    path: Path
    registry: Registry


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Iterator[SqliteRegistry]:
    """A migrated, filled SQLite registry (closed at teardown)."""
    path = tmp_path / "data" / "registry.db"
    url = f"sqlite:///{path}"
    registry = Registry(url)
    registry.migrate()
    store_policies(registry, "base")
    yield SqliteRegistry(url, path, registry)
    registry.close()


@pytest.fixture
def backup_root(tmp_path: Path) -> Path:
    root = tmp_path / "backups"
    root.mkdir()
    return root


def take_snapshot(url: str, root: Path) -> tuple[Path, Manifest]:
    """A snapshot written into a partial directory and published."""
    partial = partial_directory(root)
    manifest = snapshot(url, partial)
    return publish(partial, root), manifest


def file_state(directory: Path) -> dict[str, bytes]:
    """Every file of ``directory`` with its bytes."""
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def refix_manifest(backup: Path) -> None:
    """Make the manifest match the (edited) snapshot file again, so verify_files passes."""
    manifest = read_manifest(backup)
    name = manifest.registry_file
    files = {**manifest.files, name: file_entry(backup / name)}
    write_manifest(backup, msgspec.structs.replace(manifest, files=files))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------- SQLite round trip


def test_sqlite_snapshot_then_restore_gives_back_the_snapshot_row_for_row(
    sqlite_registry: SqliteRegistry, backup_root: Path
) -> None:
    reg = sqlite_registry
    target = reg.path
    if os.geteuid() == 0:  # the service's file belongs to another user
        os.chown(target, 4242, 4243)
    os.chmod(target, 0o640)
    owner = (target.stat().st_uid, target.stat().st_gid)
    before = table_rows(reg.url)

    partial = partial_directory(backup_root)
    assert partial.name.startswith(".partial-")
    assert mode(partial) == 0o700
    manifest = snapshot(reg.url, partial)
    backup = publish(partial, backup_root)

    assert manifest.format == 1
    assert manifest.registry == "sqlite"
    assert manifest.service_version == __version__
    assert manifest.schema_revision == code_revision() == "0001"
    assert manifest.tables == counts_of(before)
    assert manifest.files == {"registry.db": file_entry(backup / "registry.db")}
    assert sorted(os.listdir(backup)) == ["manifest.json", "registry.db"]
    assert all(mode(path) == 0o600 for path in backup.iterdir())
    assert read_manifest(backup) == manifest
    with closing(sqlite3.connect(backup / "registry.db")) as snap:
        assert snap.execute("PRAGMA journal_mode").fetchone() == ("delete",)

    store_policies(reg.registry, "later", count=3)  # the registry moves on
    reg.registry.record_verification(audit("later-extra"))
    changed = table_rows(reg.url)
    assert changed != before
    reg.registry.close()  # the caller stops the service

    report = restore(backup, reg.url, now=NOW)

    assert table_rows(reg.url) == before
    assert report.registry == "sqlite"
    assert report.target == str(target)
    assert report.tables == manifest.tables
    assert report.schema_revision == "0001"
    assert report.created_at == manifest.created_at
    assert report.seconds >= 0  # reported; how long a restore takes is bench/ops.py's
    assert report.previous == str(target.with_name("registry.db.before-restore-20261120T030000Z"))
    assert table_rows(f"sqlite:///{report.previous}") == changed  # the old data is kept
    assert (target.stat().st_uid, target.stat().st_gid) == owner
    assert mode(target) == 0o640
    assert sorted(os.listdir(target.parent)) == [
        "registry.db",
        "registry.db.before-restore-20261120T030000Z",
    ]
    assert msgspec.json.decode(msgspec.json.encode(report), type=RestoreReport) == report
    reopened = Registry(reg.url)
    try:
        reopened.migrate()  # at head already
        assert reopened.count_policies() == {"v1": 2, "v2": 3, "blobs": 3}
    finally:
        reopened.close()


def test_sqlite_restore_refuses_a_registry_still_in_use(
    sqlite_registry: SqliteRegistry, backup_root: Path
) -> None:
    backup, _ = take_snapshot(sqlite_registry.url, backup_root)
    sqlite_registry.registry.ping()  # the service still holds a connection
    before = table_rows(sqlite_registry.url)
    with pytest.raises(BackupError) as err:
        restore(backup, sqlite_registry.url)
    assert "in use" in one_line(err)
    assert "stop the service first" in str(err.value)
    assert table_rows(sqlite_registry.url) == before
    assert not [name for name in os.listdir(sqlite_registry.path.parent) if "restore" in name]


class Writer(threading.Thread):
    """Appends audit records through its own ``Registry`` (another connection), paced and
    bounded: at most WRITER_ROWS rows, at most WRITER_DEADLINE_S seconds."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.written = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        registry = Registry(self.url)
        deadline = time.monotonic() + WRITER_DEADLINE_S
        try:
            for i in range(WRITER_ROWS):
                if time.monotonic() > deadline:
                    break
                registry.record_verification(audit(f"writer-{i}"))
                self.written = i + 1
                time.sleep(WRITER_PAUSE_S)
        except BaseException as exc:
            self.error = exc
        finally:
            registry.close()

    def finish(self) -> None:
        self.join(timeout=WRITER_DEADLINE_S + 5)
        assert not self.is_alive()
        assert self.error is None, self.error


def snapshot_while_writing(url: str, root: Path) -> tuple[Path, Manifest, int, int]:
    """Snapshot while a writer appends; the backup, its manifest, the audit rows before and
    after the writer ran."""
    initial = counts_of(table_rows(url))["verifications"]
    writer = Writer(url)
    writer.start()
    try:
        wait_until(lambda: writer.written >= 40, 10, "the writer's first rows")
        backup, manifest = take_snapshot(url, root)
        written_at_snapshot_end = writer.written
    finally:
        writer.finish()
    assert written_at_snapshot_end < WRITER_ROWS, "the writer was done before the snapshot ended"
    return backup, manifest, initial, initial + writer.written


def test_sqlite_snapshot_while_another_connection_writes_is_consistent(
    sqlite_registry: SqliteRegistry, backup_root: Path
) -> None:
    backup, manifest, initial, final = snapshot_while_writing(sqlite_registry.url, backup_root)

    with closing(sqlite3.connect(f"file:{backup / 'registry.db'}?mode=ro", uri=True)) as snap:
        assert snap.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        in_snapshot = {
            table: snap.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES
        }
    assert manifest.tables == in_snapshot
    assert initial < manifest.tables["verifications"] < final  # taken mid-stream
    assert verify_files(backup) == manifest


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("damage", ["flip-one-byte", "truncate"])
def test_a_damaged_snapshot_is_refused_and_the_target_is_unchanged(
    sqlite_registry: SqliteRegistry, backup_root: Path, damage: str
) -> None:
    backup, _ = take_snapshot(sqlite_registry.url, backup_root)
    sqlite_registry.registry.close()
    snapshot_file = backup / "registry.db"
    data = bytearray(snapshot_file.read_bytes())
    if damage == "flip-one-byte":
        data[len(data) // 2] ^= 0x01
    else:
        del data[len(data) - 4096 :]
    snapshot_file.write_bytes(bytes(data))
    target_before = file_state(sqlite_registry.path.parent)

    with pytest.raises(BackupError) as err:
        verify_files(backup)
    assert str(snapshot_file) in one_line(err)
    with pytest.raises(BackupError) as err_restore:
        restore(backup, sqlite_registry.url)
    assert str(err_restore.value) == str(err.value)
    assert file_state(sqlite_registry.path.parent) == target_before


def test_files_missing_from_or_extra_to_the_manifest_are_refused(
    sqlite_registry: SqliteRegistry, backup_root: Path
) -> None:
    backup, _ = take_snapshot(sqlite_registry.url, backup_root)
    stray = backup / "notes.txt"
    stray.write_text("not in the manifest")
    with pytest.raises(BackupError) as err:
        verify_files(backup)
    assert one_line(err) == f"{stray}: not listed in the manifest"
    stray.unlink()
    (backup / "registry.db").rename(backup / "elsewhere")
    with pytest.raises(BackupError) as err:
        verify_files(backup)
    assert one_line(err) == f"{backup / 'registry.db'}: listed in the manifest but missing"


def test_a_snapshot_of_another_schema_revision_is_refused_naming_both(
    sqlite_registry: SqliteRegistry, backup_root: Path
) -> None:
    backup, manifest = take_snapshot(sqlite_registry.url, backup_root)
    sqlite_registry.registry.close()
    write_manifest(backup, msgspec.structs.replace(manifest, schema_revision="0000"))
    target_before = file_state(sqlite_registry.path.parent)

    with pytest.raises(BackupError) as err:
        restore(backup, sqlite_registry.url)
    message = one_line(err)
    assert message.startswith("backup at revision 0000, code at 0001: ")
    assert "does not know the backup's revision" in message
    assert f"service version {__version__}" in message
    assert file_state(sqlite_registry.path.parent) == target_before


def test_a_snapshot_holding_another_revision_than_its_manifest_is_refused(
    sqlite_registry: SqliteRegistry, backup_root: Path
) -> None:
    backup, _ = take_snapshot(sqlite_registry.url, backup_root)
    sqlite_registry.registry.close()
    with closing(sqlite3.connect(backup / "registry.db")) as snap, snap:
        snap.execute("UPDATE alembic_version SET version_num = '0000'")
    refix_manifest(backup)
    target_before = file_state(sqlite_registry.path.parent)

    with pytest.raises(BackupError) as err:
        restore(backup, sqlite_registry.url)
    assert "holds schema revision 0000, the manifest says 0001" in one_line(err)
    assert file_state(sqlite_registry.path.parent) == target_before


def write_versions(directory: Path, chain: list[str]) -> None:
    """An Alembic script directory whose revisions follow ``chain``."""
    versions = directory / "versions"
    versions.mkdir(parents=True)
    down: str | None = None
    for revision in chain:
        (versions / f"{revision}.py").write_text(
            f"revision = {revision!r}\ndown_revision = {down!r}\n"
            "branch_labels = None\ndepends_on = None\n\n\n"
            "def upgrade() -> None:\n    pass\n\n\n"
            "def downgrade() -> None:\n    pass\n"
        )
        down = revision


def test_revision_messages_say_which_side_is_newer(tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory

    write_versions(tmp_path, ["a1", "b2", "c3"])
    script = ScriptDirectory(str(tmp_path))
    assert code_revision(script) == "c3"
    assert compare_revisions("a1", "c3", script) == "the backup is older than the code"
    assert compare_revisions("c3", "a1", script) == "the backup is newer than the code"
    assert "does not know" in compare_revisions("zz9", "c3", script)
    with pytest.raises(BackupError) as err:
        check_revision("a1", service_version="0.9.0", script=script)
    assert one_line(err) == (
        "backup at revision a1, code at c3: the backup is older than the code; restore it "
        "with the release that wrote it (service version 0.9.0), then upgrade to this release"
    )
    check_revision("c3", script=script)


TAMPERING = {
    "v1-hash": (
        "UPDATE policies_v1 SET policy_hash = '0x{f}' WHERE id = (SELECT min(id) FROM policies_v1)",
        "stored policy_hash 0xfff",
    ),
    "v1-body": (
        "UPDATE policies_v1 SET body = replace(body, '\"supplier_count_max\":', "
        "'\"supplier_count_max\":1') WHERE id = (SELECT min(id) FROM policies_v1)",
        "is not the hash of its body",
    ),
    "v2-ir-hash": (
        "UPDATE policies_v2 SET ir_hash = 'sha3-256:{f}' WHERE policy_id = 'lksg.v1'",
        "stored ir_hash",
    ),
    "v2-policy-hash": (
        "UPDATE policies_v2 SET policy_hash = 'sha3-256:{f}' WHERE policy_id = 'lksg.v1'",
        "stored policy_hash",
    ),
    "v2-ir-text": (
        "UPDATE policies_v2 SET ir = replace(ir, '\"rules\":', '\"rules\": ') "
        "WHERE policy_id = 'lksg.v1'",
        "not the canonical IR",
    ),
    "blob-content": (
        "UPDATE policy_blobs SET content = CAST(content || X'20' AS BLOB) "
        "WHERE digest = (SELECT min(digest) FROM policy_blobs)",
        "the content's digest is",
    ),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERING))
def test_a_tampered_stored_policy_is_refused_by_the_content_check(
    sqlite_registry: SqliteRegistry, backup_root: Path, tampering: str
) -> None:
    backup, _ = take_snapshot(sqlite_registry.url, backup_root)
    sqlite_registry.registry.close()
    statement, expected = TAMPERING[tampering]
    with closing(sqlite3.connect(backup / "registry.db")) as snap, snap:
        changed = snap.execute(statement.format(f="f" * 64)).rowcount
    assert changed >= 1
    refix_manifest(backup)
    verify_files(backup)  # the files match the manifest: only the content check can tell
    target_before = file_state(sqlite_registry.path.parent)

    with pytest.raises(BackupError) as err:
        restore(backup, sqlite_registry.url)
    message = one_line(err)
    assert "refused" in message
    assert expected in message
    assert file_state(sqlite_registry.path.parent) == target_before


def test_a_failed_snapshot_leaves_the_directory_empty(tmp_path: Path) -> None:
    unmigrated = tmp_path / "empty.db"
    sqlite3.connect(unmigrated).close()
    target = tmp_path / "snap"
    target.mkdir()
    with pytest.raises(BackupError) as err:
        snapshot(f"sqlite:///{unmigrated}", target)
    assert "no schema revision" in one_line(err)
    assert os.listdir(target) == []
    (target / "x").write_text("")
    with pytest.raises(BackupError) as err:
        snapshot(f"sqlite:///{unmigrated}", target)
    assert one_line(err) == f"{target}: not empty (holds x)"
    with pytest.raises(BackupError) as err:
        snapshot(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path / "snap2")
    assert "not an existing directory" in one_line(err)


def test_a_password_never_reaches_a_message(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://cap:s3cr3t-pw@127.0.0.1:{free_port()}/registry"
    target = tmp_path / "snap"
    target.mkdir()
    with pytest.raises(BackupError) as err:
        snapshot(url, target)
    assert "cannot connect to database registry on 127.0.0.1" in one_line(err)
    assert "s3cr3t" not in str(err.value)
    assert os.listdir(target) == []


# --------------------------------------------------------------------------- manifest


def test_manifest_files_are_read_strictly_with_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    with pytest.raises(BackupError) as err:
        read_manifest(tmp_path)
    assert one_line(err) == f"{path}: missing"
    path.write_text("{not json")
    with pytest.raises(BackupError) as err:
        read_manifest(tmp_path)
    assert one_line(err) == f"{path}: not valid JSON"
    good: dict[str, Any] = {
        "format": 1,
        "created_at": "2026-11-20T03:00:00Z",
        "service_version": "0.11.0",
        "schema_revision": "0001",
        "registry": "sqlite",
        "files": {"registry.db": {"sha256": "0" * 64, "size": 1}},
        "tables": {"verifications": 3},
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "extra": 1}, "extra: unknown key"),
        ({**good, "format": 2}, "format: Invalid enum value 2"),
        ({**good, "created_at": "2026-11-20 03:00"}, "created_at: expected an RFC 3339"),
        ({**good, "registry": "mysql"}, "registry: Invalid enum value 'mysql'"),
        ({**good, "files": {}}, "files: registry.db (the sqlite snapshot) is missing"),
        (
            {**good, "files": {**good["files"], "../etc": {"sha256": "0" * 64, "size": 1}}},
            "files: bad key: Expected `str` matching regex",
        ),
        ({**good, "tables": {"verifications": -1}}, "tables[...]: Expected `int` >= 0"),
    ]
    for document, problem in cases:
        path.write_text(json.dumps(document))
        with pytest.raises(BackupError) as err:
            read_manifest(tmp_path)
        assert one_line(err).startswith(f"{path}: {problem}"), (problem, str(err.value))
    path.write_text(json.dumps(good))
    assert read_manifest(tmp_path).tables == {"verifications": 3}


def test_add_file_records_a_file_and_rewrites_the_manifest(
    sqlite_registry: SqliteRegistry, tmp_path: Path
) -> None:
    backup = tmp_path / "snap"
    backup.mkdir()
    manifest = snapshot(sqlite_registry.url, backup)
    archive = backup / "config.tar.age"
    archive.write_bytes(b"encrypted config archive")
    os.chmod(archive, 0o644)
    with pytest.raises(BackupError) as err:
        add_file(backup, manifest, archive)
    assert "mode 0644, must be 0600 or stricter" in one_line(err)
    os.chmod(archive, 0o600)

    updated = add_file(backup, manifest, archive)
    assert updated.files["config.tar.age"] == FileEntry(
        sha256=hashlib.sha256(b"encrypted config archive").hexdigest(),
        size=len(b"encrypted config archive"),
    )
    assert read_manifest(backup) == updated
    assert verify_files(backup) == updated
    assert sorted(os.listdir(backup)) == ["config.tar.age", "manifest.json", "registry.db"]
    assert mode(backup / MANIFEST_NAME) == 0o600

    with pytest.raises(BackupError) as err:  # the manifest before the addition is stale
        add_file(backup, manifest, archive)
    assert "differs from the manifest given to add_file" in one_line(err)
    outside = tmp_path / "outside"
    outside.write_bytes(b"x")
    with pytest.raises(BackupError) as err:
        add_file(backup, updated, outside)
    assert "not directly inside the backup directory" in one_line(err)
    with pytest.raises(BackupError) as err:
        add_file(backup, updated, backup / "registry.db")
    assert "written by the library" in one_line(err)
    assert read_manifest(backup) == updated


# --------------------------------------------------------------------------- backups on disk


def fake_backup(root: Path, when: datetime, *, good: bool = True) -> Path:
    """A published backup taken at ``when`` (a small stand-in snapshot file)."""
    partial = partial_directory(root, now=when)
    data = f"snapshot of {when.isoformat()}".encode()
    path = partial / "registry.db"
    path.write_bytes(data)
    os.chmod(path, 0o600)
    write_manifest(
        partial,
        Manifest(
            format=1,
            created_at=rfc3339(when),
            service_version=__version__,
            schema_revision="0001",
            registry="sqlite",
            files={"registry.db": file_entry(path)},
            tables={"verifications": 0},
        ),
    )
    final = publish(partial, root)
    if not good:
        (final / "registry.db").write_bytes(data[::-1])
    return final


def test_publish_is_atomic_and_lists_ignore_partials_and_junk(backup_root: Path) -> None:
    partial = partial_directory(backup_root, now=NOW)
    with pytest.raises(BackupError) as err:
        publish(partial, backup_root)  # no manifest yet
    assert one_line(err) == f"{partial / MANIFEST_NAME}: missing"
    assert os.listdir(backup_root) == [partial.name]

    (partial / "registry.db").write_bytes(b"snapshot")
    os.chmod(partial / "registry.db", 0o600)
    write_manifest(
        partial,
        Manifest(
            format=1,
            created_at=rfc3339(NOW),
            service_version=__version__,
            schema_revision="0001",
            registry="sqlite",
            files={"registry.db": FileEntry(sha256="0" * 64, size=8)},
            tables={},
        ),
    )
    with pytest.raises(BackupError) as err:
        publish(partial, backup_root)  # files do not match the manifest
    assert "registry.db: sha256" in one_line(err)
    assert os.listdir(backup_root) == [partial.name]
    assert list_backups(backup_root) == []  # a partial is never listed, complete or not

    write_manifest(
        partial,
        Manifest(
            format=1,
            created_at=rfc3339(NOW),
            service_version=__version__,
            schema_revision="0001",
            registry="sqlite",
            files={"registry.db": file_entry(partial / "registry.db")},
            tables={},
        ),
    )
    seen_without_manifest: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # bounded: until told to stop, at most 5 s
        deadline = time.monotonic() + 5
        while not stop.is_set() and time.monotonic() < deadline:
            for name in os.listdir(backup_root):
                if not name.startswith(".") and not (backup_root / name / MANIFEST_NAME).exists():
                    seen_without_manifest.append(name)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        final = publish(partial, backup_root)
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert final == backup_root / "20261120T030000Z"
    assert seen_without_manifest == []
    assert os.listdir(backup_root) == [final.name]

    # junk: a file with a backup's name, a dir without manifest, a symlink, other names
    (backup_root / "20261119T000000Z").write_text("a file")
    (backup_root / "20261118T000000Z").mkdir()
    (backup_root / "20261121T000000Z").symlink_to(final)
    (backup_root / "lost+found").mkdir()
    pending = partial_directory(backup_root, now=NOW + timedelta(hours=1))
    with pytest.raises(BackupError) as err:
        publish(backup_root / "lost+found", backup_root)
    assert "not a partial backup directory" in one_line(err)
    assert [backup.path for backup in list_backups(backup_root)] == [final]
    found = latest(backup_root)
    assert found is not None
    assert found.path == final
    with pytest.raises(BackupError) as err:  # a partial of that second exists already
        partial_directory(backup_root, now=NOW + timedelta(hours=1))
    assert one_line(err).startswith(f"{pending}: exists already")


def test_prune_by_age_keeps_the_newest_good_backup_and_removes_stale_partials(
    backup_root: Path,
) -> None:
    old = fake_backup(backup_root, NOW - timedelta(days=40))
    older_good = fake_backup(backup_root, NOW - timedelta(days=30))
    newest_bad = fake_backup(backup_root, NOW - timedelta(days=20), good=False)
    stale_partial = partial_directory(backup_root, now=NOW - timedelta(days=2))
    fresh_partial = partial_directory(backup_root, now=NOW - timedelta(hours=3))
    unrelated = [backup_root / "notes.txt", backup_root / "20250101", backup_root / ".partial-x"]
    unrelated[0].write_text("keep me")
    unrelated[1].mkdir()
    unrelated[2].mkdir()
    no_manifest = backup_root / "20250101T000000Z"  # a backup's name, but not a backup
    no_manifest.mkdir()

    found = newest_good(backup_root)
    assert found is not None
    assert found.path == older_good
    deleted = prune(backup_root, keep_days=7, now=NOW)

    assert sorted(deleted) == sorted([old, newest_bad, stale_partial])
    assert [backup.path for backup in list_backups(backup_root)] == [older_good]
    assert fresh_partial.exists()
    assert no_manifest.exists()
    assert all(path.exists() for path in unrelated)
    assert not [name for name in os.listdir(backup_root) if name.startswith(".deleting-")]

    recent = [fake_backup(backup_root, NOW - timedelta(days=d)) for d in (6, 3, 1)]
    assert prune(backup_root, keep_days=7, now=NOW) == [older_good]
    assert [backup.path for backup in list_backups(backup_root)] == recent
    assert prune(backup_root, keep_days=0, now=NOW) == recent[:2]  # the newest good stays
    assert prune(backup_root, keep_days=0, now=NOW) == []
    with pytest.raises(BackupError) as err:
        prune(backup_root, keep_days=-1, now=NOW)
    assert one_line(err) == "keep_days must be 0 or more, not -1"
    with pytest.raises(BackupError) as err:
        prune(backup_root, keep_days=1, now=datetime(2026, 1, 1))
    assert "no time zone" in one_line(err)


# --------------------------------------------------------------------------- PostgreSQL


def admin_connection() -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname=PG_ADMIN_DB, autocommit=True
    )


def databases_like(prefix: str) -> list[str]:
    with admin_connection() as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY datname",
            [prefix],
        ).fetchall()
    return [str(name) for (name,) in rows]


def drop_database(name: str) -> None:
    with admin_connection() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@dataclass
class PostgresRegistry:
    url: str
    dbname: str
    registry: Registry


@pytest.fixture
def pg_registry(postgres_url: str) -> Iterator[PostgresRegistry]:
    """A migrated, filled registry in a fresh database; every database a restore leaves
    (``<db>_before_restore_*``, a scratch one) is dropped at teardown."""
    dbname = postgres_url.rsplit("/", 1)[1]
    registry = Registry(postgres_url)
    registry.migrate()
    store_policies(registry, "base")
    try:
        yield PostgresRegistry(postgres_url, dbname, registry)
    finally:
        registry.close()
        for name in databases_like(f"{dbname}_"):
            drop_database(name)


def with_password(url: str, password: str) -> str:
    """``url`` with a password (trust authentication ignores it; the tools must not show it)."""
    return url.replace("postgres@", f"postgres:{password}@", 1)


@pytest.mark.postgres
def test_postgres_snapshot_then_restore_gives_back_the_snapshot_row_for_row(
    pg_registry: PostgresRegistry, backup_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def recording_run(argv: list[str], **kwargs: Any) -> Any:
        runs.append((list(argv), dict(kwargs.get("env") or {})))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording_run)
    url = with_password(pg_registry.url, "pw-s3cr3t")
    before = table_rows(pg_registry.url)

    backup, manifest = take_snapshot(url, backup_root)

    assert manifest.registry == "postgresql"
    assert manifest.schema_revision == code_revision()
    assert manifest.tables == counts_of(before)
    assert sorted(os.listdir(backup)) == ["manifest.json", "registry.dump"]
    assert all(mode(path) == 0o600 for path in backup.iterdir())
    dump_argv = next(argv for argv, _ in runs if argv[0].endswith("pg_dump"))
    assert {"--format=custom", "--no-owner", "--no-privileges"} <= set(dump_argv)
    assert any(arg.startswith("--snapshot=") for arg in dump_argv)
    assert all("pw-s3cr3t" not in arg for argv, _ in runs for arg in argv)
    assert all(env.get("PGPASSWORD") == "pw-s3cr3t" for _, env in runs)

    store_policies(pg_registry.registry, "later", count=3)
    changed = table_rows(pg_registry.url)
    pg_registry.registry.close()
    lingering = psycopg.connect(pg_registry.url.replace("postgresql+psycopg", "postgresql"))
    try:
        report = restore(backup, url, maintenance_db=PG_ADMIN_DB, now=NOW)
        with pytest.raises(psycopg.OperationalError):  # other sessions were terminated
            lingering.execute("SELECT 1")
    finally:
        lingering.close()

    assert table_rows(pg_registry.url) == before
    previous = f"{pg_registry.dbname}_before_restore_20261120t030000z"
    assert report.previous == previous
    assert report.target == pg_registry.dbname
    assert report.tables == manifest.tables
    assert table_rows(pg_registry.url.rsplit("/", 1)[0] + "/" + previous) == changed
    assert databases_like(f"{pg_registry.dbname}_") == [previous]  # no scratch database left
    assert any(argv[0].endswith("pg_restore") and "--no-owner" in argv for argv, _ in runs)
    assert all("pw-s3cr3t" not in arg for argv, _ in runs for arg in argv)


@pytest.mark.postgres
def test_postgres_dump_and_counts_are_one_point_in_time_under_writes(
    pg_registry: PostgresRegistry, backup_root: Path
) -> None:
    backup, manifest, initial, final = snapshot_while_writing(pg_registry.url, backup_root)
    assert initial < manifest.tables["verifications"] < final
    pg_registry.registry.close()

    report = restore(backup, pg_registry.url, maintenance_db=PG_ADMIN_DB)

    # restore checked the restored dump's rows against the manifest's counts; count again
    assert report.tables == manifest.tables
    assert counts_of(table_rows(pg_registry.url)) == manifest.tables


@pytest.mark.postgres
def test_postgres_restore_that_fails_verification_drops_its_scratch_database(
    pg_registry: PostgresRegistry, backup_root: Path
) -> None:
    backup, manifest = take_snapshot(pg_registry.url, backup_root)
    tables = {**manifest.tables, "verifications": manifest.tables["verifications"] + 1}
    write_manifest(backup, msgspec.structs.replace(manifest, tables=tables))
    pg_registry.registry.close()
    before = table_rows(pg_registry.url)

    with pytest.raises(BackupError) as err:
        restore(backup, pg_registry.url, maintenance_db=PG_ADMIN_DB)
    message = one_line(err)
    assert "refused: table verifications:" in message
    assert "the manifest says" in message
    assert databases_like(f"{pg_registry.dbname}_") == []
    assert table_rows(pg_registry.url) == before

    write_manifest(backup, msgspec.structs.replace(manifest, schema_revision="0000"))
    with pytest.raises(BackupError) as err:
        restore(backup, pg_registry.url, maintenance_db=PG_ADMIN_DB)
    assert one_line(err).startswith("backup at revision 0000, code at 0001")
    assert databases_like(f"{pg_registry.dbname}_") == []


@pytest.fixture
def pg_role() -> Iterator[str]:
    """A role without login (requested before ``postgres_url``: dropped after the database)."""
    require_postgres()
    name = f"capreg_owner_{os.urandom(4).hex()}"
    with admin_connection() as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with admin_connection() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.mark.postgres
def test_postgres_restore_gives_the_database_and_its_tables_to_the_owner_role(
    pg_role: str, pg_registry: PostgresRegistry, backup_root: Path
) -> None:
    backup, _ = take_snapshot(pg_registry.url, backup_root)
    pg_registry.registry.close()
    report = restore(backup, pg_registry.url, owner=pg_role, maintenance_db=PG_ADMIN_DB)
    try:
        with psycopg.connect(pg_registry.url.replace("postgresql+psycopg", "postgresql")) as conn:
            owners = conn.execute(
                "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
            (dba,) = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
            ).fetchone() or ("",)
        assert owners == [(pg_role,)]
        assert dba == pg_role
    finally:
        # the role owns the restored database: drop it before the role goes
        drop_database(pg_registry.dbname)
        if report.previous:
            drop_database(report.previous)


def test_restore_refuses_a_backup_of_the_other_backend(
    sqlite_registry: SqliteRegistry, backup_root: Path
) -> None:
    backup, _ = take_snapshot(sqlite_registry.url, backup_root)
    with pytest.raises(BackupError) as err:
        restore(backup, f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/registry")
    assert one_line(err) == f"{backup}: holds a sqlite snapshot, the registry URL names postgresql"


def test_sqlite_restore_over_a_corrupt_or_missing_registry(
    sqlite_registry: SqliteRegistry, backup_root: Path
) -> None:
    backup, manifest = take_snapshot(sqlite_registry.url, backup_root)
    expected = table_rows(sqlite_registry.url)
    sqlite_registry.registry.close()
    target = sqlite_registry.path
    target.write_bytes(b"not a database any more" * 100)
    target.with_name("registry.db-wal").write_bytes(b"stale wal")

    report = restore(backup, sqlite_registry.url, now=NOW)

    assert table_rows(sqlite_registry.url) == expected
    assert report.previous is not None
    assert Path(report.previous).read_bytes() == b"not a database any more" * 100
    assert Path(report.previous + "-wal").read_bytes() == b"stale wal"  # kept with it
    assert not target.with_name("registry.db-wal").exists()

    target.unlink()
    Path(report.previous).unlink()
    Path(report.previous + "-wal").unlink()
    report = restore(backup, sqlite_registry.url, now=NOW + timedelta(minutes=1))
    assert report.previous is None
    assert report.tables == manifest.tables
    assert mode(target) == 0o600
    assert target.stat().st_uid == target.parent.stat().st_uid
    assert sorted(os.listdir(target.parent)) == ["registry.db"]
