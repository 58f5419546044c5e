"""The policy registry: v1 policies, PolicyV2s, their source blobs and the audit records.

Every method opens its own short transaction, so one :class:`Registry` can be shared by the
threads of a web server's thread pool. Writes are idempotent and safe against concurrent
writers in other processes: they ``INSERT … ON CONFLICT DO NOTHING`` and then read the row
that won. The engine is built by ``engine``, the schema by ``migrate``, and driver errors
become registry errors in ``driver_errors``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Final

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from cap_verifier.domain.digests import sha3_ref
from cap_verifier.domain.identifiers import (
    HEX32_RE,
    HEX_PREFIX,
    POLICY_ID_MAX_LEN,
    POLICY_ID_RE,
    SHA3_PREFIX,
    SHA3_REF_RE,
    canonical_uuid,
)
from cap_verifier.registry import migrate as schema
from cap_verifier.registry.driver_errors import translate_errors
from cap_verifier.registry.engine import Backend, open_database
from cap_verifier.registry.errors import PolicyConflict, RegistryError
from cap_verifier.registry.models import (
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

__all__ = ["Registry", "blob_digest"]

_V1_STATUS: Final = "active"
_MAX_LIST_LIMIT: Final = 10_000
_MEDIA_TYPE_MAX_LEN: Final = 255
PRUNE_BATCH: Final = 1000
"""Audit rows deleted per transaction by :meth:`Registry.prune_verifications`."""


def blob_digest(content: bytes) -> str:
    """The content address of a policy source: ``sha3-256:`` + hex SHA3-256 of the bytes."""
    return sha3_ref(content)


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
        self._db = open_database(
            url,
            pool_size=pool_size,
            connect_timeout_s=connect_timeout_s,
            busy_timeout_ms=busy_timeout_ms,
            statement_timeout_ms=statement_timeout_ms,
        )
        self._engine = self._db.engine
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    def __repr__(self) -> str:
        """The registry with its URL, password hidden."""
        return f"Registry({self._db.url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> Registry:
        """Use the registry as a context manager that closes it."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the connection pool."""
        self.close()

    @property
    def backend(self) -> Backend:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._db.backend

    # -- lifecycle ------------------------------------------------------------------------

    def migrate(self) -> None:
        """Upgrade the schema to the newest revision.

        A no-op at head; safe when several processes run it at once (PostgreSQL: an advisory
        transaction lock; SQLite: one ``BEGIN IMMEDIATE`` transaction).
        """
        schema.upgrade(self._db)

    def current_revision(self) -> str | None:
        """The schema revision stored in the database (None before the first migration)."""
        return schema.current_revision(self._db)

    @staticmethod
    def head_revision() -> str | None:
        """The newest schema revision this build knows."""
        return schema.head_revision()

    def ping(self) -> None:
        """Run ``SELECT 1``; raise :class:`RegistryUnavailable` when that fails."""
        with translate_errors("ping"), self._engine.connect() as conn:
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
        if key.startswith(HEX_PREFIX):
            condition = PolicyV1Row.policy_hash == key
        else:
            canonical = canonical_uuid(key)
            if canonical is None:
                return None
            condition = PolicyV1Row.id == canonical
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
        if not POLICY_ID_RE.fullmatch(policy_id):
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

    def policy_ids(self) -> dict[str, list[str]]:
        """Every stored policy: ``{"v1": [uuid, …], "v2": [policy id, …]}``, sorted (for the
        runbooks that check every policy is still served)."""
        with self._session("policy_ids") as session:
            return {
                "v1": [
                    str(i) for i in session.scalars(select(PolicyV1Row.id).order_by(PolicyV1Row.id))
                ],
                "v2": list(
                    session.scalars(select(PolicyV2Row.policy_id).order_by(PolicyV2Row.policy_id))
                ),
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
        with translate_errors("record_verification"), self._engine.begin() as conn:
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

    def count_verifications_before(self, cutoff: datetime) -> int:
        """How many audit records were created before ``cutoff`` (timezone-aware)."""
        stmt = select(func.count()).where(VerificationRow.created_at < cutoff)
        with translate_errors("count_verifications"), self._engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def prune_verifications(self, cutoff: datetime, *, batch_size: int = PRUNE_BATCH) -> int:
        """Delete the audit records created before ``cutoff``; return how many went.

        ``batch_size`` rows per transaction (found through the ``created_at`` index), so a
        concurrent /verify waits for one short batch at most, on SQLite as on PostgreSQL.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        victims = (
            select(VerificationRow.id)
            .where(VerificationRow.created_at < cutoff)
            .limit(batch_size)
            .scalar_subquery()
        )
        stmt = delete(VerificationRow).where(VerificationRow.id.in_(victims))
        removed = 0
        while True:
            with translate_errors("prune_verifications"), self._engine.begin() as conn:
                deleted = conn.execute(stmt).rowcount
            removed += deleted
            if deleted < batch_size:
                return removed

    # -- helpers --------------------------------------------------------------------------

    @contextmanager
    def _session(self, action: str) -> Iterator[Session]:
        """A session whose uncommitted work rolls back on exit, with errors translated."""
        with translate_errors(action), self._sessions() as session:
            yield session

    def _insert(self, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
        """The dialect's INSERT (it has ``ON CONFLICT DO NOTHING``)."""
        if self._db.backend == "postgresql":
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


def _hex0x(value: str, name: str) -> str:
    """``value`` lower-cased if it is ``0x`` + 64 hex digits, else ValueError."""
    return _lower_hex(value, name, HEX32_RE, HEX_PREFIX)


def _sha3(value: str, name: str) -> str:
    """``value`` lower-cased if it is ``sha3-256:`` + 64 hex digits, else ValueError."""
    return _lower_hex(value, name, SHA3_REF_RE, SHA3_PREFIX)


def _lower_hex(value: str, name: str, pattern: re.Pattern[str], prefix: str) -> str:
    """``value`` stripped and lower-cased if it then matches ``pattern``, else ValueError."""
    normalised = value.strip().lower()
    if not pattern.fullmatch(normalised):
        raise ValueError(f"{name} must be {prefix} followed by 64 hex digits")
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
