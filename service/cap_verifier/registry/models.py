"""Tables of the policy registry (SQLAlchemy 2 declarative, typed with ``Mapped[]``).

The schema itself is created by the Alembic migrations in ``migrations/versions``; these
classes must stay in step with them (a test compares the two).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cap_verifier.domain.identifiers import HEX32_LEN, POLICY_ID_MAX_LEN, SHA3_REF_LEN, UUID_LEN

__all__ = [
    "NAMING_CONVENTION",
    "Base",
    "PolicyBlobRow",
    "PolicyV1Row",
    "PolicyV2Row",
    "UTCDateTime",
    "VerificationRow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (UTC), SQLite included."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; convert aware ones to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC timestamp column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to the naive values SQLite returns; normalise the others to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the registry tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class PolicyV1Row(Base):
    """A v1 LkSG policy, keyed by a UUID4 and unique by its ``0x…`` hash."""

    __tablename__ = "policies_v1"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    policy_hash: Mapped[str] = mapped_column(String(HEX32_LEN), unique=True)
    name: Mapped[str] = mapped_column(Text)
    version: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PolicyBlobRow(Base):
    """A raw policy source, addressed by ``sha3-256:`` + hex digest of its bytes."""

    __tablename__ = "policy_blobs"

    digest: Mapped[str] = mapped_column(String(SHA3_REF_LEN), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PolicyV2Row(Base):
    """A PolicyV2 with its canonical IR (text kept byte-exact) and the digest of its source."""

    __tablename__ = "policies_v2"

    policy_id: Mapped[str] = mapped_column(String(POLICY_ID_MAX_LEN), primary_key=True)
    version: Mapped[str] = mapped_column(Text)
    policy_hash: Mapped[str] = mapped_column(String(SHA3_REF_LEN))
    ir_hash: Mapped[str] = mapped_column(String(SHA3_REF_LEN))
    ir: Mapped[str] = mapped_column(Text)
    source_digest: Mapped[str] = mapped_column(
        String(SHA3_REF_LEN), ForeignKey("policy_blobs.digest", ondelete="RESTRICT")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VerificationRow(Base):
    """The audit record of one verification: hashes and verdict only, never the context."""

    __tablename__ = "verifications"
    __table_args__ = (
        CheckConstraint("verdict IN ('OK', 'WARN', 'FAIL')", name="verdict"),
        Index("ix_verifications_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    # Free text on purpose: an audit write must never fail on a long token subject or id.
    request_id: Mapped[str] = mapped_column(Text)
    client_id: Mapped[str] = mapped_column(Text)
    policy_id: Mapped[str | None] = mapped_column(Text)
    policy_hash: Mapped[str] = mapped_column(String(SHA3_REF_LEN))
    ir_hash: Mapped[str] = mapped_column(String(SHA3_REF_LEN))
    verdict: Mapped[str] = mapped_column(String(8))
    manifest_hash: Mapped[str] = mapped_column(String(HEX32_LEN))
    proof_hash: Mapped[str] = mapped_column(String(HEX32_LEN))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
