"""The manifest of a backup, ``manifest.json``: what a backup holds, and how to check it.

A msgspec struct that refuses unknown keys; read and written with one-line errors. It is the
last file a snapshot writes, so a directory whose manifest is readable holds a whole snapshot.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta, Struct

from cap_ops.backup.errors import BackupError, guarded
from cap_ops.backup.fsutil import write_private_atomic
from cap_ops.backup.timestamps import parse_rfc3339
from cap_verifier.typed_yaml import describe

__all__ = [
    "MANIFEST_NAME",
    "REGISTRY_FILES",
    "FileEntry",
    "Manifest",
    "RegistryKind",
    "read_manifest",
    "write_manifest",
]

MANIFEST_NAME: Final = "manifest.json"
MAX_MANIFEST_BYTES: Final = 1 << 20
_KEY_PROBLEM: Final = re.compile(r"(?P<detail>.*) - at `key` in `\$\.?(?P<where>[^`]*)`", re.S)

RegistryKind = Literal["sqlite", "postgresql"]

REGISTRY_FILES: Final[dict[RegistryKind, str]] = {
    "sqlite": "registry.db",
    "postgresql": "registry.dump",
}
"""The snapshot file of each backend, inside the backup directory."""

FileName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=255)]
"""A plain file name inside the backup directory (no path, not hidden)."""


class FileEntry(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The checksum and the size of one file of a backup."""

    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Meta(ge=0)]


class Manifest(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a backup holds: its files (sha256, size) and the registry snapshot's facts."""

    format: Literal[1]
    created_at: str
    """When the snapshot was taken: RFC 3339 UTC, ``2026-01-01T02:00:00Z``."""
    service_version: Annotated[str, Meta(min_length=1, max_length=100)]
    """``cap_verifier.__version__`` of the code that took the snapshot."""
    schema_revision: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]+$", max_length=64)]
    """The Alembic revision stored in the snapshot (its ``alembic_version`` row)."""
    registry: RegistryKind
    files: dict[FileName, FileEntry]
    tables: dict[Annotated[str, Meta(min_length=1, max_length=255)], Annotated[int, Meta(ge=0)]]
    """Row count of every table of the snapshot, ``alembic_version`` excluded."""

    def __post_init__(self) -> None:
        """Refuse a bad time, a missing registry file, a listed manifest or alembic_version."""
        try:
            parse_rfc3339(self.created_at)
        except ValueError as exc:
            raise ValueError(f"created_at: {exc}") from None
        registry_file = REGISTRY_FILES[self.registry]
        if registry_file not in self.files:
            raise ValueError(f"files: {registry_file} (the {self.registry} snapshot) is missing")
        if MANIFEST_NAME in self.files:
            raise ValueError(f"files: {MANIFEST_NAME} cannot list itself")
        if "alembic_version" in self.tables:
            raise ValueError("tables: alembic_version is not counted")

    @property
    def registry_file(self) -> str:
        """The name of the snapshot file: ``registry.db`` or ``registry.dump``."""
        return REGISTRY_FILES[self.registry]


def encode_manifest(manifest: Manifest) -> bytes:
    """The JSON text of ``manifest``: indented, files and tables sorted by name."""
    ordered = msgspec.structs.replace(
        manifest,
        files=dict(sorted(manifest.files.items())),
        tables=dict(sorted(manifest.tables.items())),
    )
    return msgspec.json.format(msgspec.json.encode(ordered), indent=2) + b"\n"


def decode_manifest(data: bytes, label: str) -> Manifest:
    """``data`` as a manifest; a bad one is one line naming ``label`` and the key."""
    try:
        return msgspec.json.decode(data, type=Manifest)
    except msgspec.ValidationError as exc:
        key_problem = _KEY_PROBLEM.fullmatch(str(exc))
        if key_problem is not None:  # msgspec names the mapping, not the key
            where, detail = key_problem["where"] or "manifest", key_problem["detail"]
            raise BackupError(f"{label}: {where}: bad key: {detail}") from None
        raise BackupError(f"{label}: {describe(exc)}") from None
    except msgspec.DecodeError:
        raise BackupError(f"{label}: not valid JSON") from None


@guarded
def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Write ``directory/manifest.json`` atomically (temporary file, fsync, rename; 0600).

    The text is checked as a reader will check it first (field bounds and patterns are only
    enforced when decoding), so a manifest that could not be read back is never written.
    """
    path = directory / MANIFEST_NAME
    data = encode_manifest(manifest)
    decode_manifest(data, f"{path} (not written)")
    write_private_atomic(path, data)
    return path


@guarded
def read_manifest(directory: Path) -> Manifest:
    """Read and check ``directory/manifest.json``; one-line BackupError when it is bad."""
    path = directory / MANIFEST_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BackupError(f"{path}: missing") from None
    except OSError as exc:
        raise BackupError(f"{path}: cannot read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BackupError(f"{path}: not a regular file")
        if info.st_size > MAX_MANIFEST_BYTES:
            raise BackupError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes")
        data = file.read(MAX_MANIFEST_BYTES + 1)
    return decode_manifest(data, str(path))
