"""Initial schema: v1 policies, policy blobs, PolicyV2 policies, verification audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration never imports the live models.
_TS = sa.DateTime(timezone=True)
_HEX0X = sa.String(66)
_SHA3 = sa.String(73)
_POLICY_ID = sa.String(255)


def upgrade() -> None:
    """Create the four registry tables."""
    op.create_table(
        "policies_v1",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("policy_hash", _HEX0X, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies_v1")),
        sa.UniqueConstraint("policy_hash", name=op.f("uq_policies_v1_policy_hash")),
    )
    op.create_table(
        "policy_blobs",
        sa.Column("digest", _SHA3, nullable=False),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_policy_blobs")),
    )
    op.create_table(
        "policies_v2",
        sa.Column("policy_id", _POLICY_ID, nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("policy_hash", _SHA3, nullable=False),
        sa.Column("ir_hash", _SHA3, nullable=False),
        sa.Column("ir", sa.Text(), nullable=False),
        sa.Column("source_digest", _SHA3, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("policy_id", name=op.f("pk_policies_v2")),
        sa.ForeignKeyConstraint(
            ["source_digest"],
            ["policy_blobs.digest"],
            name=op.f("fk_policies_v2_source_digest_policy_blobs"),
            ondelete="RESTRICT",
        ),
    )
    op.create_table(
        "verifications",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("policy_id", sa.Text(), nullable=True),
        sa.Column("policy_hash", _SHA3, nullable=False),
        sa.Column("ir_hash", _SHA3, nullable=False),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("manifest_hash", _HEX0X, nullable=False),
        sa.Column("proof_hash", _HEX0X, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verifications")),
        sa.CheckConstraint(
            "verdict IN ('OK', 'WARN', 'FAIL')", name=op.f("ck_verifications_verdict")
        ),
    )
    op.create_index(op.f("ix_verifications_created_at"), "verifications", ["created_at"])


def downgrade() -> None:
    """Drop the registry tables."""
    op.drop_index(op.f("ix_verifications_created_at"), table_name="verifications")
    op.drop_table("verifications")
    op.drop_table("policies_v2")
    op.drop_table("policy_blobs")
    op.drop_table("policies_v1")
