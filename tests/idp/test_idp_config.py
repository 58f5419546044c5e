"""Configuration errors: one line naming the key, exit code 2."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from cap_dev_idp.cli import main
from support.idp import IDP_COMMAND

if TYPE_CHECKING:
    from conftest import IdpFiles


@pytest.fixture
def tls_files(idp_files: IdpFiles) -> Path:
    """A trustme certificate and PKCS#8 key where the configuration expects them."""
    tls = idp_files.root / "tls"
    tls.mkdir()
    leaf = trustme.CA().issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(tls / "server.crt")
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tls / "server.key").write_bytes(pkcs8)
    return tls


# Each message is ``<file>: <key>: <problem>`` (the configuration file is idp.yaml).
CASES = {
    "port not an integer": (
        "  port: 8443\n",
        "  port: https\n",
        "idp.yaml: server.port: Expected `int`, got `str`",
    ),
    "port out of range": ("  port: 8443\n", "  port: 70000\n", "idp.yaml: server.port: "),
    "port is a boolean": ("  port: 8443\n", "  port: true\n", "idp.yaml: server.port: "),
    "issuer missing": (
        "issuer: https://idp.test\n",
        "",
        "idp.yaml: issuer: required key is missing",
    ),
    "issuer not https": ("https://idp.test", "http://idp.test", "issuer: expected an https"),
    "issuer with a path": ("https://idp.test", "https://idp.test/realm", "idp.yaml: issuer: "),
    "audience empty": ("audience: cap-verifier", "audience: ''", "idp.yaml: audience: Expected"),
    "lifetime zero": (
        "token_lifetime_seconds: 300",
        "token_lifetime_seconds: 0",
        "idp.yaml: token_lifetime_seconds: Expected `int` >= 1",
    ),
    "lifetime text": (
        "token_lifetime_seconds: 300",
        "token_lifetime_seconds: 5m",
        "idp.yaml: token_lifetime_seconds: ",
    ),
    "clients_file missing": (
        "clients_file: clients.yaml\n",
        "",
        "idp.yaml: clients_file: required key is missing",
    ),
    "keys_dir missing": ("keys_dir: keys\n", "", "idp.yaml: keys_dir: required key is missing"),
    "unknown top-level key": ("audience:", "audiense:", "idp.yaml: audiense: unknown key"),
    "unknown server key": ("  host:", "  hots:", "idp.yaml: server.hots: unknown key"),
    "server not a mapping": (
        "server:\n  host: 127.0.0.1\n  port: 8443\n  cert: tls/server.crt\n  key: tls/server.key\n",
        "server: 8443\n",
        "idp.yaml: server: Expected `object`, got `int`",
    ),
    "invalid YAML": (
        "audience: cap-verifier",
        "audience: [unclosed",
        "idp.yaml: not valid YAML",
    ),
}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    list(CASES.values()),
    ids=list(CASES),
)
@pytest.mark.usefixtures("tls_files")  # the configuration is the only thing wrong
def test_bad_config_value_exits_2_with_one_line_naming_the_key(
    idp_files: IdpFiles, capsys: pytest.CaptureFixture[str], old: str, new: str, expected: str
) -> None:
    text = idp_files.config.read_text(encoding="utf-8")
    assert old in text
    idp_files.write_config(text.replace(old, new, 1))

    assert main(["serve", "--config", str(idp_files.config)]) == 2

    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("config error: ")
    assert expected in lines[0]
    assert captured.out == ""


def test_tls_key_must_be_pkcs8(
    idp_files: IdpFiles, tls_files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf = trustme.CA().issue_cert("127.0.0.1")
    (tls_files / "server.key").write_bytes(leaf.private_key_pem.bytes())  # "EC PRIVATE KEY"
    assert main(["serve", "--config", str(idp_files.config)]) == 2
    assert capsys.readouterr().err.startswith("config error: server.key: expected an unencrypted")


def test_missing_certificate_is_named(
    idp_files: IdpFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--config", str(idp_files.config)]) == 2
    assert capsys.readouterr().err.startswith("config error: server.cert: cannot read ")


@pytest.mark.usefixtures("tls_files")
def test_clear_secret_in_the_clients_file_is_refused(
    idp_files: IdpFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    idp_files.clients_file.write_text(
        "clients:\n  - client_id: a\n    client_secret: hunter2\n    scopes: [x]\n",
        encoding="utf-8",
    )
    assert main(["serve", "--config", str(idp_files.config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: ")
    assert "clients.yaml: clients[0].client_secret: clear secrets are refused" in err
    assert err.count("\n") == 1
    assert "hunter2" not in err


def test_console_script_exits_2_with_one_line(idp_files: IdpFiles) -> None:
    idp_files.write_config(port=99999)
    result = subprocess.run(
        [*IDP_COMMAND, "serve", "--config", str(idp_files.config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert (
        result.stderr == f"config error: {idp_files.config}: server.port: Expected `int` <= 65535\n"
    )
    assert result.stdout == ""
