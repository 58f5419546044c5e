"""Backups in S3-compatible object storage: ``s3://<bucket>/<prefix>/<stamp>/<file>``.

A local backup (published, its files checked) is uploaded file by file, ``manifest.json``
last: a backup without its manifest is incomplete, and readers ignore it, so a half-uploaded
backup is never taken for one. Downloads go through a local partial directory and are
published locally only once every file matches the manifest. Retention works as on disk: older
than the retention, except the newest complete backup.

Credentials and the endpoint come from the standard AWS environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` …); nothing here logs or returns them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from cap_ops.backup.checksums import verify_files
from cap_ops.backup.errors import BackupError, guarded
from cap_ops.backup.fsutil import remove_quietly
from cap_ops.backup.manifest import MANIFEST_NAME, Manifest, decode_manifest
from cap_ops.backup.store import STALE_PARTIAL_AGE, partial_directory, publish
from cap_ops.backup.timestamps import parse_stamp, utc

S3Client = Any  # boto3's client has no static type (no stubs in the lock file)

__all__ = ["RemoteBackup", "S3Location", "download", "list_remote", "prune_remote", "upload"]

_URL: Final = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?P<prefix>/[^\s]*)?$")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str
    """The key prefix, without leading or trailing slash ('' for the bucket's root)."""

    @classmethod
    def parse(cls, url: str) -> S3Location:
        match = _URL.fullmatch(url)
        if match is None:
            raise BackupError(f"{url!r}: expected s3://<bucket>[/<prefix>]")
        return cls(match["bucket"], (match["prefix"] or "").strip("/"))

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


@dataclass(frozen=True)
class RemoteBackup:
    """One backup under the location: its name (the stamp) and whether it is complete."""

    name: str
    complete: bool
    """``manifest.json`` is there and every file it lists, with the listed size."""
    manifest: Manifest | None


def _client() -> S3Client:
    return boto3.client("s3")


def _s3_error(exc: Exception, what: str) -> BackupError:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return BackupError(f"{what}: {error.get('Code', '?')}: {error.get('Message', '')}")
    return BackupError(f"{what}: {type(exc).__name__}: {exc}")


@guarded
def upload(directory: Path, url: str, client: S3Client | None = None) -> str:
    """Upload the published backup ``directory`` (files checked first), manifest last; the
    URL of the uploaded backup."""
    s3, where = client or _client(), S3Location.parse(url)
    manifest = verify_files(directory)
    name = directory.name
    try:
        for file_name in [*sorted(manifest.files), MANIFEST_NAME]:
            s3.upload_file(str(directory / file_name), where.bucket, where.key(name, file_name))
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, f"upload to {where}") from None
    return f"{where}/{name}"


def _objects(s3: S3Client, where: S3Location) -> dict[str, int]:
    """Key (relative to the prefix) -> size, of every object under the location."""
    found: dict[str, int] = {}
    start = where.key() + "/" if where.prefix else ""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=where.bucket, Prefix=start):
        for item in page.get("Contents", []):
            found[item["Key"][len(start) :]] = item["Size"]
    return found


@guarded
def list_remote(url: str, client: S3Client | None = None) -> list[RemoteBackup]:
    """The backups under ``url`` (names of the stamp form only), oldest first."""
    s3, where = client or _client(), S3Location.parse(url)
    try:
        objects = _objects(s3, where)
        names = sorted({key.split("/", 1)[0] for key in objects if "/" in key})
        backups: list[RemoteBackup] = []
        for name in names:
            if parse_stamp(name) is None:
                continue
            manifest = None
            if f"{name}/{MANIFEST_NAME}" in objects:
                body = s3.get_object(Bucket=where.bucket, Key=where.key(name, MANIFEST_NAME))
                try:
                    manifest = decode_manifest(body["Body"].read(), f"{where}/{name}")
                except BackupError:
                    manifest = None
            complete = manifest is not None and all(
                objects.get(f"{name}/{file_name}") == entry.size
                for file_name, entry in manifest.files.items()
            )
            backups.append(RemoteBackup(name, complete, manifest))
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, f"list {where}") from None
    return backups


@guarded
def download(url: str, name: str | None, root: Path, client: S3Client | None = None) -> Path:
    """Fetch backup ``name`` (default: the newest complete one) into ``root`` and publish it
    there once its files match its manifest; the local path. A backup already in ``root`` is
    checked and reused."""
    s3, where = client or _client(), S3Location.parse(url)
    complete = [b for b in list_remote(url, s3) if b.complete]
    chosen = [b for b in complete if name is None or b.name == name]
    if not chosen:
        raise BackupError(
            f"{where}: no complete backup" + (f" named {name}" if name is not None else "")
        )
    backup = chosen[-1]
    local = root / backup.name
    if local.is_dir():
        verify_files(local)
        return local
    assert backup.manifest is not None
    partial = partial_directory(root)
    try:
        for file_name in [*sorted(backup.manifest.files), MANIFEST_NAME]:
            target = partial / file_name
            s3.download_file(where.bucket, where.key(backup.name, file_name), str(target))
            target.chmod(0o600)
        return publish(partial, root)
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, f"download {where}/{backup.name}") from None
    finally:
        if partial.exists():
            for leftover in partial.iterdir():
                remove_quietly(leftover)
            partial.rmdir()


@guarded
def prune_remote(
    url: str, keep_days: int, now: datetime, client: S3Client | None = None
) -> list[str]:
    """Delete backups older than ``keep_days`` (by name), never the newest complete one, and
    incomplete ones older than a day (an upload that died); the names deleted."""
    if keep_days < 0:
        raise BackupError(f"keep_days must be 0 or more, not {keep_days}")
    s3, where = client or _client(), S3Location.parse(url)
    moment = utc(now)
    backups = list_remote(url, s3)
    complete = [b for b in backups if b.complete]
    keep = complete[-1].name if complete else None
    doomed: list[str] = []
    for backup in backups:
        taken = parse_stamp(backup.name)
        if taken is None or backup.name == keep:
            continue
        age_limit = timedelta(days=keep_days) if backup.complete else STALE_PARTIAL_AGE
        if taken < moment - age_limit:
            doomed.append(backup.name)
    try:
        objects = _objects(s3, where)
        for name in doomed:
            keys = sorted(k for k in objects if k.startswith(f"{name}/"))
            # the manifest first: a backup being deleted stops counting as one at once
            keys.sort(key=lambda k: not k.endswith(f"/{MANIFEST_NAME}"))
            for key in keys:
                s3.delete_object(Bucket=where.bucket, Key=where.key(key))
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, f"prune {where}") from None
    return doomed
