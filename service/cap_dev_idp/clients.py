"""OAuth2 clients of the development IdP (local and CI only), kept in a YAML file.

File format (only argon2id hashes are stored; a clear ``client_secret`` field is refused)::

    clients:
      - client_id: verifier-ci
        client_secret_hash: $argon2id$v=19$m=65536,t=3,p=4$...
        previous_client_secret_hash: $argon2id$v=19$m=65536,t=3,p=4$...   # optional
        previous_client_secret_expires_at: '2025-06-01T12:00:00Z'         # with the above
        scopes: [verify:run, policy:read]

A client holds at most two secrets: the current one (``client_secret_hash``) and, during the
grace period of a rotation (``rotate_secret(..., grace_seconds=N)``), the previous one, valid
until ``previous_client_secret_expires_at`` (RFC 3339 with an explicit offset; written in
UTC). The two ``previous_*`` keys go together: both or neither. An expired previous secret is
refused like a wrong one, and removed from the file by the next admin write.

The server reloads the file when it changes (inode, mtime or size); admin commands rewrite
it atomically (temporary file and rename) under a lock on the directory, keeping comments
and the file mode.
"""

from __future__ import annotations

import fcntl
import math
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Annotated, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from msgspec import Meta, Struct
from ruamel.yaml import YAML

from cap_dev_idp.logs import get_logger
from cap_dev_idp.reloading import Reloading
from cap_verifier.typed_yaml import convert, read_yaml, yaml_loader

GRANT_TYPE = "client_credentials"
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
CLIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}\Z"
SCOPE_PATTERN = r"^[\x21\x23-\x5b\x5d-\x7e]+\Z"  # RFC 6749 section 3.3 scope-token
ARGON2ID_PATTERN = r"^\$argon2id\$"
MAX_GRACE_SECONDS = 7 * 86_400
"""The longest grace period of a secret rotation (7 days)."""
CURRENT_HASH_KEY = "client_secret_hash"
PREVIOUS_HASH_KEY = "previous_client_secret_hash"
PREVIOUS_EXPIRY_KEY = "previous_client_secret_expires_at"
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)
_SCOPE = re.compile(SCOPE_PATTERN)

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


def utc_now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC as RFC 3339, e.g. ``2025-06-01T12:00:00Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _verify(secret_hash: str, secret: str) -> bool:
    try:
        return _hasher.verify(secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


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
    previous_secret_hash: str | None = field(default=None, repr=False)
    """The secret replaced by the last rotation, valid until ``previous_expires_at``."""
    previous_expires_at: datetime | None = None
    """UTC; set exactly when ``previous_secret_hash`` is."""

    def previous_secret_active(self, now: datetime | None = None) -> bool:
        """Whether the previous secret is still accepted (its grace period not over)."""
        return (
            self.previous_secret_hash is not None
            and self.previous_expires_at is not None
            and (now or utc_now()) < self.previous_expires_at
        )

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
        """The current secret, or the previous one until it expires (checked after the
        hash, at the moment of acceptance); an expired one fails like a wrong secret."""
        if _verify(self.secret_hash, client_secret):
            return True
        if (
            self.previous_secret_hash is not None
            and _verify(self.previous_secret_hash, client_secret)
            and self.previous_secret_active()
        ):
            _log.info(
                "client authenticated with its previous secret",
                extra={
                    "client_id": self.client_id,
                    "previous_secret_expires_at": rfc3339(self.previous_expires_at)
                    if self.previous_expires_at
                    else None,
                },
            )
            return True
        return False

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The granted scope: all of the client's when none is asked, None if not a subset."""
        requested = tuple(dict.fromkeys((scope or "").split()))
        if not requested:
            return " ".join(self.scopes)
        if not set(requested) <= set(self.scopes):
            return None
        return " ".join(requested)


class ClientEntry(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One entry of the clients file."""

    client_id: Annotated[str, Meta(pattern=CLIENT_ID_PATTERN)]
    client_secret_hash: Annotated[str, Meta(pattern=ARGON2ID_PATTERN)] | None = None
    """Required: checked by :class:`ClientsFile`, so that a clear secret is named first."""
    previous_client_secret_hash: Annotated[str, Meta(pattern=ARGON2ID_PATTERN)] | None = None
    """The secret before the last rotation; with ``previous_client_secret_expires_at``."""
    previous_client_secret_expires_at: Annotated[datetime, Meta(tz=True)] | None = None
    """Until when the previous secret is accepted (RFC 3339 with an offset, e.g. ``...Z``)."""
    scopes: Annotated[tuple[Annotated[str, Meta(pattern=SCOPE_PATTERN)], ...], Meta(min_length=1)]
    client_secret: str | None = None
    """Never allowed: declared only so that a clear secret is refused by name."""

    def client(self) -> Client:
        """The client the server authenticates."""
        assert self.client_secret_hash is not None  # ClientsFile.__post_init__
        expires = self.previous_client_secret_expires_at
        return Client(
            self.client_id,
            self.client_secret_hash,
            tuple(dict.fromkeys(self.scopes)),
            self.previous_client_secret_hash,
            None if expires is None else expires.astimezone(UTC),
        )


class ClientsFile(Struct, forbid_unknown_fields=True, frozen=True):
    """The clients file: ``clients:`` and a list of entries (null is none)."""

    clients: tuple[ClientEntry, ...] | None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for index, entry in enumerate(self.clients or ()):
            where = f"clients[{index}]"
            if entry.client_secret is not None:
                raise ValueError(
                    f"{where}.client_secret: clear secrets are refused; store the hash"
                )
            if entry.client_secret_hash is None:
                raise ValueError(f"{where}.{CURRENT_HASH_KEY}: required key is missing")
            has_hash = entry.previous_client_secret_hash is not None
            if has_hash != (entry.previous_client_secret_expires_at is not None):
                missing, present = (
                    (PREVIOUS_EXPIRY_KEY, PREVIOUS_HASH_KEY)
                    if has_hash
                    else (PREVIOUS_HASH_KEY, PREVIOUS_EXPIRY_KEY)
                )
                raise ValueError(f"{where}.{missing}: required with {present} (both or neither)")
            if entry.client_id in seen:
                raise ValueError(f"{where}.client_id: duplicate client_id {entry.client_id!r}")
            seen.add(entry.client_id)


def parse_clients(data: Any, source: Path) -> dict[str, Client]:
    """Validate a parsed clients document; raise ``ConfigError`` (``<source>: <key>: …``)."""
    document = convert(data, ClientsFile, str(source))
    return {entry.client_id: entry.client() for entry in document.clients or ()}


def load_clients(path: Path) -> dict[str, Client]:
    """Read and validate the clients file."""
    return parse_clients(read_yaml(path), path)


class SecretStatus(Struct, frozen=True, kw_only=True):
    """What ``secret-status`` prints (no secret, no hash): is a previous secret still
    accepted, and until when."""

    client_id: str
    previous_secret_active: bool
    previous_secret_expires_at: str | None
    """RFC 3339 UTC; also shown once expired, until an admin write removes it; else null."""
    remaining_seconds: int
    """Whole seconds (rounded up) until the previous secret expires; 0 when not active."""
    checked_at: str
    """RFC 3339 UTC: the moment this status describes."""


def secret_status(path: Path, client_id: str) -> SecretStatus:
    """The rotation state of one client's secrets, read from the clients file."""
    client = load_clients(path).get(client_id)
    if client is None:
        raise ClientError(f"no client {client_id!r} in {path}")
    now = utc_now()
    expires = client.previous_expires_at
    active = client.previous_secret_active(now)
    return SecretStatus(
        client_id=client_id,
        previous_secret_active=active,
        previous_secret_expires_at=None if expires is None else rfc3339(expires),
        remaining_seconds=math.ceil((expires - now).total_seconds()) if active and expires else 0,
        checked_at=rfc3339(now),
    )


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


def _drop_previous(entry: Any) -> None:
    for key in (PREVIOUS_HASH_KEY, PREVIOUS_EXPIRY_KEY):
        entry.pop(key, None)


def _set_after(entry: Any, anchor: str, key: str, value: str) -> None:
    """Set ``entry[key]``; a new key goes right after ``anchor`` (round-trip mapping)."""
    if key in entry:
        entry[key] = value
    else:
        entry.insert(list(entry).index(anchor) + 1, key, value)


def _edit(path: Path, create: bool, change: Callable[[Any, datetime], None]) -> None:
    """Validate the file, apply ``change(doc, now)`` to its round-trip document, validate,
    write. Expired previous secrets are removed on the way."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked_dir(path.parent):
        now = utc_now()
        if create and not path.exists():
            text = "clients: []\n"
            clients: dict[str, Client] = {}
        else:
            clients = load_clients(path)
            text = path.read_text(encoding="utf-8")
        yaml = _round_trip()
        doc: Any = yaml.load(text)
        if doc["clients"] is None:
            doc["clients"] = []
        expired: list[str] = []
        for entry in doc["clients"]:
            client = clients.get(entry.get("client_id"))
            if client and client.previous_expires_at and not client.previous_secret_active(now):
                _drop_previous(entry)
                expired.append(client.client_id)
        change(doc, now)
        out = StringIO()
        yaml.dump(doc, out)
        parse_clients(yaml_loader().load(out.getvalue()), path)
        _write_atomic(path, out.getvalue())
    for client_id in expired:
        _log.info("expired previous secret removed", extra={"client_id": client_id})


def add_client(path: Path, client_id: str, scopes: tuple[str, ...]) -> str:
    """Add a client with a fresh secret; return the secret (stored only as its hash)."""
    if not _CLIENT_ID.fullmatch(client_id):
        raise ClientError(f"invalid client id {client_id!r}: expected [A-Za-z0-9._:@-]")
    secret = generate_secret()

    def change(doc: Any, now: datetime) -> None:
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


def grace_expiry(now: datetime, grace_seconds: int) -> datetime:
    """``now + grace_seconds``, rounded up to a whole second (never shorter than asked)."""
    expiry = now + timedelta(seconds=grace_seconds)
    if expiry.microsecond:
        expiry = expiry.replace(microsecond=0) + timedelta(seconds=1)
    return expiry


def rotate_secret(path: Path, client_id: str, grace_seconds: int = 0) -> str:
    """Replace a client's secret; return the new one.

    With ``grace_seconds`` > 0 the replaced secret stays valid until now + grace, as the
    client's previous secret (a previous secret from an earlier rotation is dropped: only
    two are ever active); with 0 it stops working at once and any previous one is dropped.
    """
    if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        raise ClientError(
            f"invalid grace {grace_seconds}: expected 0 to {MAX_GRACE_SECONDS} seconds"
        )
    secret = generate_secret()
    new_hash = hash_secret(secret)
    expires: list[str] = []

    def change(doc: Any, now: datetime) -> None:
        for entry in doc["clients"]:
            if entry.get("client_id") == client_id:
                old_hash = str(entry[CURRENT_HASH_KEY])
                entry[CURRENT_HASH_KEY] = new_hash
                if grace_seconds == 0:
                    _drop_previous(entry)
                    return
                expires.append(rfc3339(grace_expiry(now, grace_seconds)))
                _set_after(entry, CURRENT_HASH_KEY, PREVIOUS_HASH_KEY, old_hash)
                _set_after(entry, PREVIOUS_HASH_KEY, PREVIOUS_EXPIRY_KEY, expires[0])
                return
        raise ClientError(f"no client {client_id!r} in {path}")

    _edit(path, create=False, change=change)
    _log.info(
        "client secret rotated",
        extra={
            "client_id": client_id,
            "grace_seconds": grace_seconds,
            "previous_secret_expires_at": expires[0] if expires else None,
        },
    )
    return secret
