"""``cap-verifier serve|migrate|check-config|probe|audit prune --config FILE``."""

from __future__ import annotations

import argparse
import os
import sys

from cap_verifier import __version__
from cap_verifier.paths import HEALTHZ
from cap_verifier.settings import CONFIG_ENV, ConfigError, Settings, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cap-verifier", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cap-verifier {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "serve the API under granian"),
        ("migrate", "apply the registry migrations"),
        ("check-config", "validate the configuration and exit"),
        ("probe", "exit 0 when this host's service answers /healthz (container health check)"),
    ):
        _config_option(commands.add_parser(name, help=text))
    audit = commands.add_parser("audit", help="the verification audit table")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    prune = audit_commands.add_parser(
        "prune", help="delete the audit records older than registry.audit_retention_days"
    )
    _config_option(prune)
    prune.add_argument(
        "--dry-run", action="store_true", help="count the records that would go; change nothing"
    )
    return parser


def _config_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--config",
        default=os.environ.get(CONFIG_ENV),
        help=f"YAML config file (default: ${CONFIG_ENV})",
    )


def _migrate(settings: Settings) -> None:
    from cap_verifier.registry import Registry, RegistryError  # noqa: PLC0415

    registry = Registry(settings.registry.url)
    try:
        registry.migrate()
        print(f"registry at revision {registry.current_revision()}")
    except RegistryError as exc:
        print(f"migrate failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        registry.close()


def _audit_prune(settings: Settings, *, dry_run: bool) -> None:
    """Prune once; print what went (or would go). Exit 1 with one line when it fails."""
    from cap_verifier.logs import configure_logging  # noqa: PLC0415
    from cap_verifier.registry import Registry, RegistryError  # noqa: PLC0415
    from cap_verifier.retention import prune  # noqa: PLC0415

    configure_logging(settings.logging.level)  # the audit_prune line, as JSON on stdout
    registry = Registry(settings.registry.url)
    try:
        result = prune(registry, settings.registry, dry_run=dry_run)
    except RegistryError as exc:
        print(f"audit prune failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        registry.close()
    verb = "would remove" if dry_run else "removed"
    print(
        f"audit prune: {verb} {result.rows} verification records created before "
        f"{result.cutoff.isoformat(timespec='seconds')} "
        f"(retention {settings.registry.audit_retention_days} days)"
    )


def _probe(settings: Settings) -> None:
    import ssl  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    scheme = "https" if settings.tls.enabled else "http"
    context = None
    if settings.tls.enabled:
        # Loopback probe of our own listener: the certificate names the public host.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if settings.tls.require_mtls:
            # Without a client certificate the handshake is refused: check the listener only.
            import socket  # noqa: PLC0415

            try:
                socket.create_connection(("127.0.0.1", settings.server.port), timeout=2).close()
            except OSError as exc:
                print(f"probe: port {settings.server.port} not accepting: {exc}", file=sys.stderr)
                raise SystemExit(1) from None
            raise SystemExit(0)
    url = f"{scheme}://127.0.0.1:{settings.server.port}{HEALTHZ}"
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as response:  # noqa: S310
            ok = response.status == 200
    except OSError as exc:
        print(f"probe: {url} unreachable: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    raise SystemExit(0 if ok else 1)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from None
    if args.command == "check-config":
        print("config ok")
    elif args.command == "probe":
        _probe(settings)
    elif args.command == "migrate":
        _migrate(settings)
    elif args.command == "audit":
        _audit_prune(settings, dry_run=args.dry_run)
    else:
        from cap_verifier.server import serve  # noqa: PLC0415

        serve(settings, args.config)


if __name__ == "__main__":
    main()
