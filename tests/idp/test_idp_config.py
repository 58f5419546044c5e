"""Configuration errors: one line naming the key, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from cap_dev_idp.cli import main


def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "cap-dev-idp"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cap_dev_idp"]


@pytest.fixture
def tls_files(idp_files) -> Path:
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


CASES = {
    "port not an integer": (
        "  port: 8443\n",
        "  port: https\n",
        "config error: server.port: expected an integer 1-65535",
    ),
    "port out of range": ("  port: 8443\n", "  port: 70000\n", "server.port: "),
    "port is a boolean": ("  port: 8443\n", "  port: true\n", "server.port: "),
    "issuer missing": ("issuer: https://idp.test\n", "", "config error: issuer: missing"),
    "issuer not https": ("https://idp.test", "http://idp.test", "issuer: expected an https"),
    "issuer with a path": ("https://idp.test", "https://idp.test/realm", "issuer: "),
    "audience empty": ("audience: cap-verifier", "audience: ''", "audience: expected"),
    "lifetime zero": (
        "token_lifetime_seconds: 300",
        "token_lifetime_seconds: 0",
        "config error: token_lifetime_seconds: expected an integer 1-86400",
    ),
    "lifetime text": (
        "token_lifetime_seconds: 300",
        "token_lifetime_seconds: 5m",
        "token_lifetime_seconds: ",
    ),
    "clients_file missing": ("clients_file: clients.yaml\n", "", "clients_file: missing"),
    "keys_dir missing": ("keys_dir: keys\n", "", "config error: keys_dir: missing"),
    "unknown top-level key": ("audience:", "audiense:", "config error: audiense: unknown key"),
    "unknown server key": ("  host:", "  hots:", "config error: server.hots: unknown key"),
    "server not a mapping": (
        "server:\n  host: 127.0.0.1\n  port: 8443\n  cert: tls/server.crt\n  key: tls/server.key\n",
        "server: 8443\n",
        "config error: server: expected a mapping",
    ),
    "invalid YAML": ("audience: cap-verifier", "audience: [unclosed", "config error: --config"),
}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    list(CASES.values()),
    ids=list(CASES),
)
def test_bad_config_value_exits_2_with_one_line_naming_the_key(
    idp_files, tls_files, capsys, old, new, expected
):
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


def test_tls_key_must_be_pkcs8(idp_files, tls_files, capsys):
    leaf = trustme.CA().issue_cert("127.0.0.1")
    (tls_files / "server.key").write_bytes(leaf.private_key_pem.bytes())  # "EC PRIVATE KEY"
    assert main(["serve", "--config", str(idp_files.config)]) == 2
    assert capsys.readouterr().err.startswith("config error: server.key: expected an unencrypted")


def test_missing_certificate_is_named(idp_files, capsys):
    assert main(["serve", "--config", str(idp_files.config)]) == 2
    assert capsys.readouterr().err.startswith("config error: server.cert: cannot read ")


def test_clear_secret_in_the_clients_file_is_refused(idp_files, tls_files, capsys):
    idp_files.clients_file.write_text(
        "clients:\n  - client_id: a\n    client_secret: hunter2\n    scopes: [x]\n",
        encoding="utf-8",
    )
    assert main(["serve", "--config", str(idp_files.config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: clients_file: clients[0].client_secret: ")
    assert "hunter2" not in err


def test_console_script_exits_2_with_one_line(idp_files):
    idp_files.write_config(port=99999)
    result = subprocess.run(
        [*cli_command(), "serve", "--config", str(idp_files.config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == "config error: server.port: expected an integer 1-65535\n"
    assert result.stdout == ""
