"""Admin commands (key and secret rotation, new clients) against a running in-process app."""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.errors import JoseError

from cap_dev_idp.app import create_app
from cap_dev_idp.cli import main
from cap_dev_idp.settings import Settings

if TYPE_CHECKING:
    from conftest import IdpFiles, TokenRequest


def kids(client: FlaskClient) -> list[str]:
    return [jwk["kid"] for jwk in client.get("/.well-known/jwks.json").get_json()["keys"]]


def rotate(idp_files: IdpFiles, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["rotate-key", "--config", str(idp_files.config)]) == 0
    out = capsys.readouterr().out
    return out.splitlines()[0].removeprefix("current: ")


def test_key_rotation_keeps_the_previous_key_and_drops_the_oldest(
    client: FlaskClient,
    request_token: TokenRequest,
    decode_token: Callable[..., jwt.Token],
    idp_files: IdpFiles,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (kid1,) = kids(client)
    token1 = request_token().get_json()["access_token"]

    kid2 = rotate(idp_files, capsys)

    # Picked up by the same app, without restart: new kid first, old one still published.
    assert kids(client) == [kid2, kid1]
    jwks = client.get("/.well-known/jwks.json").get_json()
    assert decode_token(token1, jwks).header["kid"] == kid1
    token2 = request_token().get_json()["access_token"]
    assert decode_token(token2, jwks).header["kid"] == kid2

    kid3 = rotate(idp_files, capsys)

    assert kids(client) == [kid3, kid2]
    jwks = client.get("/.well-known/jwks.json").get_json()
    with pytest.raises((JoseError, ValueError)):
        decode_token(token1, jwks)
    assert decode_token(token2, jwks).header["kid"] == kid2
    pems = sorted(p.name for p in idp_files.keys_dir.glob("*.pem"))
    assert pems == sorted([f"{kid3}.pem", f"{kid2}.pem"])
    for pem in idp_files.keys_dir.glob("*.pem"):
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600


def test_broken_key_directory_keeps_the_last_good_keys(
    client: FlaskClient, idp_files: IdpFiles
) -> None:
    before = kids(client)
    (idp_files.keys_dir / "keys.json").write_text('{"current": "missing"}', encoding="utf-8")
    assert kids(client) == before


@pytest.mark.usefixtures("app")  # the app creates the first signing key
def test_group_readable_private_key_is_refused(
    idp_files: IdpFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    (pem,) = idp_files.keys_dir.glob("*.pem")
    os.chmod(pem, 0o644)
    assert main(["rotate-key", "--config", str(idp_files.config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: keys_dir: ")
    assert "0644" in err


def test_rotate_secret_old_stops_new_works_nothing_clear_on_disk(
    request_token: TokenRequest, idp_files: IdpFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    old = idp_files.secrets["ci-runner"]
    assert request_token(secret=old).status_code == 200

    assert (
        main(["rotate-secret", "--config", str(idp_files.config), "--client-id", "ci-runner"]) == 0
    )
    new = capsys.readouterr().out.strip()

    assert len(new) >= 32
    assert request_token(secret=old).status_code == 401
    assert request_token(secret=new).status_code == 200
    assert request_token(secret=new, method="post").status_code == 200
    text = idp_files.clients_file.read_text(encoding="utf-8")
    assert new not in text
    assert old not in text
    assert "client_secret:" not in text
    assert text.count("$argon2id$") == 2
    # the other client is untouched
    assert request_token(client_id="metrics-scraper").status_code == 200


def test_rotate_secret_of_an_unknown_client_fails(
    idp_files: IdpFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rotate-secret", "--config", str(idp_files.config), "--client-id", "nobody"]) == 1
    assert "nobody" in capsys.readouterr().err


def test_add_client_prints_the_secret_once_and_the_server_accepts_it(
    request_token: TokenRequest, idp_files: IdpFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["add-client", "--config", str(idp_files.config), "--client-id", "newcomer"]
    assert main([*args, "--scopes", "policy:compile policy:read"]) == 0
    secret = capsys.readouterr().out.strip()

    idp_files.secrets["newcomer"] = secret
    response = request_token(client_id="newcomer")
    assert response.status_code == 200
    assert response.get_json()["scope"] == "policy:compile policy:read"
    assert secret not in idp_files.clients_file.read_text(encoding="utf-8")
    assert main([*args, "--scopes", "policy:read"]) == 1  # duplicate
    assert "already exists" in capsys.readouterr().err


def test_broken_clients_file_keeps_the_last_good_clients(
    request_token: TokenRequest, idp_files: IdpFiles
) -> None:
    idp_files.clients_file.write_text("clients: [{client_id: x}]\n", encoding="utf-8")
    assert request_token().status_code == 200


def test_hash_secret_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-value\n"))
    assert main(["hash-secret"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("$argon2id$")
    assert "s3cret-value" not in out
    assert PasswordHasher().verify(out, "s3cret-value")


def test_first_start_creates_a_private_key_directory(
    settings: Settings, idp_files: IdpFiles
) -> None:
    assert not idp_files.keys_dir.exists()
    create_app(settings)
    manifest = json.loads((idp_files.keys_dir / "keys.json").read_text(encoding="utf-8"))
    assert manifest["previous"] is None
    assert stat.S_IMODE(idp_files.keys_dir.stat().st_mode) == 0o700
    pem = idp_files.keys_dir / f"{manifest['current']}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
