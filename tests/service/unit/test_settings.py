"""Configuration: YAML file plus CAP_VERIFIER_<SECTION>__<KEY> overrides, validated at start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cap_verifier.settings import ConfigError, load_settings

BASE_ENV = {
    "CAP_VERIFIER_OAUTH2__ISSUER": "https://idp.cap.test",
    "CAP_VERIFIER_OAUTH2__AUDIENCE": "cap-verifier",
    "CAP_VERIFIER_OAUTH2__JWKS_URL": "https://idp.cap.test/jwks",
    "CAP_VERIFIER_TLS__ENABLED": "false",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.orr("2.1-08", "4.6-01", "4.6-02", "4.6-03")
def test_defaults_of_the_contract() -> None:
    settings = load_settings(None, BASE_ENV)
    assert settings.oauth2.jwks_cache_ttl == 600
    assert settings.oauth2.jwks_max_stale == 3600
    assert settings.oauth2.leeway == 30
    assert settings.cache.max_entries == 5000
    assert settings.cache.ttl_seconds == 3600
    assert settings.cache.enabled is True
    assert settings.limits.max_body_bytes == 1024 * 1024
    assert settings.tls.min_version == "1.3"
    assert settings.server.host == "127.0.0.1"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: 9000, workers: 2}\ncache: {enabled: true}\n")
    env = {
        **BASE_ENV,
        "CAP_VERIFIER_SERVER__PORT": "9443",
        "CAP_VERIFIER_CACHE__ENABLED": "false",
        "CAP_VERIFIER_TLS__ALLOWED_CLIENT_SANS": "[a.cap.test, '*.b.cap.test']",
    }
    settings = load_settings(path, env)
    assert settings.server.port == 9443
    assert settings.server.workers == 2
    assert settings.cache.enabled is False
    assert settings.tls.allowed_client_sans == ("a.cap.test", "*.b.cap.test")


@pytest.mark.parametrize(
    ("text", "env", "key"),
    [
        ("server: {port: 70000}", {}, "server.port"),
        ("server: {port: http}", {}, "server.port"),
        ("", {"CAP_VERIFIER_SERVER__WORKERS": "0"}, "server.workers"),
        ("cache: {max_entries: -1}", {}, "cache.max_entries"),
        ("logging: {level: LOUD}", {}, "logging.level"),
        ("tls: {min_version: '1.2'}", {}, "tls.min_version"),
        ("server: {prot: 1}", {}, "server.prot"),
        ("", {"CAP_VERIFIER_OAUTH2__JWKS_URL": "http://idp/jwks"}, "oauth2.jwks_url"),
        ("", {"CAP_VERIFIER_TLS__ENABLED": "true"}, "tls.cert"),
        ("tls: {allowed_client_sans: ['bad name']}", {}, "tls.allowed_client_sans"),
        ("tls: {trusted_proxies: [not-an-ip]}", {}, "tls.trusted_proxies"),
        ("registry: {url: 'mysql://x'}", {}, "registry.url"),
        ("limits: {rate_limit: {requests: 0}}", {}, "limits.rate_limit.requests"),
        ("oauth2: {jwks_ca_file: /nonexistent/ca.pem}", {}, "oauth2.jwks_ca_file"),
        ("bogus: {x: 1}", {}, "bogus"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(
    tmp_path: Path, text: str, env: dict[str, str], key: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {**BASE_ENV, **env})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("config error: ")
    assert key in message


def test_registry_url_file_holds_the_url(tmp_path: Path) -> None:
    secret = tmp_path / "url"
    secret.write_text("postgresql+psycopg://cap:s3cret@db:5432/cap?sslmode=require\n")
    path = write(tmp_path, f"registry: {{url_file: {secret}}}")
    settings = load_settings(path, BASE_ENV)
    assert settings.registry.url == "postgresql+psycopg://cap:s3cret@db:5432/cap?sslmode=require"


@pytest.mark.parametrize("content", ["mysql://cap:s3cret@db/cap", "", "sqlite:///a\nsqlite:///b"])
def test_registry_url_file_with_a_bad_url_is_one_line_without_it(
    tmp_path: Path, content: str
) -> None:
    secret = tmp_path / "url"
    secret.write_text(content)
    path = write(tmp_path, f"registry: {{url_file: {secret}}}")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, BASE_ENV)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("config error: registry.url_file:")
    assert "s3cret" not in message


def test_registry_url_file_missing_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, f"registry: {{url_file: {tmp_path / 'absent'}}}")
    with pytest.raises(ConfigError, match=r"^config error: registry.url_file: .* does not exist$"):
        load_settings(path, BASE_ENV)


def test_missing_required_key_is_named() -> None:
    env = {k: v for k, v in BASE_ENV.items() if "AUDIENCE" not in k}
    with pytest.raises(ConfigError, match=r"oauth2\.audience: required key is missing"):
        load_settings(None, env)


def test_unreadable_yaml_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "server: [\n"), BASE_ENV)


def test_cli_exits_2_with_one_line_on_a_bad_value(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: 0}\n")
    cli = Path(sys.executable).parent / "cap-verifier"
    env = {"PATH": "/usr/bin:/bin", **BASE_ENV}
    result = subprocess.run(
        [str(cli), "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "server.port" in result.stderr
    checked = subprocess.run(
        [str(cli), "check-config", "--config", str(write(tmp_path, ""))],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
