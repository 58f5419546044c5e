"""OAuth2 clients of the development IdP (local and CI only), kept in a YAML file.

File format (only argon2id hashes are stored; a clear ``client_secret`` field is refused)::

    clients:
      - client_id: verifier-ci
        client_secret_hash: $argon2id$v=19$m=65536,t=3,p=4$...
        scopes: [verify:run, policy:read]

The server reloads the file when it changes (inode, mtime or size); admin commands rewrite
it atomically (temporary file and rename), keeping comments and the file mode.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from cap_dev_idp.logs import get_logger
from cap_dev_idp.reloading import Reloading
from cap_dev_idp.settings import ConfigError

GRANT_TYPE = "client_credentials"
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 section 3.3 scope-token
_CLIENT_KEYS = frozenset({"client_id", "client_secret_hash", "scopes"})

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile
_log = get_logger("clients")


class ClientError(Exception):
    """An admin operation that cannot be done (unknown or duplicate client, bad scope)."""


def generate_secret() -> str:
    """A fresh client secret (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """argon2id hash of a secret, for ``client_secret_hash``."""
    return _hasher.hash(secret)


def parse_scopes(text: str) -> tuple[str, ...]:
    """Split a space-separated scope string; refuse an empty or malformed one."""
    scopes = tuple(dict.fromkeys(text.split()))
    if not scopes or not all(_SCOPE.fullmatch(scope) for scope in scopes):
        raise ClientError(f"invalid scopes {text!r}: expected space-separated scope tokens")
    return scopes


@dataclass(frozen=True, slots=True)
class Client:
    """One confidential client; implements the methods authlib's ``ClientMixin`` asks for."""

    client_id: str
    secret_hash: str = field(repr=False)
    scopes: tuple[str, ...]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == GRANT_TYPE

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in AUTH_METHODS

    def check_client_secret(self, client_secret: str) -> bool:
        try:
            return _hasher.verify(self.secret_hash, client_secret)
        except (VerificationError, InvalidHashError):
            return False

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The granted scope: all of the client's when none is asked, None if not a subset."""
        requested = tuple(dict.fromkeys((scope or "").split()))
        if not requested:
            return " ".join(self.scopes)
        if not set(requested) <= set(self.scopes):
            return None
        return " ".join(requested)


def parse_clients(data: Any, source: Path) -> dict[str, Client]:
    """Validate a parsed clients document; raise :class:`ConfigError` naming the field."""

    def fail(where: str, problem: str) -> ConfigError:
        return ConfigError("clients_file", f"{where}: {problem} (in {source})")

    if not isinstance(data, dict) or set(data) != {"clients"}:
        raise fail("(top level)", "expected a mapping with the single key 'clients'")
    entries = data["clients"] or []
    if not isinstance(entries, list):
        raise fail("clients", "expected a list")
    clients: dict[str, Client] = {}
    for index, entry in enumerate(entries):
        where = f"clients[{index}]"
        if not isinstance(entry, dict):
            raise fail(where, "expected a mapping")
        if "client_secret" in entry:
            raise fail(f"{where}.client_secret", "clear secrets are refused; store the hash")
        for key in entry:
            if key not in _CLIENT_KEYS:
                raise fail(f"{where}.{key}", "unknown key")
        client_id = entry.get("client_id")
        if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
            raise fail(f"{where}.client_id", "expected an identifier ([A-Za-z0-9._:@-])")
        if client_id in clients:
            raise fail(f"{where}.client_id", f"duplicate client_id {client_id!r}")
        secret_hash = entry.get("client_secret_hash")
        if not isinstance(secret_hash, str) or not secret_hash.startswith("$argon2id$"):
            raise fail(f"{where}.client_secret_hash", "expected an argon2id hash")
        scopes = entry.get("scopes")
        if (
            not isinstance(scopes, list)
            or not scopes
            or not all(isinstance(s, str) and _SCOPE.fullmatch(s) for s in scopes)
        ):
            raise fail(f"{where}.scopes", "expected a non-empty list of scope tokens")
        clients[client_id] = Client(client_id, secret_hash, tuple(dict.fromkeys(scopes)))
    return clients


def load_clients(path: Path) -> dict[str, Client]:
    """Read and validate the clients file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("clients_file", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError:
        raise ConfigError("clients_file", f"invalid YAML in {path}") from None
    return parse_clients(data, path)


class ClientStore:
    """The clients of a running server, reloaded when the file changes or on request."""

    def __init__(self, path: Path) -> None:
        self._clients = Reloading(path, lambda: load_clients(path), "clients file")

    def get(self, client_id: str) -> Client | None:
        """authlib's ``query_client``."""
        return self._clients.current().get(client_id)

    def scopes(self) -> list[str]:
        """Every scope some client may receive, sorted."""
        return sorted({scope for c in self._clients.current().values() for scope in c.scopes})

    def refresh(self, force: bool = False) -> None:
        """Reload if the file changed; on a bad file keep the last good clients."""
        if self._clients.refresh(force):
            _log.info("clients file reloaded", extra={"clients": len(self._clients.current())})


@contextmanager
def _locked_dir(directory: Path) -> Iterator[None]:
    """Serialise admin commands that rewrite files in ``directory``."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _round_trip() -> YAML:
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # keep each hash on one line
    return yaml


def _write_atomic(path: Path, text: str) -> None:
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _edit(path: Path, create: bool, change: Any) -> None:
    """Load the file round-trip, validate it, apply ``change(doc)``, validate, write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked_dir(path.parent):
        yaml = _round_trip()
        if create and not path.exists():
            doc: Any = yaml.load("clients: []\n")
        else:
            try:
                doc = yaml.load(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise ConfigError("clients_file", f"cannot read {path}: {exc.strerror}") from None
            except YAMLError:
                raise ConfigError("clients_file", f"invalid YAML in {path}") from None
            parse_clients(doc, path)
            if doc["clients"] is None:
                doc["clients"] = []
        change(doc)
        parse_clients(doc, path)
        out = StringIO()
        yaml.dump(doc, out)
        _write_atomic(path, out.getvalue())


def add_client(path: Path, client_id: str, scopes: tuple[str, ...]) -> str:
    """Add a client with a fresh secret; return the secret (stored only as its hash)."""
    if not _CLIENT_ID.fullmatch(client_id):
        raise ClientError(f"invalid client id {client_id!r}: expected [A-Za-z0-9._:@-]")
    secret = generate_secret()

    def change(doc: Any) -> None:
        if any(entry.get("client_id") == client_id for entry in doc["clients"]):
            raise ClientError(f"client {client_id!r} already exists")
        doc["clients"].append(
            {
                "client_id": client_id,
                "client_secret_hash": hash_secret(secret),
                "scopes": list(scopes),
            }
        )

    _edit(path, create=True, change=change)
    _log.info("client added", extra={"client_id": client_id, "scopes": " ".join(scopes)})
    return secret


def rotate_secret(path: Path, client_id: str) -> str:
    """Replace a client's secret; return the new one (the old one stops working)."""
    secret = generate_secret()

    def change(doc: Any) -> None:
        for entry in doc["clients"]:
            if entry.get("client_id") == client_id:
                entry["client_secret_hash"] = hash_secret(secret)
                return
        raise ClientError(f"no client {client_id!r} in {path}")

    _edit(path, create=False, change=change)
    _log.info("client secret rotated", extra={"client_id": client_id})
    return secret
