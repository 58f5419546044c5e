"""What a registry copy holds, checked with the service's own code: rows, revision, hashes.

Backend-neutral: every function takes ``execute``, which runs one SQL statement (no
parameters) on an open connection and returns its rows (``sqlite3.Connection.execute`` and
``psycopg.Connection.execute`` both fit). The statements are plain SQL both backends speak.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import Any, Final, NamedTuple

from cap_ops.backup.errors import BackupError
from cap_verifier.domain import (
    DomainError,
    build_ir,
    load_policy_yaml,
    parse_ir,
    parse_policy_v1,
    parse_policy_v2,
    policy_v1_hash,
    policy_v2_hash,
)
from cap_verifier.domain.digests import sha3_ref as blob_digest
from cap_verifier.domain.json_input import to_json_value

__all__ = [
    "VERSION_TABLE",
    "Execute",
    "check_counts",
    "count_rows",
    "quote_ident",
    "read_revision",
    "verify_policies",
]

Execute = Callable[[str], Iterable[Sequence[Any]]]
"""Run one SQL statement and return its rows."""

VERSION_TABLE: Final = "alembic_version"

_SOURCE_PARSERS: Final = ("application/yaml", "application/json")
V2_BATCH: Final = 250
"""PolicyV2 rows checked per task of the worker pool."""
PARALLEL_FROM: Final = 2000
"""From this many PolicyV2 rows on, every core checks (compiling a source is the slow part of a
restore: ~2 ms a policy, most of it parsing YAML)."""


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (standard SQL: SQLite and PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


def count_rows(execute: Execute, tables: Iterable[str]) -> dict[str, int]:
    """The row count of every table in ``tables`` but ``alembic_version``."""
    counts: dict[str, int] = {}
    for table in sorted(tables):
        if table == VERSION_TABLE:
            continue
        ((count,),) = list(execute(f"SELECT count(*) FROM {quote_ident(table)}"))  # noqa: S608
        counts[table] = int(count)
    return counts


def read_revision(execute: Execute) -> str:
    """The one Alembic revision stored in ``alembic_version``."""
    try:
        rows = [str(row[0]) for row in execute(f"SELECT version_num FROM {VERSION_TABLE}")]  # noqa: S608
    except Exception as exc:  # the driver's "no such table" (sqlite3 or psycopg)
        raise BackupError(
            f"no schema revision ({VERSION_TABLE} cannot be read: {exc}); "
            "is this a migrated registry?"
        ) from None
    if len(rows) != 1:
        raise BackupError(f"{VERSION_TABLE} holds {len(rows)} revisions, expected exactly one")
    return rows[0]


def check_counts(actual: Mapping[str, int], expected: Mapping[str, int]) -> None:
    """Refuse tables or row counts that differ from the manifest's."""
    missing = sorted(set(expected) - set(actual))
    if missing:
        raise BackupError(f"table {missing[0]} of the manifest is missing")
    extra = sorted(set(actual) - set(expected))
    if extra:
        raise BackupError(f"table {extra[0]} is not in the manifest")
    for table in sorted(expected):
        if actual[table] != expected[table]:
            raise BackupError(
                f"table {table}: {actual[table]} rows, the manifest says {expected[table]}"
            )


def verify_policies(execute: Execute) -> int:
    """Recompute every stored hash from the stored content; the number of rows checked.

    Blobs: the ``sha3-256`` digest and the size of the content. v1 policies: ``policy_v1_hash``
    of the stored body. PolicyV2s: the policy hash and the IR hash compiled from the stored
    source, the stored IR text (its own ``ir_hash`` claim checked by ``parse_ir``, and that it
    is the canonical IR of the source), id and version.
    """
    checked = 0
    for digest, size, content in execute(
        "SELECT digest, size, content FROM policy_blobs ORDER BY digest"
    ):
        data = _as_bytes(content, f"policy_blobs {digest}")
        if blob_digest(data) != digest:
            raise BackupError(f"policy_blobs {digest}: the content's digest is {blob_digest(data)}")
        if size != len(data):
            raise BackupError(f"policy_blobs {digest}: size {size}, the content has {len(data)}")
        checked += 1
    for policy_id, stored_hash, body in execute(
        "SELECT id, policy_hash, body FROM policies_v1 ORDER BY id"
    ):
        _check_v1(str(policy_id), str(stored_hash), str(body))
        checked += 1
    ((v2_count,),) = list(execute("SELECT count(*) FROM policies_v2"))
    rows = execute(
        "SELECT p.policy_id, p.version, p.policy_hash, p.ir_hash, p.ir, b.media_type, b.content "
        "FROM policies_v2 p LEFT JOIN policy_blobs b ON b.digest = p.source_digest "
        "ORDER BY p.policy_id"
    )
    workers = os.cpu_count() or 1
    if int(v2_count) < PARALLEL_FROM or workers == 1:
        return checked + check_v2_rows([_plain(row) for row in rows])
    return checked + _check_v2_in_parallel(rows, workers)


def _plain(row: Sequence[Any]) -> tuple[Any, ...]:
    """A row with its content as bytes (a driver's memoryview cannot go to another process)."""
    values = list(row)
    if isinstance(values[-1], memoryview | bytearray):
        values[-1] = bytes(values[-1])
    return tuple(values)


def _batches(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    iterator = iter(rows)
    while batch := [_plain(row) for row in islice(iterator, size)]:
        yield batch


def check_v2_rows(rows: list[tuple[Any, ...]]) -> int:
    """Check PolicyV2 rows (see :func:`verify_policies`); how many. A pool task."""
    for row in rows:
        _check_v2(_V2Row(*row))
    return len(rows)


def _check_v2_in_parallel(rows: Iterable[Sequence[Any]], workers: int) -> int:
    """Check batches on every core, at most two batches per worker in flight (the rows are
    streamed, never all in memory); the first failing batch's one-line error is raised."""
    checked = 0
    pending: list[Future[int]] = []
    context = multiprocessing.get_context("fork")  # the workers inherit the loaded domain code
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        try:
            for batch in _batches(rows, V2_BATCH):
                pending.append(pool.submit(check_v2_rows, batch))
                if len(pending) >= 2 * workers:
                    checked += pending.pop(0).result()
            for future in pending:
                checked += future.result()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return checked


def _as_bytes(value: object, where: str) -> bytes:
    """A BLOB/bytea value as bytes; anything else (a TEXT value, in SQLite) is refused."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise BackupError(f"{where}: the content is stored as {type(value).__name__}, not bytes")


def _check_v1(policy_id: str, stored_hash: str, body: str) -> None:
    """One v1 policy: the hash of the stored body is the stored hash."""
    where = f"policies_v1 {policy_id}"
    try:
        policy = parse_policy_v1(json.loads(body))
    except (ValueError, DomainError) as exc:
        raise BackupError(f"{where}: the stored body is not a v1 policy: {exc}") from None
    recomputed = policy_v1_hash(policy)
    if recomputed != stored_hash:
        raise BackupError(
            f"{where}: stored policy_hash {stored_hash} is not the hash of its body {recomputed}"
        )


class _V2Row(NamedTuple):
    """A stored PolicyV2 with its source blob (None when the blob is missing)."""

    policy_id: str
    version: str
    policy_hash: str
    ir_hash: str
    ir_text: str
    media_type: str | None
    content: object


def _check_v2(row: _V2Row) -> None:
    """One PolicyV2: its source compiles to the stored hashes and the stored IR text."""
    policy_id, version, policy_hash, ir_hash, ir_text, media_type, content = row
    where = f"policies_v2 {policy_id}"
    if content is None or media_type is None:
        raise BackupError(f"{where}: its source blob is missing")
    if media_type not in _SOURCE_PARSERS:
        raise BackupError(f"{where}: source of unknown media type {media_type!r}")
    try:
        text = _as_bytes(content, where).decode("utf-8")
        document = (
            load_policy_yaml(text, path="source")
            if media_type == "application/yaml"
            else to_json_value(json.loads(text), "source")
        )
        policy = parse_policy_v2(document, path="source")
    except (ValueError, DomainError) as exc:
        raise BackupError(f"{where}: the stored source is not a PolicyV2: {exc}") from None
    compiled = build_ir(policy)
    if policy.id != policy_id or policy.version != version:
        raise BackupError(
            f"{where}: the stored source is policy {policy.id} version {policy.version}, "
            f"the row says {policy_id} version {version}"
        )
    if policy_v2_hash(policy) != policy_hash:
        raise BackupError(
            f"{where}: stored policy_hash {policy_hash} is not the hash of its source "
            f"{policy_v2_hash(policy)}"
        )
    if compiled.ir_hash != ir_hash:
        raise BackupError(
            f"{where}: stored ir_hash {ir_hash} is not the IR hash of its source {compiled.ir_hash}"
        )
    try:
        stored_ir = parse_ir(json.loads(ir_text), path="ir")
    except (ValueError, DomainError) as exc:
        raise BackupError(f"{where}: the stored IR is not valid: {exc}") from None
    if (stored_ir.ir_hash, stored_ir.policy_hash, stored_ir.policy_id) != (
        ir_hash,
        policy_hash,
        policy_id,
    ):
        raise BackupError(f"{where}: the stored IR names other hashes or another policy")
    if ir_text != compiled.canonical_json():
        raise BackupError(f"{where}: the stored IR text is not the canonical IR of its source")
