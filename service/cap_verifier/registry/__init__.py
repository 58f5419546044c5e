"""Policy registry: v1 and PolicyV2 policies, their sources and the verification audit.

SQLite (WAL) is the embedded default, PostgreSQL serves several replicas; the schema is
managed by the Alembic migrations shipped in ``migrations/``.
"""

from cap_verifier.registry.engine import Backend
from cap_verifier.registry.errors import PolicyConflict, RegistryError, RegistryUnavailable
from cap_verifier.registry.migrate import MIGRATIONS_DIR, alembic_config
from cap_verifier.registry.records import (
    AuditRecord,
    BlobRecord,
    PolicyV1Record,
    PolicyV2Record,
)
from cap_verifier.registry.repository import Registry, blob_digest

__all__ = [
    "MIGRATIONS_DIR",
    "AuditRecord",
    "Backend",
    "BlobRecord",
    "PolicyConflict",
    "PolicyV1Record",
    "PolicyV2Record",
    "Registry",
    "RegistryError",
    "RegistryUnavailable",
    "alembic_config",
    "blob_digest",
]
