"""``cap-dev-idp``: serve the development IdP and administer its files (local and CI only).

Subcommands::

    cap-dev-idp serve         --config FILE
    cap-dev-idp rotate-key    --config FILE
    cap-dev-idp rotate-secret --config FILE --client-id ID [--grace SECONDS]
                                                 # prints the new secret once
    cap-dev-idp secret-status --config FILE --client-id ID   # JSON, no secret
    cap-dev-idp add-client    --config FILE --client-id ID --scopes "a b"   # prints the secret
    cap-dev-idp hash-secret   < secret                          # prints the argon2id hash

``rotate-secret --grace SECONDS`` (whole seconds, 0 to 604800 = 7 days; default 0) keeps the
old secret valid for that long as the client's previous secret: both are accepted until then
(a rotation during the grace replaces the previous secret; 0 drops it at once).
``secret-status`` prints one JSON object, e.g.::

    {"client_id":"ci","previous_secret_active":true,
     "previous_secret_expires_at":"2025-06-01T12:00:00Z","remaining_seconds":42,
     "checked_at":"2025-06-01T11:59:18.5Z"}

Admin commands work offline on the files; a running server picks the changes up by itself.
Exit codes: 0 done, 1 operation refused (unknown or duplicate client...), 2 bad
configuration or usage (one line on stderr: ``config error: <key>: <problem>``).
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from cap_dev_idp import logs
from cap_dev_idp.clients import (
    MAX_GRACE_SECONDS,
    ClientError,
    add_client,
    hash_secret,
    parse_scopes,
    rotate_secret,
    secret_status,
)
from cap_dev_idp.keys import rotate_key
from cap_dev_idp.settings import Settings, load_settings
from cap_verifier.typed_yaml import ConfigError

EXIT_REFUSED = 1
EXIT_CONFIG = 2
_WHOLE_SECONDS = re.compile(r"[0-9]{1,9}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cap-dev-idp",
        description="Development OAuth2 server for the CAP Verifier (local and CI only).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, config: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if config:
            sub.add_argument("--config", required=True, type=Path, metavar="FILE")
        return sub

    command("serve", "serve the IdP over TLS 1.3 (granian, WSGI)")
    command("rotate-key", "new signing key; keep the current one published as previous")
    sub = command("rotate-secret", "replace a client's secret and print the new one once")
    sub.add_argument("--client-id", required=True, metavar="ID")
    sub.add_argument(
        "--grace",
        default="0",
        metavar="SECONDS",
        help=f"keep the old secret valid this long (0 to {MAX_GRACE_SECONDS}; default 0)",
    )
    sub = command("secret-status", "print (JSON, no secret) whether a previous secret is active")
    sub.add_argument("--client-id", required=True, metavar="ID")
    sub = command("add-client", "add a client and print its secret once")
    sub.add_argument("--client-id", required=True, metavar="ID")
    sub.add_argument("--scopes", required=True, metavar='"A B"', help="space-separated")
    command("hash-secret", "read a secret from stdin, print its argon2id hash", config=False)
    return parser


def parse_grace(text: str) -> int:
    """``--grace``: whole seconds, 0 to :data:`MAX_GRACE_SECONDS`; else :class:`ConfigError`."""
    if _WHOLE_SECONDS.fullmatch(text) and int(text) <= MAX_GRACE_SECONDS:
        return int(text)
    shown = text if len(text) <= 32 else f"{text[:32]}..."
    raise ConfigError(
        f"--grace: expected whole seconds from 0 to {MAX_GRACE_SECONDS} (7 days), got {shown!r}"
    )


def _read_secret() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("secret: ")
    return sys.stdin.read().rstrip("\r\n")


def _run(args: argparse.Namespace) -> int:
    if args.command == "hash-secret":
        secret = _read_secret()
        if not secret:
            print("error: empty secret on stdin", file=sys.stderr)
            return EXIT_REFUSED
        print(hash_secret(secret))
        return 0

    grace = parse_grace(args.grace) if args.command == "rotate-secret" else 0
    settings: Settings = load_settings(args.config)
    if args.command == "serve":
        from cap_dev_idp.server import serve  # noqa: PLC0415 (granian only when serving)

        serve(settings, args.config)
    elif args.command == "rotate-key":
        ring, dropped = rotate_key(settings.keys_dir)
        previous = ring.previous.kid if ring.previous else "-"
        print(f"current: {ring.current.kid}\nprevious: {previous}\ndropped: {dropped or '-'}")
    elif args.command == "rotate-secret":
        print(rotate_secret(settings.clients_file, args.client_id, grace))
    elif args.command == "secret-status":
        status = secret_status(settings.clients_file, args.client_id)
        print(msgspec.json.encode(status).decode())
    elif args.command == "add-client":
        scopes = parse_scopes(args.scopes)
        print(add_client(settings.clients_file, args.client_id, scopes))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cap-dev-idp`` console script."""
    args = _parser().parse_args(argv)
    logs.configure()
    try:
        return _run(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":
    raise SystemExit(main())
