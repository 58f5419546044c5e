"""`cap_ops.backup.s3`: backups in S3-compatible object storage, against a real S3 API (moto's
server on a free loopback port): manifest last, incomplete uploads ignored, downloads checked
before they are published, retention that keeps the newest complete backup."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cap_ops.backup import (
    BackupError,
    list_backups,
    partial_directory,
    publish,
    snapshot,
    verify_files,
)
from cap_ops.backup.s3 import S3Location, download, list_remote, prune_remote, upload
from cap_ops.backup.timestamps import stamp
from cap_verifier.registry import Registry
from support.registry_data import store_policies
from support.s3 import new_bucket, s3_client

pytestmark = pytest.mark.orr("4.4-06")

PREFIX = "prod/registry"
NOW = datetime(2026, 11, 20, 3, 0, 0, tzinfo=UTC)


class Recording:
    """A real client that also records the order of the uploads."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.uploaded: list[str] = []

    def upload_file(self, filename: str, bucket: str, key: str) -> None:
        self.uploaded.append(key.rsplit("/", 1)[1])
        self.client.upload_file(filename, bucket, key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class Bucket:
    """A fresh bucket of the session's S3 server, and its backup location."""

    def __init__(self, env: dict[str, str]) -> None:
        self.name = new_bucket()
        self.client = s3_client(env, bucket=self.name)
        self.url = f"s3://{self.name}/{PREFIX}"

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=f"{PREFIX}/{key}", Body=body)

    def keys(self) -> set[str]:
        listing = self.client.list_objects_v2(Bucket=self.name)
        return {item["Key"] for item in listing.get("Contents", [])}


@pytest.fixture
def bucket(s3_server: dict[str, str]) -> Bucket:
    return Bucket(s3_server)


@pytest.fixture
def backup(tmp_path: Path) -> Path:
    """A published backup of a small SQLite registry filled by the service's code."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = Registry(url)
    registry.migrate()
    store_policies(registry, "s3")
    registry.close()
    root = tmp_path / "local"
    root.mkdir()
    partial = partial_directory(root)
    snapshot(url, partial)
    return publish(partial, root)


def copy_as(backup: Path, when: datetime, root: Path) -> Path:
    target = root / stamp(when)
    shutil.copytree(backup, target)
    return target


def test_upload_puts_every_file_then_the_manifest_last(bucket: Bucket, backup: Path) -> None:
    recording = Recording(bucket.client)
    uploaded = upload(backup, bucket.url, recording)
    assert uploaded == f"{bucket.url}/{backup.name}"
    assert recording.uploaded[-1] == "manifest.json"
    assert set(recording.uploaded) == {"registry.db", "manifest.json"}
    assert bucket.keys() == {f"{PREFIX}/{backup.name}/{n}" for n in recording.uploaded}
    (listed,) = list_remote(bucket.url, bucket.client)
    assert listed.name == backup.name
    assert listed.complete


def test_a_damaged_local_backup_is_not_uploaded(bucket: Bucket, backup: Path) -> None:
    data = bytearray((backup / "registry.db").read_bytes())
    data[100] ^= 0x01
    (backup / "registry.db").write_bytes(bytes(data))
    with pytest.raises(BackupError, match=r"registry\.db: sha256"):
        upload(backup, bucket.url, bucket.client)
    assert bucket.keys() == set()


def test_incomplete_uploads_are_not_backups(bucket: Bucket, backup: Path, tmp_path: Path) -> None:
    upload(backup, bucket.url, bucket.client)
    # an upload that died before its manifest, and one whose file is shorter than listed
    dead = stamp(NOW + timedelta(days=1))
    bucket.put(f"{dead}/registry.db", b"half")
    short = stamp(NOW + timedelta(days=2))
    bucket.put(f"{short}/registry.db", b"x")
    bucket.put(f"{short}/manifest.json", (backup / "manifest.json").read_bytes())
    bucket.put("notes/readme.txt", b"not a backup")

    listed = {b.name: b.complete for b in list_remote(bucket.url, bucket.client)}
    assert listed == {backup.name: True, dead: False, short: False}
    root = tmp_path / "fetched"
    root.mkdir()
    assert download(bucket.url, None, root, bucket.client).name == backup.name  # newest complete
    with pytest.raises(BackupError, match=f"no complete backup named {short}"):
        download(bucket.url, short, root, bucket.client)


def test_a_download_is_checked_before_it_is_published(
    bucket: Bucket, backup: Path, tmp_path: Path
) -> None:
    upload(backup, bucket.url, bucket.client)
    size = (backup / "registry.db").stat().st_size
    bucket.put(f"{backup.name}/registry.db", b"\0" * size)  # same size: only the sha256 tells
    root = tmp_path / "fetched"
    root.mkdir()
    with pytest.raises(BackupError, match=r"registry\.db: sha256 .* differs"):
        download(bucket.url, backup.name, root, bucket.client)
    assert os.listdir(root) == [], "nothing published, no partial left"


def test_a_good_download_is_published_and_verified(
    bucket: Bucket, backup: Path, tmp_path: Path
) -> None:
    upload(backup, bucket.url, bucket.client)
    root = tmp_path / "fetched"
    root.mkdir()
    fetched = download(bucket.url, backup.name, root, bucket.client)
    assert fetched == root / backup.name
    assert verify_files(fetched) == verify_files(backup)
    assert [b.path for b in list_backups(root)] == [fetched]
    assert all((fetched / n).stat().st_mode & 0o077 == 0 for n in os.listdir(fetched))
    assert download(bucket.url, backup.name, root, bucket.client) == fetched  # checked, reused


def test_retention_deletes_old_backups_but_never_the_newest_complete_one(
    bucket: Bucket, backup: Path, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    old = [NOW - timedelta(days=d) for d in (45, 40)]
    for when in old:
        upload(copy_as(backup, when, staging), bucket.url, bucket.client)
    stale_partial = stamp(NOW - timedelta(days=3))
    bucket.put(f"{stale_partial}/registry.db", b"x")
    fresh_partial = stamp(NOW - timedelta(hours=2))
    bucket.put(f"{fresh_partial}/registry.db", b"x")

    deleted = prune_remote(bucket.url, 30, NOW, bucket.client)

    # the 40-day-old one is the newest complete backup: kept, however old
    assert sorted(deleted) == sorted([stamp(old[0]), stale_partial])
    left = {b.name for b in list_remote(bucket.url, bucket.client)}
    assert left == {stamp(old[1]), fresh_partial}

    upload(copy_as(backup, NOW - timedelta(days=1), staging), bucket.url, bucket.client)
    assert prune_remote(bucket.url, 30, NOW, bucket.client) == [stamp(old[1])]


@pytest.mark.parametrize(
    "url", ["https://bucket/x", "s3://", "s3://UPPER/x", "s3://b/x y", "s3://a/prefix"]
)
def test_a_bad_location_is_one_line(url: str) -> None:
    with pytest.raises(BackupError, match="expected s3://<bucket>") as err:
        S3Location.parse(url)
    assert "\n" not in str(err.value)


def test_a_negative_retention_is_refused(bucket: Bucket) -> None:
    with pytest.raises(BackupError, match="keep_days must be 0 or more"):
        prune_remote(bucket.url, -1, NOW, bucket.client)
