"""Schema migrations: from empty to head, idempotent, in step with the models, concurrent."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from registry_race_workers import migrate_worker
from sqlalchemy import create_engine, inspect

from cap_verifier.registry import Registry, alembic_config
from cap_verifier.registry.models import Base

REGISTRY_TABLES = {"policies_v1", "policy_blobs", "policies_v2", "verifications"}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrate_from_empty_creates_every_table_and_reaches_head(
    registry_url: str, open_registry: Callable[..., Registry]
) -> None:
    registry = open_registry(registry_url)
    assert registry.current_revision() is None
    assert _tables(registry_url) == set()

    registry.migrate()

    assert registry.current_revision() == Registry.head_revision() == "0001"
    assert _tables(registry_url) == REGISTRY_TABLES | {"alembic_version"}


def test_migrate_twice_is_a_noop(registry: Registry, registry_url: str) -> None:
    stored, _ = registry.put_policy_v1(
        "0x" + "ab" * 32, "Demo", "lksg.v1", "", '{"version":"lksg.v1"}'
    )

    registry.migrate()

    assert registry.current_revision() == Registry.head_revision()
    assert registry.get_policy_v1(stored.id) == stored
    assert _tables(registry_url) == REGISTRY_TABLES | {"alembic_version"}


@pytest.mark.usefixtures("registry")
def test_models_match_the_migrations(registry_url: str) -> None:
    engine = create_engine(registry_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_upgrade_again(registry: Registry, registry_url: str) -> None:
    command.downgrade(alembic_config(registry_url), "base")
    assert registry.current_revision() is None
    assert _tables(registry_url) <= {"alembic_version"}

    registry.migrate()
    assert registry.current_revision() == Registry.head_revision()


@pytest.mark.usefixtures("registry")
def test_verifications_never_hold_the_raw_context(registry_url: str) -> None:
    engine = create_engine(registry_url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("verifications")}
        indexes = {i["name"] for i in inspect(engine).get_indexes("verifications")}
    finally:
        engine.dispose()
    assert columns == {
        "id",
        "request_id",
        "client_id",
        "policy_id",
        "policy_hash",
        "ir_hash",
        "verdict",
        "manifest_hash",
        "proof_hash",
        "created_at",
    }
    assert not any("context" in name for name in columns)
    assert "ix_verifications_created_at" in indexes


def test_sqlite_creates_the_directory_and_uses_wal(
    tmp_path: Path, open_registry: Callable[..., Registry]
) -> None:
    path = tmp_path / "nested" / "dir" / "registry.db"
    registry = open_registry(f"sqlite:///{path}")
    registry.migrate()
    registry.put_blob(b"x", "text/plain")

    assert path.is_file()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.slow
def test_two_processes_migrating_at_once(registry_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    queue = ctx.Queue()
    workers = [
        ctx.Process(target=migrate_worker, args=(registry_url, barrier, queue)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    assert results == [("ok", "0001"), ("ok", "0001")]
    assert all(worker.exitcode == 0 for worker in workers)
    assert _tables(registry_url) == REGISTRY_TABLES | {"alembic_version"}
