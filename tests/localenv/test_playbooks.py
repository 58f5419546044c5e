"""The runbooks (playbooks/), run for real against the local environment of `make up`.

Backups and restores of the served SQLite registry (through the make wrappers), of a registry on
the PostgreSQL at 127.0.0.1:5432, and through an S3-compatible server (moto, on a free loopback
port); damaged, truncated and interrupted backups; retention; the rotations and the cache flush
while a bounded load runs (zero failed requests). testinfra checks what the runs leave behind.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sqlite3
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cap_ops.backup import list_backups, newest_good, read_manifest, verify_files
from cap_ops.backup.timestamps import stamp
from cap_ops.localenv import supervisor
from cap_ops.localenv.layout import Layout
from cap_ops.poll import wait_until
from cap_verifier.registry import Registry
from support.playbooks import (
    BIN,
    OUTPUTS,
    PLAYBOOKS,
    ROOT,
    Load,
    Run,
    during,
    extra_vars,
    playbook_command,
    playbook_env,
    run_playbook,
    scan_for_secrets,
)
from support.registry_data import TABLES, store_policies, table_rows
from support.s3 import new_bucket, s3_client
from support.vectors import LKSG_YAML

pytestmark = [pytest.mark.localenv, pytest.mark.slow]

SUPERVISORCTL = str(BIN / "supervisorctl")
POLICY_TABLES = ("policies_v1", "policy_blobs", "policies_v2")


# ------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def age_recipient(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An age key pair made for the test; the recipient (public key) encrypts the backups."""
    key = tmp_path_factory.mktemp("age") / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    for line in key.read_text().splitlines():
        if line.startswith("# public key: "):
            return line.removeprefix("# public key: ")
    raise AssertionError("age-keygen wrote no public key")


def make(target: str, *args: str, **env: str) -> Run:
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), target, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, **env},
    )
    OUTPUTS.append(result.stdout + result.stderr)
    return Run(result.returncode, result.stdout, result.stderr)


def backup_name(run: Run) -> str:
    assert run.returncode == 0, run.failure
    return run.report.split("backup ", 2)[2].split(" ", 1)[0]


def rows_of(directory: Path, tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of a backup's SQLite snapshot, read from a copy (the backup stays intact)."""
    copy = tmp_path / f"read-{directory.name}.db"
    shutil.copyfile(directory / "registry.db", copy)
    return table_rows(f"sqlite:///{copy}")


def tls_context(env: dict[str, Any]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=env["ca_cert"])


def token(env: dict[str, Any], client: str = "all") -> str:
    entry = env["clients"][client]
    response = httpx.post(
        env["token_url"],
        data={"grant_type": "client_credentials"},
        auth=(entry["client_id"], entry["client_secret"]),
        verify=tls_context(env),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def current_env(layout: Layout) -> dict[str, Any]:
    return dict(json.loads(layout.env_json.read_text()))


def compile_v2(env: dict[str, Any], name: str) -> str:
    """Store a new PolicyV2 ``<name>-<random>``; its id. New in every run: the local
    environment's registry outlives a test run, and a restore must undo a policy it never had."""
    policy_id = f"{name}-{uuid.uuid4().hex[:12]}"
    source = LKSG_YAML.replace("id: lksg.v1", f"id: {policy_id}", 1)
    assert source != LKSG_YAML
    response = httpx.post(
        f"{env['verifier_url']}/policy/v2/compile",
        json={"policy_yaml": base64.b64encode(source.encode()).decode(), "persist": True},
        headers={"Authorization": f"Bearer {token(env)}"},
        verify=tls_context(env),
    )
    assert response.status_code == 200, response.text
    return policy_id


def served(env: dict[str, Any], rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, int]:
    """HTTP status of every policy of ``rows`` read through the API (v1 by hash, v2 by id)."""
    headers = {"Authorization": f"Bearer {token(env)}"}
    statuses: dict[str, int] = {}
    with httpx.Client(verify=tls_context(env), headers=headers) as client:
        for row in rows["policies_v1"]:
            statuses[f"v1 {row[0]}"] = client.get(
                f"{env['verifier_url']}/policy/{row[0]}"
            ).status_code
        for row in rows["policies_v2"]:
            url = f"{env['verifier_url']}/policy/v2/{row[0]}"
            statuses[f"v2 {row[0]}"] = client.get(url).status_code
    return statuses


def verifier_pid(layout: Layout) -> int:
    return supervisor.pids(layout)["cap-verifier"]


# ------------------------------------------------------------------------ backup and restore


@pytest.mark.orr("4.4-01", "4.4-02", "4.4-03", "4.4-07", "4.4-09")
def test_backup_change_restore_gives_back_the_backup_row_for_row(
    local_env: dict[str, Any], layout: Layout, age_recipient: str, tmp_path: Path
) -> None:
    assert make("smoke").returncode == 0  # its fixed policies are then part of the backup
    name = backup_name(make("backup", AGE_RECIPIENT=age_recipient))
    backup = layout.backups / name
    saved = rows_of(backup, tmp_path)
    assert saved["policies_v2"], "the backup holds no PolicyV2 policies"
    assert {"registry.db", "config.tar.age"} <= set(read_manifest(backup).files)

    after = compile_v2(local_env, "lksg.after-backup")  # a change the restore must undo
    assert after not in {row[0] for row in saved["policies_v2"]}
    assert after in {row[0] for row in table_rows(layout.registry_url)["policies_v2"]}

    restored = make("restore", f"BACKUP={name}")
    assert restored.returncode == 0, restored.failure
    assert f"restored {name}" in restored.report
    assert "RTO" in restored.report

    now = table_rows(layout.registry_url)
    for table in (*POLICY_TABLES, "alembic_version"):
        assert now[table] == saved[table], table
    extra = set(now["verifications"]) - set(saved["verifications"])
    assert set(saved["verifications"]) <= set(now["verifications"])
    assert len(extra) == 1, "only the restore's own smoke verification is new"
    assert set(served(local_env, saved).values()) == {200}
    headers = {"Authorization": f"Bearer {token(local_env)}"}
    gone = httpx.get(
        f"{local_env['verifier_url']}/policy/v2/{after}",
        headers=headers,
        verify=tls_context(local_env),
    )
    assert gone.status_code == 404
    kept = list(layout.data.glob("registry.db.before-restore-*"))
    assert kept, "the data replaced is kept beside the registry"


def test_the_configuration_archive_decrypts_with_the_operators_key_only(
    local_env: dict[str, Any], layout: Layout, tmp_path: Path
) -> None:
    key = tmp_path / "key.txt"
    other = tmp_path / "other.txt"
    for path in (key, other):
        subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    recipient = key.read_text().split("# public key: ", 1)[1].split()[0]
    root = tmp_path / "backups"
    run = run_playbook(
        "backup.yml", *extra_vars({"backup_root": str(root), "age_recipient": recipient})
    )
    backup = root / backup_name(run)
    archive = backup / "config.tar.age"
    assert b"client_secret" not in archive.read_bytes()
    plain = subprocess.run(
        ["age", "--decrypt", "--identity", str(key), str(archive)], capture_output=True, check=True
    ).stdout
    listing = subprocess.run(
        ["tar", "--list", "--file=-"], input=plain, capture_output=True, check=True
    ).stdout.decode()
    assert ".local/env.json" in listing
    assert ".local/pki/server.key" in listing
    refused = subprocess.run(
        ["age", "--decrypt", "--identity", str(other), str(archive)],
        capture_output=True,
        check=False,
    )
    assert refused.returncode != 0
    assert not list(backup.glob("*key*")), "no key beside the backup"


def test_backup_without_a_recipient_is_refused_in_one_line(
    local_env: dict[str, Any], tmp_path: Path
) -> None:
    root = tmp_path / "backups"
    run = run_playbook(
        "backup.yml",
        *extra_vars({"backup_root": str(root), "age_recipient": "", "age_recipients_file": ""}),
    )
    assert run.returncode != 0
    assert "set AGE_RECIPIENT=age1" in run.failure
    assert not root.exists() or not any(root.iterdir())


@pytest.mark.orr("4.4-01")
def test_a_backup_taken_under_load_is_consistent(
    local_env: dict[str, Any], layout: Layout, age_recipient: str, tmp_path: Path
) -> None:
    root = tmp_path / "backups"
    load = Load(layout.env_json, max_requests=600, max_seconds=30)
    with load:
        run = run_playbook(
            "backup.yml", *extra_vars({"backup_root": str(root), "age_recipient": age_recipient})
        )
    assert run.returncode == 0, run.failure
    assert load.requests > 50
    assert not load.failures, load.failures[:5]
    backup = root / backup_name(run)
    manifest = verify_files(backup)
    copy = tmp_path / "snapshot.db"
    shutil.copyfile(backup / "registry.db", copy)
    with closing(sqlite3.connect(copy)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    assert counts == manifest.tables


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(bytes(data[: len(data) // 2]))


@pytest.fixture(scope="module")
def good_backup(
    local_env: dict[str, Any], age_recipient: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    root = tmp_path_factory.mktemp("good") / "backups"
    run = run_playbook(
        "backup.yml", *extra_vars({"backup_root": str(root), "age_recipient": age_recipient})
    )
    return root / backup_name(run)


@pytest.mark.orr("4.4-07")
@pytest.mark.parametrize(
    ("file", "how"),
    [
        ("registry.db", "flip"),
        ("registry.db", "truncate"),
        ("config.tar.age", "flip"),
        ("config.tar.age", "truncate"),
        ("manifest.json", "flip"),
    ],
)
def test_a_damaged_backup_is_refused_and_nothing_changes(
    layout: Layout, good_backup: Path, tmp_path: Path, file: str, how: str
) -> None:
    root = tmp_path / "backups"
    copy = root / good_backup.name
    shutil.copytree(good_backup, copy)
    _damage(copy / file, how)
    before, pid = table_rows(layout.registry_url), verifier_pid(layout)
    kept_before = set(layout.data.glob("registry.db.before-restore-*"))

    run = run_playbook("restore.yml", *extra_vars({"backup_root": str(root)}))

    assert run.returncode != 0
    assert file in run.failure or (file == "manifest.json" and "manifest" in run.failure)
    assert "\\n" not in run.failure
    assert table_rows(layout.registry_url) == before
    assert verifier_pid(layout) == pid, "the verifier was not stopped"
    assert set(layout.data.glob("registry.db.before-restore-*")) == kept_before


@pytest.mark.orr("4.4-07")
def test_a_backup_of_another_schema_revision_is_refused_naming_both(
    layout: Layout, good_backup: Path, tmp_path: Path
) -> None:
    root = tmp_path / "backups"
    copy = root / good_backup.name
    shutil.copytree(good_backup, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["schema_revision"] = "9999"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    before = table_rows(layout.registry_url)
    run = run_playbook("restore.yml", *extra_vars({"backup_root": str(root)}))
    assert run.returncode != 0
    assert "9999" in run.failure, run.failure
    assert "0001" in run.failure, run.failure
    assert table_rows(layout.registry_url) == before


def test_an_interrupted_backup_leaves_no_visible_backup_and_the_others_intact(
    local_env: dict[str, Any], good_backup: Path, age_recipient: str, tmp_path: Path
) -> None:
    root = tmp_path / "backups"
    shutil.copytree(good_backup, root / good_backup.name)
    process = subprocess.Popen(
        playbook_command(
            "backup.yml",
            *extra_vars({"backup_root": str(root), "age_recipient": age_recipient}),
        ),
        cwd=PLAYBOOKS,
        env=playbook_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: any(root.glob(".partial-*")), 60, "the backup to start writing", 0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert [b.path.name for b in list_backups(root)] == [good_backup.name]
    verify_files(root / good_backup.name)
    newest = newest_good(root)
    assert newest is not None
    assert newest.path.name == good_backup.name


@pytest.mark.orr("4.4-05")
def test_retention_prunes_by_age_and_keeps_the_newest_good_backup(
    local_env: dict[str, Any], good_backup: Path, age_recipient: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    root = tmp_path / "backups"
    ages = {"old": 40, "recent": 10}
    names = {label: stamp(now - timedelta(days=days)) for label, days in ages.items()}
    for name in names.values():
        shutil.copytree(good_backup, root / name)
    run = run_playbook(
        "backup.yml", *extra_vars({"backup_root": str(root), "age_recipient": age_recipient})
    )
    new = backup_name(run)
    assert "pruned 1 local" in run.report
    assert sorted(b.path.name for b in list_backups(root)) == sorted([names["recent"], new])

    # Only old backups left, the newest of them damaged: the newest good one stays, however old.
    only_old = tmp_path / "only-old"
    olds = [stamp(now - timedelta(days=days)) for days in (50, 40, 35)]
    for name in olds:
        shutil.copytree(good_backup, only_old / name)
    _damage(only_old / olds[-1] / "registry.db", "flip")
    result = subprocess.run(
        [
            str(BIN / "ansible"),
            "localhost",
            "-m",
            "backup_prune",
            "-a",
            json.dumps({"root": str(only_old), "keep_days": 30}),
        ],
        cwd=PLAYBOOKS,
        env=playbook_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout
    assert [b.path.name for b in list_backups(only_old)] == [olds[1]]


# ----------------------------------------------------------------------- S3 and PostgreSQL


@pytest.mark.orr("4.4-06")
def test_the_s3_target_round_trip(
    local_env: dict[str, Any],
    layout: Layout,
    age_recipient: str,
    s3_server: dict[str, str],
    tmp_path: Path,
) -> None:
    name_of_bucket = new_bucket()
    s3 = s3_client(s3_server, bucket=name_of_bucket)
    url = f"s3://{name_of_bucket}/local/registry"
    env = playbook_env(**s3_server)
    root = tmp_path / "backups"
    run = run_playbook(
        "backup.yml",
        *extra_vars({"backup_root": str(root), "age_recipient": age_recipient, "backup_url": url}),
        env=env,
    )
    name = backup_name(run)
    assert f"copied to {url}/{name}" in run.report
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=name_of_bucket)["Contents"]}
    assert {
        f"local/registry/{name}/{f}" for f in ("registry.db", "config.tar.age", "manifest.json")
    } == keys
    saved = rows_of(root / name, tmp_path)

    shutil.rmtree(root)  # the local copy is gone: the restore must come from S3
    compile_v2(local_env, "lksg.after-s3-backup")
    fresh = tmp_path / "fetched"
    restored = run_playbook(
        "restore.yml", *extra_vars({"backup_root": str(fresh), "backup_url": url}), env=env
    )
    assert restored.returncode == 0, restored.failure
    verify_files(fresh / name)
    now = table_rows(layout.registry_url)
    for table in POLICY_TABLES:
        assert now[table] == saved[table], table
    assert s3_server["AWS_SECRET_ACCESS_KEY"] not in run.stdout + restored.stdout


@pytest.mark.orr("4.4-01", "4.4-07")
def test_the_postgresql_path_backup_and_restore(
    postgres_url: str, tmp_path: Path, age_recipient: str
) -> None:
    registry = Registry(postgres_url)
    try:
        registry.migrate()
        store_policies(registry, "pg", count=3)
    finally:
        registry.close()
    saved = table_rows(postgres_url)
    root = tmp_path / "backups"
    common = {"registry_url": postgres_url, "backup_root": str(root)}
    run = run_playbook("backup.yml", *extra_vars({**common, "age_recipient": age_recipient}))
    name = backup_name(run)
    assert read_manifest(root / name).registry == "postgresql"
    registry = Registry(postgres_url)
    try:
        store_policies(registry, "after", count=1)
    finally:
        registry.close()
    assert table_rows(postgres_url) != saved
    restored = run_playbook("restore.yml", *extra_vars(common))
    assert restored.returncode == 0, restored.failure
    assert table_rows(postgres_url) == saved


# ------------------------------------------------------------------ the schedule, testinfra


@pytest.fixture
def schedule_installed(layout: Layout) -> Iterator[Path]:
    """The backup schedule's supervisord program, removed again after the test."""
    conf = layout.supervisor_include_dir / "backup-schedule.conf"
    had = conf.read_bytes() if conf.exists() else None
    try:
        yield conf
    finally:
        if had is None:
            conf.unlink(missing_ok=True)
        else:
            conf.write_bytes(had)
        subprocess.run(
            [SUPERVISORCTL, "-c", str(layout.supervisor_conf), "update"],
            capture_output=True,
            check=False,
        )


@pytest.mark.orr("4.4-04", "4.4-10")
def test_the_daily_schedule_is_installed_and_backups_are_private(
    host: Any, layout: Layout, age_recipient: str, schedule_installed: Path
) -> None:
    run = make("backup", "ANSIBLE_ARGS=-e schedule=true", AGE_RECIPIENT=age_recipient)
    name = backup_name(run)
    program = host.supervisor(
        "backup-schedule",
        supervisorctl_path=SUPERVISORCTL,
        supervisorctl_conf=str(layout.supervisor_conf),
    )
    assert program.is_running, program.status
    conf = host.file(str(schedule_installed))
    assert conf.mode == 0o600
    assert "--daily-at 02:30" in conf.content_string
    assert age_recipient in conf.content_string  # the public key; no private key anywhere
    assert "AGE-SECRET-KEY" not in conf.content_string

    user = layout.service_user or host.user().name
    backup = host.file(str(layout.backups / name))
    assert backup.is_directory
    assert backup.mode == 0o700
    assert backup.user == user
    for entry in (layout.backups / name).iterdir():
        file = host.file(str(entry))
        assert file.mode == 0o600, entry.name
        assert file.user == user, entry.name
    manifest = verify_files(layout.backups / name)
    for file_name, listed in manifest.files.items():
        assert host.file(str(layout.backups / name / file_name)).sha256sum == listed.sha256


# ------------------------------------------------------------- rotations and flush, under load


def secrets_of(env: dict[str, Any]) -> list[str]:
    return [client["client_secret"] for client in env["clients"].values()]


def assert_no_secret_leaked(layout: Layout, runs: list[Run], secrets: list[str]) -> None:
    texts = [run.stdout + run.stderr for run in runs]
    texts += [log.read_text(errors="replace") for log in layout.logs.glob("*.log")]
    assert scan_for_secrets(texts, secrets) == []


@pytest.mark.orr("2.3-05", "4.1-07")
def test_secret_rotation_under_load_fails_no_request(
    local_env: dict[str, Any], layout: Layout
) -> None:
    before = current_env(layout)
    old = before["clients"]["all"]["client_secret"]
    load = Load(layout.env_json, max_seconds=30)
    run = during(load, "rotate-oauth2-secret.yml", *extra_vars({"grace_seconds": 10}))
    assert run.returncode == 0, run.failure
    assert "the old secret expired after 10 s and is refused" in run.report
    assert load.requests >= 100
    assert load.tokens >= 8
    assert load.failures == []
    after = current_env(layout)
    new = after["clients"]["all"]["client_secret"]
    assert new != old
    refused = httpx.post(
        after["token_url"],
        data={"grant_type": "client_credentials"},
        auth=(after["clients"]["all"]["client_id"], old),
        verify=tls_context(after),
    )
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert token(after)  # the new secret works
    assert_no_secret_leaked(layout, [run], [old, new, *secrets_of(after)])


def test_secret_rotation_refuses_a_bad_grace_or_client_and_changes_nothing(
    local_env: dict[str, Any], layout: Layout
) -> None:
    before = layout.env_json.read_bytes()
    for bad, expected in (
        ({"grace_seconds": "ten"}, "grace_seconds must be whole seconds"),
        ({"grace_seconds": 0}, "grace_seconds must be whole seconds"),
        ({"client": "nobody"}, "unknown client 'nobody'"),
    ):
        run = run_playbook("rotate-oauth2-secret.yml", *extra_vars(bad))
        assert run.returncode != 0
        assert expected in run.failure, run.failure
    assert layout.env_json.read_bytes() == before
    assert token(current_env(layout))


def jwks_kids(env: dict[str, Any]) -> list[str]:
    response = httpx.get(env["jwks_url"], verify=tls_context(env))
    return [key["kid"] for key in response.json()["keys"]]


@pytest.mark.orr("4.1-07")
def test_signing_key_rotation_under_load_fails_no_request(
    local_env: dict[str, Any], layout: Layout
) -> None:
    env = current_env(layout)
    old_kid = jwks_kids(env)[0]
    load = Load(layout.env_json, max_seconds=30)
    run = during(load, "rotate-signing-key.yml")
    assert run.returncode == 0, run.failure
    assert load.requests >= 100
    assert load.tokens >= 8
    assert load.failures == []
    kids = jwks_kids(env)
    assert kids[1] == old_kid
    assert kids[0] != old_kid
    assert f"replaced by {kids[0]}" in run.report
    assert_no_secret_leaked(layout, [run], secrets_of(current_env(layout)))


def served_serial(env: dict[str, Any]) -> int:
    from cryptography import x509

    host, port = env["verifier_url"].removeprefix("https://").split(":")
    pem = ssl.get_server_certificate((host, int(port)), ca_certs=env["ca_cert"])
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


@pytest.mark.orr("4.1-06", "4.1-07")
def test_tls_rotation_under_load_fails_no_request(
    host: Any, local_env: dict[str, Any], layout: Layout
) -> None:
    from cryptography import x509

    env = current_env(layout)
    before = served_serial(env)
    load = Load(layout.env_json, max_seconds=40, fresh_connections=True)
    run = during(load, "rotate-tls.yml")
    assert run.returncode == 0, run.failure
    assert load.requests >= 100
    assert load.failures == []
    server_cert = layout.pki / "server.crt"
    on_disk = x509.load_pem_x509_certificate(server_cert.read_bytes())
    assert served_serial(env) == on_disk.serial_number != before
    assert on_disk.not_valid_after_utc - datetime.now(UTC) > timedelta(days=30)
    assert f"new certificate serial {on_disk.serial_number} served" in run.report
    key = host.file(str(layout.pki / "server.key"))
    assert key.mode == 0o600
    assert key.user == (layout.service_user or host.user().name)
    assert_no_secret_leaked(layout, [run], secrets_of(current_env(layout)))


@pytest.mark.orr("4.1-06")
def test_tls_check_mode_reports_days_left_and_fails_under_the_minimum(
    local_env: dict[str, Any], layout: Layout
) -> None:
    files = {path.read_bytes() for path in layout.pki.glob("*.crt")}
    ok = run_playbook("rotate-tls.yml", "--tags", "check")
    assert ok.returncode == 0, ok.failure
    assert ok.stdout.count("days left") == 3
    short = run_playbook("rotate-tls.yml", "--tags", "check", *extra_vars({"tls_min_days": 400}))
    assert short.returncode != 0
    assert "certificates expiring within 400 days" in short.failure
    assert {path.read_bytes() for path in layout.pki.glob("*.crt")} == files  # nothing renewed


def cache_entries(env: dict[str, Any]) -> float:
    metrics = httpx.get(f"{env['verifier_url']}/metrics", verify=tls_context(env)).text
    for line in metrics.splitlines():
        if line.startswith("cap_verifier_cache_entries "):
            return float(line.split()[1])
    raise AssertionError("no cap_verifier_cache_entries")


@pytest.mark.orr("4.1-08", "4.6-05", "4.6-06")
def test_cache_flush_under_load_keeps_every_policy(
    local_env: dict[str, Any], layout: Layout
) -> None:
    env = current_env(layout)
    rows = table_rows(layout.registry_url)
    assert set(served(env, rows).values()) == {200}  # warms the cache
    assert cache_entries(env) > 0
    load = Load(layout.env_json, max_seconds=40)
    run = during(load, "flush-cache.yml")
    assert run.returncode == 0, run.failure
    assert "workers replaced" in run.report
    assert load.requests >= 100
    assert load.failures == []
    assert set(served(env, table_rows(layout.registry_url)).values()) == {200}


# ----------------------------------------------------------------------------- check mode


def environment_state(layout: Layout) -> dict[str, Any]:
    """What an operation could change: registry rows, secrets, keys, certificates, backups,
    the verifier's processes."""
    files = [
        layout.env_json,
        layout.idp_dir / "clients.yaml",
        layout.idp_keys_dir / "keys.json",
        *sorted(layout.pki.glob("*")),
    ]
    return {
        "rows": table_rows(layout.registry_url),
        "files": {str(path): path.read_bytes() for path in files},
        "backups": sorted(p.name for p in layout.backups.glob("*")),
        "pids": supervisor.pids(layout),
    }


@pytest.mark.parametrize(
    ("playbook", "variables"),
    [
        ("backup.yml", {"age_recipient": "age1" + "q" * 58}),
        ("restore.yml", {}),
        ("rotate-oauth2-secret.yml", {"grace_seconds": 5}),
        ("rotate-signing-key.yml", {}),
        ("rotate-tls.yml", {}),
        ("flush-cache.yml", {}),
    ],
)
def test_check_mode_changes_nothing(
    local_env: dict[str, Any], layout: Layout, playbook: str, variables: dict[str, Any]
) -> None:
    before = environment_state(layout)
    run = run_playbook(playbook, "--check", *extra_vars(variables))
    assert run.returncode == 0, run.failure
    assert "check mode, nothing changed" in run.report
    assert environment_state(layout) == before
