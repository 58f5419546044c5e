"""Schema revisions: the code's Alembic head, and whether a snapshot's revision fits it.

A snapshot is restored only by code whose newest migration is the snapshot's revision: the
service would otherwise run against a schema it was not written for.
"""

from __future__ import annotations

from alembic.script import ScriptDirectory
from alembic.util import CommandError

from cap_ops.backup.errors import BackupError, guarded
from cap_verifier.registry.migrate import alembic_config

__all__ = ["check_revision", "code_revision", "compare_revisions", "service_script_directory"]


def service_script_directory() -> ScriptDirectory:
    """The Alembic script directory of the service's migrations (read from disk, no database)."""
    return ScriptDirectory.from_config(alembic_config())


@guarded
def code_revision(script: ScriptDirectory | None = None) -> str:
    """The Alembic head revision of the service's migrations (or of ``script``)."""
    script = script or service_script_directory()
    try:
        head = script.get_current_head()
    except CommandError as exc:
        raise BackupError(f"the migrations have no single head revision: {exc}") from None
    if head is None:
        raise BackupError("the migrations define no revision")
    return head


def _lineage(script: ScriptDirectory, revision: str) -> set[str] | None:
    """``revision`` and every revision before it; None when the scripts do not know it."""
    try:
        return {entry.revision for entry in script.iterate_revisions(revision, "base")}
    except Exception:  # alembic raises several types (CommandError, RevisionError, KeyError)
        return None


def compare_revisions(backup: str, code: str, script: ScriptDirectory | None = None) -> str:
    """How the backup's revision stands to the code's, in words (``older``, ``newer``, …)."""
    script = script or service_script_directory()
    backup_lineage = _lineage(script, backup)
    if backup_lineage is None:
        return (
            "this code does not know the backup's revision "
            "(the backup is newer, or from another branch)"
        )
    code_lineage = _lineage(script, code) or {code}
    if backup in code_lineage:
        return "the backup is older than the code"
    if code in backup_lineage:
        return "the backup is newer than the code"
    return "the two revisions are on different branches"


@guarded
def check_revision(
    backup: str, *, service_version: str | None = None, script: ScriptDirectory | None = None
) -> None:
    """Refuse (one line) a snapshot whose schema revision is not the code's head revision."""
    script = script or service_script_directory()
    code = code_revision(script)
    if backup == code:
        return
    relation = compare_revisions(backup, code, script)
    wrote = f" (service version {service_version})" if service_version else ""
    then = ", then upgrade to this release" if relation.endswith("older than the code") else ""
    raise BackupError(
        f"backup at revision {backup}, code at {code}: {relation}; "
        f"restore it with the release that wrote it{wrote}{then}"
    )
