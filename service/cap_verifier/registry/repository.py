"""The policy registry: SQLite (embedded default, WAL) or PostgreSQL behind one synchronous API.

Every method opens its own short transaction, so one :class:`Registry` can be shared by the
threads of a web server's thread pool. Writes are idempotent and safe against concurrent
writers in other processes: they ``INSERT … ON CONFLICT DO NOTHING`` and then read the row
that won.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, StaticPool

from cap_verifier.registry.errors import PolicyConflict, RegistryError, RegistryUnavailable
from cap_verifier.registry.models import (
    POLICY_ID_MAX_LEN,
    Base,
    PolicyBlobRow,
    PolicyV1Row,
    PolicyV2Row,
    VerificationRow,
)
from cap_verifier.registry.records import (
    AuditRecord,
    BlobRecord,
    PolicyV1Record,
    PolicyV2Record,
    utc_now,
)

__all__ = ["MIGRATIONS_DIR", "Backend", "Registry", "alembic_config", "blob_digest"]

Backend = Literal["sqlite", "postgresql"]

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
"""The Alembic script location (``env.py``, ``versions/``), shipped inside the package."""

# Key of the PostgreSQL advisory lock that serialises concurrent `migrate()` calls
# (the first 8 bytes of sha256("cap-verifier registry migrate"), as a signed bigint).
_MIGRATION_LOCK_KEY: Final = int.from_bytes(
    hashlib.sha256(b"cap-verifier registry migrate").digest()[:8], "big", signed=True
)
_MIGRATION_STATEMENT_TIMEOUT: Final = "120s"
_V1_STATUS: Final = "active"
_MAX_LIST_LIMIT: Final = 10_000

_HEX0X_RE: Final = re.compile(r"0x[0-9a-f]{64}")
_SHA3_RE: Final = re.compile(r"sha3-256:[0-9a-f]{64}")
_POLICY_ID_RE: Final = re.compile(rf"[a-z0-9._-]{{1,{POLICY_ID_MAX_LEN}}}")
_MEDIA_TYPE_MAX_LEN: Final = 255
_WAL_RETRY_INTERVAL_S: Final = 0.02


def blob_digest(content: bytes) -> str:
    """The content address of a policy source: ``sha3-256:`` + hex SHA3-256 of the bytes."""
    return "sha3-256:" + hashlib.sha3_256(content).hexdigest()


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration built in code (no ``alembic.ini``).

    ``url`` sets ``sqlalchemy.url`` for ``env.py``; leave it out and put an open connection in
    ``config.attributes["connection"]`` instead (what :meth:`Registry.migrate` does).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation: a literal "%" (URL-encoded password) must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


class Registry:
    """Policies (v1 and PolicyV2), their source blobs and the verification audit records.

    ``url`` is ``sqlite:///path/registry.db`` (the parent directory is created) or
    ``postgresql+psycopg://user:pw@host:port/db`` (``postgresql://`` is read as psycopg).
    Constructing a registry does not connect; :meth:`ping` and :meth:`migrate` do.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        connect_timeout_s: int = 3,
        busy_timeout_ms: int = 5000,
        statement_timeout_ms: int = 15_000,
    ) -> None:
        """Build the engine for ``url``; raise ``ValueError`` for an unsupported URL."""
        try:
            parsed = make_url(url)
        except sa_exc.ArgumentError:
            raise ValueError("registry URL is not a valid database URL") from None
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            self._backend: Backend = "sqlite"
            self._url = parsed
            self._busy_timeout_ms = busy_timeout_ms
            self._sqlite_memory = _is_sqlite_memory(parsed)
            self._engine = self._sqlite_engine()
        elif backend in {"postgresql", "postgres"}:
            driver = parsed.get_driver_name()
            if "+" in parsed.drivername and driver != "psycopg":
                raise ValueError("the registry supports PostgreSQL through psycopg 3 only")
            self._backend = "postgresql"
            self._url = parsed.set(drivername="postgresql+psycopg")
            self._sqlite_memory = False
            self._engine = self._postgresql_engine(
                pool_size, connect_timeout_s, statement_timeout_ms
            )
        else:
            raise ValueError(f"unsupported registry backend {backend!r} (sqlite or postgresql)")
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    def __repr__(self) -> str:
        """The registry with its URL, password hidden."""
        return f"Registry({self._url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> Registry:
        """Use the registry as a context manager that closes it."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the connection pool."""
        self.close()

    @property
    def backend(self) -> Backend:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._backend

    # -- engine construction ---------------------------------------------------------------

    def _sqlite_engine(self) -> Engine:
        """A pooled SQLite engine with WAL, synchronous=NORMAL, busy_timeout, foreign keys."""
        if self._sqlite_memory:
            engine = create_engine(
                self._url,
                poolclass=StaticPool,
                connect_args={"check_same_thread": False},
            )
        else:
            database = self._url.database
            if database and not self._url.query.get("uri"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(self._url)
        busy_timeout_ms = self._busy_timeout_ms

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            _sqlite_pragmas(dbapi_connection, busy_timeout_ms)

        return engine

    def _sqlite_migration_engine(self) -> Engine:
        """A one-connection SQLite engine whose transactions are ``BEGIN IMMEDIATE``.

        The migration then holds the write lock from its first statement (the version check)
        to its commit, so two processes migrating at once run one after the other.
        """
        engine = create_engine(self._url, poolclass=NullPool)
        busy_timeout_ms = self._busy_timeout_ms

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            _sqlite_pragmas(dbapi_connection, busy_timeout_ms)
            dbapi_connection.isolation_level = None  # the driver no longer BEGINs on its own

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def _postgresql_engine(
        self, pool_size: int, connect_timeout_s: int, statement_timeout_ms: int
    ) -> Engine:
        """A small pre-pinged psycopg pool with connect and statement timeouts."""
        connect_args: dict[str, Any] = {
            "connect_timeout": max(2, connect_timeout_s),
            "application_name": "cap-verifier",
        }
        if "options" not in self._url.query:
            connect_args["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
        return create_engine(
            self._url,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=10,
            pool_recycle=1800,
            connect_args=connect_args,
        )

    # -- lifecycle ------------------------------------------------------------------------

    def migrate(self) -> None:
        """Upgrade the schema to the newest revision.

        A no-op at head; safe when several processes run it at once (PostgreSQL: an advisory
        transaction lock; SQLite: one ``BEGIN IMMEDIATE`` transaction).
        """
        config = alembic_config()
        try:
            with _translate("migrate"):
                if self._backend == "postgresql":
                    with self._engine.connect() as conn, conn.begin():
                        conn.execute(
                            text(f"SET LOCAL statement_timeout = '{_MIGRATION_STATEMENT_TIMEOUT}'")
                        )
                        conn.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"),
                            {"key": _MIGRATION_LOCK_KEY},
                        )
                        config.attributes["connection"] = conn
                        command.upgrade(config, "head")
                elif self._sqlite_memory:
                    with self._engine.connect() as conn, conn.begin():
                        config.attributes["connection"] = conn
                        command.upgrade(config, "head")
                else:
                    engine = self._sqlite_migration_engine()
                    try:
                        with engine.connect() as conn, conn.begin():
                            config.attributes["connection"] = conn
                            command.upgrade(config, "head")
                    finally:
                        engine.dispose()
        except CommandError as exc:
            raise RegistryError(f"cannot migrate the registry schema: {exc}") from exc

    def current_revision(self) -> str | None:
        """The schema revision stored in the database (None before the first migration)."""
        with _translate("current_revision"), self._engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @staticmethod
    def head_revision() -> str | None:
        """The newest schema revision this build knows."""
        return ScriptDirectory.from_config(alembic_config()).get_current_head()

    def ping(self) -> None:
        """Run ``SELECT 1``; raise :class:`RegistryUnavailable` when that fails."""
        with _translate("ping"), self._engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        """Close every pooled connection (the registry reconnects if used again)."""
        self._engine.dispose()

    # -- v1 policies ----------------------------------------------------------------------

    def put_policy_v1(
        self,
        policy_hash: str,
        name: str,
        version: str,
        description: str,
        body_json: str,
    ) -> tuple[PolicyV1Record, bool]:
        """Store a v1 policy under a new UUID4 unless its hash is stored already.

        Returns the stored record and whether this call created it. Concurrent callers of the
        same hash (threads or processes) all get the one record that won.
        """
        policy_hash = _hex0x(policy_hash, "policy_hash")
        _require_json_object(body_json, "body_json")
        now = utc_now()
        stmt = (
            self._insert(PolicyV1Row)
            .values(
                id=str(uuid.uuid4()),
                policy_hash=policy_hash,
                name=name,
                version=version,
                description=description,
                status=_V1_STATUS,
                body=body_json,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[PolicyV1Row.policy_hash])
            .returning(PolicyV1Row.id)
        )
        with self._session("put_policy_v1") as session:
            created = session.execute(stmt).scalar_one_or_none() is not None
            row = session.scalars(
                select(PolicyV1Row).where(PolicyV1Row.policy_hash == policy_hash)
            ).one()
            record = _v1_record(row)
            if created:
                session.commit()
        return record, created

    def get_policy_v1(self, id_or_hash: str) -> PolicyV1Record | None:
        """A v1 policy by its UUID or by its ``0x…`` hash; None when unknown or malformed."""
        key = id_or_hash.strip().lower()
        if key.startswith("0x"):
            condition = PolicyV1Row.policy_hash == key
        else:
            try:
                condition = PolicyV1Row.id == str(uuid.UUID(key))
            except ValueError:
                return None
        with self._session("get_policy_v1") as session:
            row = session.scalars(select(PolicyV1Row).where(condition)).one_or_none()
            return None if row is None else _v1_record(row)

    # -- blobs ----------------------------------------------------------------------------

    def put_blob(self, content: bytes, media_type: str) -> str:
        """Store a policy source under its digest (idempotent: the first media type stays)."""
        _check_media_type(media_type)
        digest = blob_digest(content)
        with self._session("put_blob") as session:
            self._insert_blob(session, digest, content, media_type)
            session.commit()
        return digest

    def get_blob(self, digest: str) -> BlobRecord | None:
        """A stored policy source by its ``sha3-256:…`` digest; None when unknown."""
        with self._session("get_blob") as session:
            row = session.get(PolicyBlobRow, digest.strip().lower())
            if row is None:
                return None
            return BlobRecord(
                digest=row.digest,
                media_type=row.media_type,
                content=bytes(row.content),
                size=row.size,
                created_at=row.created_at,
            )

    # -- PolicyV2 -------------------------------------------------------------------------

    def put_policy_v2(
        self,
        policy_id: str,
        *,
        version: str,
        policy_hash: str,
        ir_hash: str,
        ir_json: str,
        source: bytes,
        media_type: str,
    ) -> tuple[PolicyV2Record, bool]:
        """Store a PolicyV2 with its IR text (kept byte-exact) and its source blob.

        All but ``policy_id`` are keyword-only: four of them are look-alike strings.

        Same id and same ``policy_hash`` stored already: the stored record, created False,
        nothing written. Same id with another hash: :class:`PolicyConflict`, nothing written.
        Safe against concurrent writers in other processes.
        """
        if not _POLICY_ID_RE.fullmatch(policy_id):
            raise ValueError(
                f"policy_id must match ^[a-z0-9._-]+$ and be at most {POLICY_ID_MAX_LEN} long"
            )
        policy_hash = _sha3(policy_hash, "policy_hash")
        ir_hash = _sha3(ir_hash, "ir_hash")
        _require_json_object(ir_json, "ir_json")
        _check_media_type(media_type)
        digest = blob_digest(source)
        stmt = (
            self._insert(PolicyV2Row)
            .values(
                policy_id=policy_id,
                version=version,
                policy_hash=policy_hash,
                ir_hash=ir_hash,
                ir=ir_json,
                source_digest=digest,
                created_at=utc_now(),
            )
            .on_conflict_do_nothing(index_elements=[PolicyV2Row.policy_id])
            .returning(PolicyV2Row.policy_id)
        )
        with self._session("put_policy_v2") as session:
            self._insert_blob(session, digest, source, media_type)
            created = session.execute(stmt).scalar_one_or_none() is not None
            row = session.get(PolicyV2Row, policy_id)
            if row is None:  # pragma: no cover - the insert or a committed winner made it
                raise RegistryError("PolicyV2 vanished while it was being stored")
            if row.policy_hash != policy_hash:
                raise PolicyConflict(policy_id, row.policy_hash, policy_hash)
            record = _v2_record(row)
            if created:
                session.commit()
            # else: leave the transaction to roll back, so an unused new blob is not kept.
        return record, created

    def get_policy_v2(self, policy_id: str) -> PolicyV2Record | None:
        """A stored PolicyV2 by its id; None when unknown."""
        with self._session("get_policy_v2") as session:
            row = session.get(PolicyV2Row, policy_id)
            return None if row is None else _v2_record(row)

    def count_policies(self) -> dict[str, int]:
        """Row counts: ``{"v1": …, "v2": …, "blobs": …}``."""
        with self._session("count_policies") as session:
            return {
                key: session.scalar(select(func.count()).select_from(model)) or 0
                for key, model in (
                    ("v1", PolicyV1Row),
                    ("v2", PolicyV2Row),
                    ("blobs", PolicyBlobRow),
                )
            }

    # -- audit ----------------------------------------------------------------------------

    def record_verification(self, record: AuditRecord) -> None:
        """Append one audit record (its ``id`` is ignored: the database assigns one)."""
        self.record_verifications([record])

    def record_verifications(self, records: Sequence[AuditRecord]) -> None:
        """Append audit records in one transaction (group commit of concurrent requests)."""
        if not records:
            return
        rows = [
            {
                "request_id": record.request_id,
                "client_id": record.client_id,
                "policy_id": record.policy_id,
                "policy_hash": record.policy_hash,
                "ir_hash": record.ir_hash,
                "verdict": record.verdict,
                "manifest_hash": record.manifest_hash,
                "proof_hash": record.proof_hash,
                "created_at": record.created_at,
            }
            for record in records
        ]
        # Core executemany on a plain connection: this runs for every /verify, and the ORM's
        # bulk machinery costs more than the database here.
        with _translate("record_verification"), self._engine.begin() as conn:
            conn.execute(insert(VerificationRow), rows)

    def list_verifications(self, limit: int = 100) -> list[AuditRecord]:
        """The newest audit records first, at most ``limit`` (1 … 10000) of them."""
        if not 1 <= limit <= _MAX_LIST_LIMIT:
            raise ValueError(f"limit must be between 1 and {_MAX_LIST_LIMIT}")
        stmt = (
            select(VerificationRow)
            .order_by(VerificationRow.created_at.desc(), VerificationRow.id.desc())
            .limit(limit)
        )
        with self._session("list_verifications") as session:
            return [
                AuditRecord(
                    id=row.id,
                    request_id=row.request_id,
                    client_id=row.client_id,
                    policy_id=row.policy_id,
                    policy_hash=row.policy_hash,
                    ir_hash=row.ir_hash,
                    verdict=row.verdict,
                    manifest_hash=row.manifest_hash,
                    proof_hash=row.proof_hash,
                    created_at=row.created_at,
                )
                for row in session.scalars(stmt)
            ]

    # -- helpers --------------------------------------------------------------------------

    @contextmanager
    def _session(self, action: str) -> Iterator[Session]:
        """A session whose uncommitted work rolls back on exit, with errors translated."""
        with _translate(action), self._sessions() as session:
            yield session

    def _insert(self, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
        """The dialect's INSERT (it has ``ON CONFLICT DO NOTHING``)."""
        if self._backend == "postgresql":
            return postgresql.insert(model)
        return sqlite.insert(model)

    def _insert_blob(self, session: Session, digest: str, content: bytes, media_type: str) -> None:
        """Insert a blob unless its digest is stored already."""
        session.execute(
            self._insert(PolicyBlobRow)
            .values(
                digest=digest,
                media_type=media_type,
                content=content,
                size=len(content),
                created_at=utc_now(),
            )
            .on_conflict_do_nothing(index_elements=[PolicyBlobRow.digest])
        )


@contextmanager
def _translate(action: str) -> Iterator[None]:
    """Turn driver errors into registry errors whose messages hold no SQL or URL."""
    try:
        yield
    except sa_exc.DBAPIError as exc:
        reason = _unavailable_reason(exc)
        if reason is not None:
            raise RegistryUnavailable(reason) from exc
        raise RegistryError(f"registry error during {action}") from exc
    except sa_exc.TimeoutError as exc:
        raise RegistryUnavailable("no free database connection in the pool") from exc
    except sa_exc.SQLAlchemyError as exc:
        raise RegistryError(f"registry error during {action}") from exc


def _unavailable_reason(exc: sa_exc.DBAPIError) -> str | None:
    """A fixed, SQL-free reason when ``exc`` means the database is unavailable, else None."""
    message = str(exc.orig).lower() if exc.orig is not None else ""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate == "42P01" or "no such table" in message:
        return "schema not migrated"
    if not (
        isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
        or exc.connection_invalidated
    ):
        return None
    if "locked" in message or "busy" in message:
        return "database is locked"
    if "statement timeout" in message:
        return "statement timeout"
    if "timeout" in message or "timed out" in message:
        return "connection timed out"
    if "refused" in message or "could not connect" in message or "connection failed" in message:
        return "connection refused"
    if "translate host name" in message or "name or service not known" in message:
        return "database host not found"
    if "unable to open database file" in message:
        return "cannot open the database file"
    if exc.connection_invalidated or "closed" in message or "terminat" in message:
        return "connection lost"
    return "database error"


def _is_sqlite_memory(url: URL) -> bool:
    """Whether a SQLite URL names an in-memory database (tests only: one shared connection)."""
    database = url.database or ""
    return database in {"", ":memory:"} or "mode=memory" in database


def _sqlite_pragmas(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    """Set the per-connection SQLite pragmas: busy timeout, WAL, synchronous, foreign keys."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _sqlite_enable_wal(cursor, busy_timeout_ms)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_enable_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Switch the database to WAL (persistent), retrying while another connection locks it.

    Switching the journal mode needs the database to itself and SQLite answers "database is
    locked" at once instead of calling the busy handler: so retry until the busy timeout.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            transient = "locked" in str(exc) or "busy" in str(exc)
            if not transient or time.monotonic() >= deadline:
                raise
            time.sleep(_WAL_RETRY_INTERVAL_S)


def _hex0x(value: str, name: str) -> str:
    """``value`` lower-cased if it is ``0x`` + 64 hex digits, else ValueError."""
    normalised = value.strip().lower()
    if not _HEX0X_RE.fullmatch(normalised):
        raise ValueError(f"{name} must be 0x followed by 64 hex digits")
    return normalised


def _sha3(value: str, name: str) -> str:
    """``value`` lower-cased if it is ``sha3-256:`` + 64 hex digits, else ValueError."""
    normalised = value.strip().lower()
    if not _SHA3_RE.fullmatch(normalised):
        raise ValueError(f"{name} must be sha3-256: followed by 64 hex digits")
    return normalised


def _require_json_object(value: str, name: str) -> None:
    """ValueError unless ``value`` is the JSON text of an object."""
    try:
        parsed = json.loads(value)
    except ValueError:
        raise ValueError(f"{name} is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"{name} must be a JSON object")


def _check_media_type(media_type: str) -> None:
    """ValueError unless the media type is non-blank and at most 255 characters."""
    if not media_type.strip() or len(media_type) > _MEDIA_TYPE_MAX_LEN:
        raise ValueError(f"media_type must be non-blank and at most {_MEDIA_TYPE_MAX_LEN} long")


def _v1_record(row: PolicyV1Row) -> PolicyV1Record:
    """The immutable record of a v1 row."""
    return PolicyV1Record(
        id=row.id,
        policy_hash=row.policy_hash,
        name=row.name,
        version=row.version,
        description=row.description,
        status=row.status,
        body_json=row.body,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _v2_record(row: PolicyV2Row) -> PolicyV2Record:
    """The immutable record of a PolicyV2 row."""
    return PolicyV2Record(
        policy_id=row.policy_id,
        version=row.version,
        policy_hash=row.policy_hash,
        ir_hash=row.ir_hash,
        ir_json=row.ir,
        source_digest=row.source_digest,
        created_at=row.created_at,
    )
