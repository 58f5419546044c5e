"""Client secret rotation with a grace period: two active secrets, then one.

``rotate-secret --grace N`` keeps the replaced secret valid for N seconds as the client's
previous secret; ``secret-status`` says (JSON, no secret) whether one is active and until when.
Real argon2id hashes throughout; the end of a grace period is waited for with ``wait_until``
on the clock, then the refusal is asserted at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from argon2 import PasswordHasher
from werkzeug.test import TestResponse

from cap_dev_idp.cli import main
from cap_dev_idp.clients import SecretStatus, load_clients
from cap_ops.devkit.pki import PKI
from cap_ops.poll import wait_until
from cap_verifier.typed_yaml import ConfigError, yaml_loader
from support.idp import IdPProcess

if TYPE_CHECKING:
    from conftest import IdpFiles, TokenRequest

GRACE = 2  # seconds: short, and still far longer than a token request right after rotation
STATUS_KEYS = {
    "client_id",
    "previous_secret_active",
    "previous_secret_expires_at",
    "remaining_seconds",
    "checked_at",
}
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class Admin:
    """The admin commands, in-process through ``main``, with their exit code and output."""

    def __init__(self, idp_files: IdpFiles, capsys: pytest.CaptureFixture[str]) -> None:
        self.idp_files = idp_files
        self.capsys = capsys
        self.stderr: list[str] = []

    def run(self, command: str, *args: str) -> tuple[int, str, str]:
        code = main([command, "--config", str(self.idp_files.config), *args])
        captured = self.capsys.readouterr()
        self.stderr.append(captured.err)
        return code, captured.out, captured.err

    def rotate(self, *grace: str, client_id: str = "ci-runner") -> str:
        code, out, err = self.run("rotate-secret", "--client-id", client_id, *grace)
        assert code == 0, err
        return out.strip()

    def status(self, client_id: str = "ci-runner") -> SecretStatus:
        code, out, err = self.run("secret-status", "--client-id", client_id)
        assert code == 0, err
        assert out.count("\n") == 1
        assert set(json.loads(out)) == STATUS_KEYS
        return msgspec.json.decode(out, type=SecretStatus)


@pytest.fixture
def admin(idp_files: IdpFiles, capsys: pytest.CaptureFixture[str]) -> Admin:
    return Admin(idp_files, capsys)


def wait_past(expires_at: str | None) -> None:
    """Wait (polling the clock) until ``expires_at`` has passed."""
    assert expires_at is not None
    deadline = datetime.fromisoformat(expires_at)
    wait_until(
        lambda: datetime.now(UTC) >= deadline,
        GRACE + 10,
        f"the end of the grace period ({expires_at})",
    )


def refusal(response: TestResponse) -> tuple[int, Any, str | None]:
    return response.status_code, response.get_json(), response.headers.get("WWW-Authenticate")


def entry_of(path: Path, client_id: str) -> dict[str, Any]:
    """A client's entry as written in the clients file."""
    document = yaml_loader().load(path.read_text(encoding="utf-8"))
    (entry,) = [e for e in document["clients"] if e["client_id"] == client_id]
    return dict(entry)


def test_both_secrets_work_during_the_grace_then_the_old_one_is_invalid_client(
    request_token: TokenRequest, idp_files: IdpFiles, admin: Admin
) -> None:
    old = idp_files.secrets["ci-runner"]
    assert request_token(secret=old).status_code == 200  # the app is running before rotation

    new = admin.rotate("--grace", str(GRACE))

    # The same running app accepts both, by either client authentication method.
    for method in ("basic", "post"):
        assert request_token(secret=old, method=method).status_code == 200
        assert request_token(secret=new, method=method).status_code == 200
    status = admin.status()
    assert status.previous_secret_active
    assert 0 < status.remaining_seconds <= GRACE + 1
    entry = entry_of(idp_files.clients_file, "ci-runner")
    assert entry["previous_client_secret_expires_at"] == status.previous_secret_expires_at
    assert list(entry) == [
        "client_id",
        "client_secret_hash",
        "previous_client_secret_hash",
        "previous_client_secret_expires_at",
        "scopes",
    ]
    text = idp_files.clients_file.read_text(encoding="utf-8")
    assert old not in text
    assert new not in text
    assert text.count("$argon2id$") == 3  # two for ci-runner, one for metrics-scraper

    wait_past(status.previous_secret_expires_at)

    # Refused exactly like a wrong secret; the new one keeps working.
    for method in ("basic", "post"):
        expired = request_token(secret=old, method=method)
        wrong = request_token(secret="not-the-secret", method=method)
        assert refusal(expired) == refusal(wrong)
        assert expired.get_json()["error"] == "invalid_client"
        assert expired.status_code == 401
        assert request_token(secret=new, method=method).status_code == 200
    status = admin.status()
    assert not status.previous_secret_active
    assert status.remaining_seconds == 0
    assert request_token(client_id="metrics-scraper").status_code == 200  # untouched
    for err in admin.stderr:
        assert old not in err
        assert new not in err


def test_a_second_rotation_during_the_grace_replaces_the_previous_secret(
    request_token: TokenRequest, idp_files: IdpFiles, admin: Admin
) -> None:
    first = idp_files.secrets["ci-runner"]
    second = admin.rotate("--grace", str(GRACE))
    third = admin.rotate("--grace", str(GRACE))

    # Only two are ever active: the first is refused at once.
    assert request_token(secret=first).status_code == 401
    assert request_token(secret=first).get_json()["error"] == "invalid_client"
    assert request_token(secret=second).status_code == 200
    assert request_token(secret=third).status_code == 200
    entry = entry_of(idp_files.clients_file, "ci-runner")
    hashes = [entry["client_secret_hash"], entry["previous_client_secret_hash"]]
    assert FAST_HASHER.verify(hashes[0], third)
    assert FAST_HASHER.verify(hashes[1], second)
    assert idp_files.clients_file.read_text(encoding="utf-8").count("$argon2id$") == 3

    status = admin.status()
    assert status.previous_secret_expires_at == entry["previous_client_secret_expires_at"]
    wait_past(status.previous_secret_expires_at)

    assert request_token(secret=second).status_code == 401
    assert request_token(secret=second).get_json()["error"] == "invalid_client"
    assert request_token(secret=third).status_code == 200


def test_rotation_without_grace_stops_the_old_secrets_at_once(
    request_token: TokenRequest, idp_files: IdpFiles, admin: Admin
) -> None:
    first = idp_files.secrets["ci-runner"]
    second = admin.rotate("--grace", "3600")
    assert request_token(secret=first).status_code == 200

    third = admin.rotate()  # default: --grace 0, today's behaviour

    assert request_token(secret=first).status_code == 401
    assert request_token(secret=second).status_code == 401
    assert request_token(secret=third).status_code == 200
    # The entry is back to the one-secret shape of files written before grace periods.
    assert set(entry_of(idp_files.clients_file, "ci-runner")) == {
        "client_id",
        "client_secret_hash",
        "scopes",
    }
    status = admin.status()
    assert (status.previous_secret_active, status.previous_secret_expires_at) == (False, None)
    fourth = admin.rotate("--grace", "0")
    assert request_token(secret=third).status_code == 401
    assert request_token(secret=fourth).status_code == 200


@pytest.mark.parametrize("grace", ["-1", "604801", "abc", "1.5", "", "2s", "1e3", "9" * 5000])
def test_a_bad_grace_is_one_line_exit_2_and_the_file_is_untouched(
    request_token: TokenRequest, idp_files: IdpFiles, admin: Admin, grace: str
) -> None:
    before = idp_files.clients_file.read_bytes()
    st = idp_files.clients_file.stat()

    code, out, err = admin.run("rotate-secret", "--client-id", "ci-runner", "--grace", grace)

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("config error: --grace: expected whole seconds from 0 to 604800 ")
    assert len(err) < 200
    assert idp_files.clients_file.read_bytes() == before
    after = idp_files.clients_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert request_token().status_code == 200


def test_the_grace_bounds_are_inclusive(admin: Admin) -> None:
    admin.rotate("--grace", "604800")  # 7 days
    status = admin.status()
    assert status.previous_secret_active
    assert 604_800 - 5 < status.remaining_seconds <= 604_801


ONE_SIDED = {
    "hash without expiry": (
        "    previous_client_secret_hash: '{hash}'\n",
        "clients[0].previous_client_secret_expires_at: required with "
        "previous_client_secret_hash (both or neither)",
    ),
    "expiry without hash": (
        "    previous_client_secret_expires_at: '2999-01-01T00:00:00Z'\n",
        "clients[0].previous_client_secret_hash: required with "
        "previous_client_secret_expires_at (both or neither)",
    ),
    "expiry without offset": (
        "    previous_client_secret_hash: '{hash}'\n"
        "    previous_client_secret_expires_at: 2999-01-01T00:00:00\n",
        "clients[0].previous_client_secret_expires_at: Expected `datetime` with a timezone",
    ),
    "expiry not a time": (
        "    previous_client_secret_hash: '{hash}'\n"
        "    previous_client_secret_expires_at: tomorrow\n",
        "clients[0].previous_client_secret_expires_at: ",
    ),
    "previous hash not argon2id": (
        "    previous_client_secret_hash: hunter2\n"
        "    previous_client_secret_expires_at: '2999-01-01T00:00:00Z'\n",
        "clients[0].previous_client_secret_hash: Expected `str` matching regex",
    ),
    "unknown key": (
        "    previous_secret_hash: '{hash}'\n",
        "clients[0].previous_secret_hash: unknown key",
    ),
}


@pytest.mark.parametrize(("lines", "expected"), list(ONE_SIDED.values()), ids=list(ONE_SIDED))
def test_a_bad_previous_secret_entry_is_refused_in_one_line_naming_the_key(
    idp_files: IdpFiles, admin: Admin, lines: str, expected: str
) -> None:
    previous = FAST_HASHER.hash("previous-secret-0123456789")
    idp_files.clients_file.write_text(
        "clients:\n"
        "  - client_id: ci-runner\n"
        f"    client_secret_hash: '{FAST_HASHER.hash('ci-runner-secret-0123456789')}'\n"
        + lines.format(hash=previous)
        + "    scopes: [verify:run]\n",
        encoding="utf-8",
    )
    before = idp_files.clients_file.read_bytes()

    with pytest.raises(ConfigError) as raised:
        load_clients(idp_files.clients_file)
    assert str(raised.value).startswith(f"{idp_files.clients_file}: {expected}")
    for command in (
        ["secret-status", "--client-id", "ci-runner"],
        ["rotate-secret", "--client-id", "ci-runner", "--grace", "60"],
    ):
        code, out, err = admin.run(*command)
        assert code == 2
        assert out == ""
        assert err.count("\n") == 1, err
        assert err.startswith(f"config error: {idp_files.clients_file}: {expected}")
        assert previous not in err
    assert idp_files.clients_file.read_bytes() == before


def test_an_expired_previous_secret_is_refused_and_dropped_by_the_next_admin_write(
    request_token: TokenRequest, idp_files: IdpFiles, admin: Admin
) -> None:
    # Written by hand: ci-runner's previous secret expired long ago; metrics-scraper's is
    # valid for an hour, its expiry written with a +02:00 offset.
    old = idp_files.secrets["ci-runner"]
    later = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    later = later.astimezone(timezone(timedelta(hours=2)))
    idp_files.clients_file.write_text(
        "# hand-written\n"
        "clients:\n"
        "  - client_id: ci-runner\n"
        f"    client_secret_hash: '{FAST_HASHER.hash('ci-runner-new-0123456789')}'\n"
        f"    previous_client_secret_hash: '{FAST_HASHER.hash(old)}'\n"
        "    previous_client_secret_expires_at: 2000-01-01T00:00:00Z\n"
        "    scopes: [verify:run]\n"
        "  - client_id: metrics-scraper\n"
        f"    client_secret_hash: '{FAST_HASHER.hash('metrics-new-0123456789')}'\n"
        f"    previous_client_secret_hash: '{FAST_HASHER.hash('metrics-old-0123456789')}'\n"
        f"    previous_client_secret_expires_at: {later.isoformat(timespec='seconds')}\n"
        "    scopes: [metrics:read]\n",
        encoding="utf-8",
    )

    assert request_token(secret=old).status_code == 401
    assert request_token(secret="ci-runner-new-0123456789").status_code == 200
    assert request_token("metrics-scraper", "metrics-old-0123456789").status_code == 200
    assert request_token("metrics-scraper", "metrics-new-0123456789").status_code == 200
    status = admin.status()
    assert (status.previous_secret_active, status.previous_secret_expires_at) == (
        False,
        "2000-01-01T00:00:00Z",
    )
    metrics = admin.status("metrics-scraper")
    assert metrics.previous_secret_active
    assert metrics.previous_secret_expires_at == later.astimezone(UTC).isoformat().replace(
        "+00:00", "Z"
    )

    code, _, err = admin.run("add-client", "--client-id", "newcomer", "--scopes", "policy:read")
    assert code == 0, err

    text = idp_files.clients_file.read_text(encoding="utf-8")
    assert text.startswith("# hand-written\n")
    assert set(entry_of(idp_files.clients_file, "ci-runner")) == {
        "client_id",
        "client_secret_hash",
        "scopes",
    }
    assert "previous_client_secret_hash" in entry_of(idp_files.clients_file, "metrics-scraper")
    assert request_token("metrics-scraper", "metrics-old-0123456789").status_code == 200
    assert '"expired previous secret removed"' in err
    assert admin.status().previous_secret_expires_at is None


def test_secret_status_reports_the_expiry_and_no_secret_material(
    idp_files: IdpFiles, admin: Admin
) -> None:
    old = idp_files.secrets["ci-runner"]
    status = admin.status()
    assert status.client_id == "ci-runner"
    assert (status.previous_secret_active, status.previous_secret_expires_at) == (False, None)
    assert status.remaining_seconds == 0

    new = admin.rotate("--grace", "3600")
    code, out, err = admin.run("secret-status", "--client-id", "ci-runner")

    assert code == 0, err
    document = json.loads(out)
    assert set(document) == STATUS_KEYS
    entry = entry_of(idp_files.clients_file, "ci-runner")
    assert document["previous_secret_active"] is True
    assert document["previous_secret_expires_at"] == entry["previous_client_secret_expires_at"]
    expires = datetime.fromisoformat(document["previous_secret_expires_at"])
    checked = datetime.fromisoformat(document["checked_at"])
    assert document["previous_secret_expires_at"].endswith("Z")
    assert timedelta(seconds=3600) <= expires - checked <= timedelta(seconds=3601)
    assert 3599 <= document["remaining_seconds"] <= 3601
    for material in (
        old,
        new,
        entry["client_secret_hash"],
        entry["previous_client_secret_hash"],
        "$argon2",
    ):
        assert material not in out
        assert material not in err

    code, out, err = admin.run("secret-status", "--client-id", "nobody")
    assert (code, out) == (1, "")
    assert err == f"error: no client 'nobody' in {idp_files.clients_file}\n"


@pytest.fixture
def idp(tmp_path: Path, pki: PKI) -> Iterator[IdPProcess]:
    process = IdPProcess(tmp_path, pki)
    process.start()
    yield process
    process.stop()


def test_the_running_server_process_sees_the_rotation_without_restart(idp: IdPProcess) -> None:
    assert idp.process is not None
    pid = idp.process.pid
    old = idp.client_secret
    assert idp.token_response(old).status_code == 200

    new = idp.cli("rotate-secret", "--client-id", idp.client_id, "--grace", str(GRACE)).strip()

    assert idp.token_response(old).status_code == 200
    assert idp.token_response(new).status_code == 200
    status = json.loads(idp.cli("secret-status", "--client-id", idp.client_id))
    assert status["previous_secret_active"] is True

    wait_past(status["previous_secret_expires_at"])

    expired = idp.token_response(old)
    assert expired.status_code == 401
    assert expired.json()["error"] == "invalid_client"
    assert idp.token_response(new).status_code == 200
    assert idp.process.pid == pid
    assert idp.process.poll() is None  # the same process all along

    text = idp.log.read_text()
    assert old not in text
    assert new not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    used = [
        line for line in lines if line["message"] == "client authenticated with its previous secret"
    ]
    assert [line["client_id"] for line in used] == [idp.client_id]
    assert used[0]["previous_secret_expires_at"] == status["previous_secret_expires_at"]
    refused = [line for line in lines if line["message"] == "token refused"]
    assert [(line["client_id"], line["reason"]) for line in refused] == [
        (idp.client_id, "invalid_client")
    ]
