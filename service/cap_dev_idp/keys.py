"""RS256 signing keys of the development IdP (local and CI only), and their rotation.

Layout of ``keys_dir`` (mode 0700)::

    <kid>.pem    PKCS#8 RSA private key, mode 0600; kid = RFC 7638 thumbprint
    keys.json    {"current": "<kid>", "previous": "<kid>" | null}

``current`` signs; ``previous`` is still published in the JWKS so that tokens signed before
the last rotation keep validating; the key before that is deleted. Each step of a rotation
(new key file, manifest replaced by rename, old file removed) leaves a consistent directory,
and a running server reloads when the manifest changes.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from cap_dev_idp.logs import get_logger
from cap_dev_idp.reloading import Reloading
from cap_verifier.typed_yaml import ConfigError

ALGORITHM = "RS256"
KEY_SIZE = 2048
MANIFEST = "keys.json"

_log = get_logger("keys")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private RSA key and its kid."""

    kid: str
    key: RSAKey

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK (no private members), with kid, use and alg."""
        return dict(self.key.as_dict(private=False, kid=self.kid, use="sig", alg=ALGORITHM))


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The signing key and the previous one, still published."""

    current: SigningKey
    previous: SigningKey | None

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The JSON Web Key Set to serve: public parts only, current key first."""
        keys = [self.current] if self.previous is None else [self.current, self.previous]
        return {"keys": [key.public_jwk() for key in keys]}


def _fail(problem: str) -> ConfigError:
    return ConfigError(f"keys_dir: {problem}")


def _read_manifest(keys_dir: Path) -> tuple[str, str | None]:
    path = keys_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise _fail(f"{path} is not valid JSON") from None
    current = data.get("current") if isinstance(data, dict) else None
    previous = data.get("previous") if isinstance(data, dict) else None
    if not isinstance(current, str) or not (previous is None or isinstance(previous, str)):
        raise _fail(f'{path}: expected {{"current": kid, "previous": kid or null}}')
    return current, previous


def _read_key(keys_dir: Path, kid: str) -> SigningKey:
    path = keys_dir / f"{kid}.pem"
    try:
        mode = path.stat().st_mode & 0o777
        pem = path.read_bytes()
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise _fail(f"{path} has mode {mode:04o}; private keys must be 0600")
    try:
        key = RSAKey.import_key(pem)
    except (JoseError, ValueError, TypeError):
        raise _fail(f"{path} is not an RSA private key in PEM") from None
    if not key.is_private or key.raw_value.key_size < KEY_SIZE:
        raise _fail(f"{path}: expected an RSA private key of at least {KEY_SIZE} bits")
    if key.thumbprint() != kid:
        raise _fail(f"{path}: file name does not match the key's RFC 7638 thumbprint")
    return SigningKey(kid, key)


def load_keys(keys_dir: Path) -> KeyRing:
    """Read the manifest and the keys it names; raise :class:`ConfigError` on any problem."""
    current, previous = _read_manifest(keys_dir)
    return KeyRing(
        current=_read_key(keys_dir, current),
        previous=None if previous is None else _read_key(keys_dir, previous),
    )


@contextmanager
def _locked(keys_dir: Path) -> Iterator[None]:
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(keys_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically (temporary file and rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _new_key(keys_dir: Path) -> str:
    key = RSAKey.generate_key(KEY_SIZE, private=True)
    kid = key.thumbprint()
    _write_private(keys_dir / f"{kid}.pem", key.as_pem(private=True))
    return kid


def _write_manifest(keys_dir: Path, current: str, previous: str | None) -> None:
    body = json.dumps({"current": current, "previous": previous}, indent=2) + "\n"
    _write_private(keys_dir / MANIFEST, body.encode())


def ensure_keys(keys_dir: Path) -> KeyRing:
    """Create the directory and a first signing key when there is none; return the ring."""
    with _locked(keys_dir):
        if not (keys_dir / MANIFEST).exists():
            kid = _new_key(keys_dir)
            _write_manifest(keys_dir, kid, None)
            _log.info("first signing key created", extra={"kid": kid})
    return load_keys(keys_dir)


def rotate_key(keys_dir: Path) -> tuple[KeyRing, str | None]:
    """New key signs, the current one becomes previous, the previous one is deleted.

    Returns the new ring and the kid that was dropped (None if there was none).
    """
    with _locked(keys_dir):
        if (keys_dir / MANIFEST).exists():
            current, dropped = _read_manifest(keys_dir)
            _read_key(keys_dir, current)  # refuse to rotate over a broken directory
        else:
            current, dropped = None, None
        kid = _new_key(keys_dir)
        _write_manifest(keys_dir, kid, current)
        if dropped is not None and dropped not in (kid, current):
            (keys_dir / f"{dropped}.pem").unlink(missing_ok=True)
    _log.info("signing key rotated", extra={"kid": kid, "previous": current, "dropped": dropped})
    return load_keys(keys_dir), dropped


class KeyStore:
    """The key ring of a running server, reloaded when the manifest changes."""

    def __init__(self, keys_dir: Path) -> None:
        ensure_keys(keys_dir)
        self._ring = Reloading(keys_dir / MANIFEST, lambda: load_keys(keys_dir), "keys")

    def ring(self) -> KeyRing:
        """The current ring, after a reload if the directory changed."""
        return self._ring.current()

    def refresh(self, force: bool = False) -> None:
        """Reload if the manifest changed; on a broken directory keep the last good ring."""
        if self._ring.refresh(force):
            ring = self._ring.current()
            _log.info(
                "signing keys reloaded",
                extra={
                    "kid": ring.current.kid,
                    "previous": ring.previous.kid if ring.previous else None,
                },
            )
