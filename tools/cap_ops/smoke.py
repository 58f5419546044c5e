"""ORR 5.1 smoke checks of a running CAP Verifier API (`make smoke`).

Usage::

    python -m cap_ops.smoke                       # the local environment of `make up`
    python -m cap_ops.smoke --url https://verifier.example --token-url https://idp/oauth/token \\
        --client-id ID --client-secret SECRET [--ca-cert ca.crt] [--timeout 5]

Every explicit option can also come from the environment: URL, TOKEN_URL, CLIENT_ID,
CLIENT_SECRET, CA_CERT, CLIENT_CERT, CLIENT_KEY (an option wins over its variable). Without
any of the first four, ``--env local`` reads ``.local/env.json`` of the repository.

One line per check, ``PASS <name>`` or ``FAIL <name>: <why>``, then ``N passed, M failed``.
Exit 0 when every check passed, 1 when one failed, 2 when there is nothing to check against.
The client secret and the access token are never printed.

What the checks write, so that they can run against production: the v1 policy "ORR smoke
policy" and the PolicyV2 ``orr.smoke`` have fixed contents, and both compiles are idempotent
by policy hash, so repeated runs add no policy rows; each run adds one audit record (the
verification of the fixed smoke context, no real company data).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import ssl
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

import httpx
from blake3 import blake3

REQUIRED_SCOPES = ("verify:run", "policy:compile", "policy:read")
DEFAULT_TIMEOUT = 5.0
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXPLICIT_VARS = ("URL", "TOKEN_URL", "CLIENT_ID", "CLIENT_SECRET")
WHAT_TO_DO = (
    "run `make up` first, or give URL, TOKEN_URL, CLIENT_ID and CLIENT_SECRET "
    "(options or environment)"
)

SMOKE_POLICY_V1: dict[str, Any] = {  # keys in the contract's hash order (spec 2.1)
    "version": "lksg.v1",
    "name": "ORR smoke policy",
    "created_at": "2025-01-01T00:00:00Z",
    "constraints": {"require_at_least_one_ubo": True, "supplier_count_max": 10},
    "notes": "Written by the ORR 5.1 smoke checks (cap_ops.smoke); fixed content.",
}
SMOKE_POLICY_V2_ID = "orr.smoke"
SMOKE_POLICY_V2: dict[str, Any] = {
    "id": SMOKE_POLICY_V2_ID,
    "version": "1.0",
    "legal_basis": [{"directive": "LkSG"}],
    "description": "ORR 5.1 smoke check: two suppliers, none on the disclosed sanctions list",
    "inputs": {
        "supplier_hashes": {"type": "array", "items": "hex"},
        "sanctions_root": {"type": "hex"},
    },
    "rules": [
        {
            "id": "no_sanctions",
            "op": "non_membership",
            "lhs": "supplier_hashes",
            "rhs": "sanctions_root",
        },
        {"id": "two_suppliers", "op": "range_min", "lhs": "supplier_count", "rhs": 2},
    ],
}
SMOKE_SUPPLIERS = ("0x" + "5a" * 32, "0x" + "5b" * 32)
SMOKE_SANCTIONED = ("0x" + "5c" * 32,)


def list_root(entries: Sequence[str]) -> str:
    """The root of a disclosed list: ``0x`` + blake3 of its entries concatenated (spec 3.1)."""
    return "0x" + str(blake3("".join(entries).encode()).hexdigest())


def policy_v1_hash(policy: Mapping[str, Any]) -> str:
    """Spec 2.1: ``0x`` + sha3-256 of the compact JSON (the mapping is already in hash order)."""
    text = json.dumps(policy, separators=(",", ":"), ensure_ascii=False)
    return "0x" + hashlib.sha3_256(text.encode()).hexdigest()


def smoke_context() -> dict[str, Any]:
    root = list_root(SMOKE_SANCTIONED)
    return {
        "supplier_hashes": list(SMOKE_SUPPLIERS),
        "sanctions_root": root,
        "lists": {root: list(SMOKE_SANCTIONED)},
    }


# -- the target ---------------------------------------------------------------------------


class UsageError(Exception):
    """Nothing to check against: one line for the operator, exit 2."""


@dataclass(frozen=True)
class Target:
    url: str
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None


def _check_url(name: str, value: str) -> str:
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise UsageError(f"{name} {value[:80]!r} is not an http(s) URL with a host")
    return value


def repo_root() -> Path:
    """The checkout holding this file, or the working directory for an installed copy."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


def _optional_path(value: object, base: Path) -> Path | None:
    if value is None or value == "":
        return None
    path = Path(str(value))
    return path if path.is_absolute() else base / path


def _scopes(value: object) -> set[str]:
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list):
        return {str(scope) for scope in value}
    return set()


def _pick_client(clients: object) -> tuple[str, str]:
    """(client_id, client_secret) of the client with the fewest scopes holding all we need."""
    if not isinstance(clients, dict):
        raise KeyError("clients")
    fitting = [
        entry
        for entry in clients.values()
        if isinstance(entry, dict) and _scopes(entry.get("scopes")) >= set(REQUIRED_SCOPES)
    ]
    if not fitting:
        raise UsageError(
            f"no client in the local environment holds {' '.join(REQUIRED_SCOPES)}: "
            "run `make up` again, or give CLIENT_ID and CLIENT_SECRET"
        )
    best = min(fitting, key=lambda entry: len(_scopes(entry.get("scopes"))))
    return str(best["client_id"]), str(best["client_secret"])


def load_local_env(env_file: Path) -> Target:
    """The target described by ``.local/env.json`` (written by `make up`)."""
    try:
        document = json.loads(env_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"no local environment ({env_file} does not exist): {WHAT_TO_DO}"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read {env_file} ({type(exc).__name__}): {WHAT_TO_DO}") from None
    if not isinstance(document, dict):
        raise UsageError(f"{env_file} is not a JSON object: {WHAT_TO_DO}")
    base = env_file.resolve().parent.parent  # paths in env.json are relative to the root
    try:
        client_id, client_secret = _pick_client(document["clients"])
        return Target(
            url=_check_url("verifier_url", str(document["verifier_url"])),
            token_url=_check_url("token_url", str(document["token_url"])),
            client_id=client_id,
            client_secret=client_secret,
            ca_cert=_optional_path(document.get("ca_cert"), base),
            client_cert=_optional_path(document.get("client_cert"), base),
            client_key=_optional_path(document.get("client_key"), base),
        )
    except KeyError as exc:
        raise UsageError(f"{env_file} lacks {exc.args[0]!r}: {WHAT_TO_DO}") from None


def _option(args: argparse.Namespace, name: str, environ: Mapping[str, str]) -> str | None:
    value = getattr(args, name.lower()) or environ.get(name)
    return str(value) if value else None


def explicit_target(args: argparse.Namespace, environ: Mapping[str, str]) -> Target | None:
    """The target given by options or environment; None when none of them is given."""
    values = {name: _option(args, name, environ) for name in EXPLICIT_VARS}
    if not any(values.values()):
        return None
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}: {WHAT_TO_DO}")
    cwd = Path.cwd()
    return Target(
        url=_check_url("URL", str(values["URL"])),
        token_url=_check_url("TOKEN_URL", str(values["TOKEN_URL"])),
        client_id=str(values["CLIENT_ID"]),
        client_secret=str(values["CLIENT_SECRET"]),
        ca_cert=_optional_path(_option(args, "CA_CERT", environ), cwd),
        client_cert=_optional_path(_option(args, "CLIENT_CERT", environ), cwd),
        client_key=_optional_path(_option(args, "CLIENT_KEY", environ), cwd),
    )


def select_target(args: argparse.Namespace, environ: Mapping[str, str]) -> Target:
    target = explicit_target(args, environ)
    if target is not None:
        return target
    return load_local_env(args.env_file or repo_root() / ".local" / "env.json")


def tls_context(target: Target) -> ssl.SSLContext:
    """Trust the CA certificate when given, else the system store; present a client cert."""
    try:
        context = ssl.create_default_context(cafile=str(target.ca_cert) if target.ca_cert else None)
        if target.client_cert is not None:
            key = str(target.client_key) if target.client_key else None
            context.load_cert_chain(str(target.client_cert), key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the TLS files ({exc.__class__.__name__}: {exc})") from None
    return context


# -- the checks ---------------------------------------------------------------------------


class CheckFailed(Exception):
    """A check that did not pass; the message is the short reason."""


@dataclass
class Smoke:
    """State shared by the checks of one run."""

    client: httpx.Client
    target: Target
    run_id: str
    token: str | None = None
    policy_id: str | None = None
    policy_hash: str | None = None
    requests: int = 0

    def request(
        self, method: str, path: str, *, auth: bool = False, **kwargs: Any
    ) -> httpx.Response:
        self.requests += 1
        headers = {"X-Request-ID": f"{self.run_id}-{self.requests}"}
        if auth:
            if self.token is None:
                raise CheckFailed("not run: no access token (see the token check)")
            headers["Authorization"] = f"Bearer {self.token}"
        return self.client.request(method, path, headers=headers, **kwargs)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise CheckFailed(f"{response.status_code} with a body that is not JSON") from None
    if not isinstance(body, dict):
        raise CheckFailed(f"{response.status_code} with a JSON body that is not an object")
    return body


def _expect(response: httpx.Response, status: int) -> dict[str, Any]:
    """The JSON body of a response with ``status``; else fail naming what came back."""
    if response.status_code != status:
        raise CheckFailed(f"expected {status}, got {_describe(response)}")
    return _json(response)


def _describe(response: httpx.Response) -> str:
    """``503 (title: detail)`` for a problem response, else the bare status."""
    try:
        body = response.json()
    except ValueError:
        return str(response.status_code)
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return f"{response.status_code} ({str(body['detail'])[:120]})"
    return str(response.status_code)


def check_healthz(smoke: Smoke) -> None:
    body = _expect(smoke.request("GET", "/healthz"), 200)
    if body.get("status") != "OK":
        raise CheckFailed(f"status {body.get('status')!r}, expected 'OK'")
    if not isinstance(body.get("version"), str) or not body["version"]:
        raise CheckFailed("no version in the body")


def check_readyz(smoke: Smoke) -> None:
    response = smoke.request("GET", "/readyz")
    body = _json(response)
    checks = body.get("checks")
    if not isinstance(checks, list) or not checks:
        raise CheckFailed(f"{response.status_code} without its checks")
    failing = [
        f"{c.get('name')} {c.get('status')}"
        for c in checks
        if not isinstance(c, dict) or c.get("status") != "OK"
    ]
    if response.status_code != 200 or body.get("status") != "OK" or failing:
        detail = ", ".join(failing) or "no failing check named"
        raise CheckFailed(f"{response.status_code} {body.get('status')} ({detail})")


def _expect_401(response: httpx.Response) -> None:
    if response.status_code != 401:
        raise CheckFailed(f"expected 401, got {_describe(response)}")
    challenge = response.headers.get("WWW-Authenticate", "")
    if not challenge.lower().startswith("bearer"):
        raise CheckFailed("401 without a WWW-Authenticate: Bearer challenge")


def check_verify_unauthenticated(smoke: Smoke) -> None:
    body = {"policy_id": SMOKE_POLICY_V2_ID, "context": smoke_context()}
    _expect_401(smoke.request("POST", "/verify", json=body))


def check_compile_unauthenticated(smoke: Smoke) -> None:
    _expect_401(smoke.request("POST", "/policy/compile", json={"policy": SMOKE_POLICY_V1}))


def _oauth_error(response: httpx.Response) -> str:
    """The RFC 6749 ``error`` code of a token error response, when it is a sane token."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f" {error}" if isinstance(error, str) and re.fullmatch(r"[a-z_]{1,40}", error) else ""


def check_token(smoke: Smoke) -> None:
    """OAuth2 client credentials, client_secret_basic (id and secret form-encoded, RFC 6749)."""
    target = smoke.target
    response = smoke.client.post(
        target.token_url,
        data={"grant_type": "client_credentials", "scope": " ".join(REQUIRED_SCOPES)},
        auth=(quote(target.client_id, safe=""), quote(target.client_secret, safe="")),
    )
    if response.status_code in (400, 401):
        raise CheckFailed(
            f"the token endpoint refused client {target.client_id!r} "
            f"({response.status_code}{_oauth_error(response)}): check CLIENT_ID, CLIENT_SECRET "
            f"and that the client holds {' '.join(REQUIRED_SCOPES)}"
        )
    body = _expect(response, 200)
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise CheckFailed("the token response has no access_token")
    if str(body.get("token_type", "")).lower() != "bearer":
        raise CheckFailed(f"token_type {body.get('token_type')!r}, expected Bearer")
    granted = body.get("scope")
    if isinstance(granted, str) and not set(granted.split()) >= set(REQUIRED_SCOPES):
        lacking = sorted(set(REQUIRED_SCOPES) - set(granted.split()))
        raise CheckFailed(f"the granted scope lacks {' '.join(lacking)}")
    smoke.token = token


def check_compile(smoke: Smoke) -> None:
    response = smoke.request("POST", "/policy/compile", auth=True, json={"policy": SMOKE_POLICY_V1})
    body = _expect(response, 200)
    expected_hash = policy_v1_hash(SMOKE_POLICY_V1)
    if body.get("policy_hash") != expected_hash:
        raise CheckFailed(f"policy_hash {body.get('policy_hash')!r}, expected {expected_hash}")
    try:
        policy_id = str(uuid.UUID(str(body.get("policy_id"))))
    except ValueError:
        raise CheckFailed(f"policy_id {body.get('policy_id')!r} is not a UUID") from None
    smoke.policy_id, smoke.policy_hash = policy_id, expected_hash


def check_policy_read(smoke: Smoke) -> None:
    if smoke.policy_id is None:
        raise CheckFailed("not run: no stored policy id (see the compile check)")
    body = _expect(smoke.request("GET", f"/policy/{smoke.policy_id}", auth=True), 200)
    metadata = body.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("hash") != smoke.policy_hash:
        raise CheckFailed("the metadata does not carry the compiled policy hash")
    policy = body.get("policy")
    if not isinstance(policy, dict) or policy.get("name") != SMOKE_POLICY_V1["name"]:
        raise CheckFailed("the stored policy is not the smoke policy")


def check_policy_unknown(smoke: Smoke) -> None:
    response = smoke.request("GET", f"/policy/{uuid.uuid4()}", auth=True)
    if response.status_code != 404:
        raise CheckFailed(f"expected 404 for an unknown id, got {_describe(response)}")


def check_verify(smoke: Smoke) -> None:
    """Store the PolicyV2 ``orr.smoke`` (idempotent), then verify by its id: verdict OK."""
    compiled = smoke.request(
        "POST", "/policy/v2/compile", auth=True, json={"policy": SMOKE_POLICY_V2, "persist": True}
    )
    if compiled.status_code == 409:
        raise CheckFailed(f"{SMOKE_POLICY_V2_ID} is stored with another policy_hash (409)")
    if compiled.status_code != 200:
        raise CheckFailed(f"storing {SMOKE_POLICY_V2_ID} answered {_describe(compiled)}")
    policy_hash = _json(compiled).get("policy_hash")
    request = {"policy_id": SMOKE_POLICY_V2_ID, "context": smoke_context()}
    body = _expect(smoke.request("POST", "/verify", auth=True, json=request), 200)
    report = body.get("report")
    if not isinstance(report, dict):
        raise CheckFailed("the response has no report")
    if body.get("result") != "OK":
        raise CheckFailed(f"verdict {body.get('result')!r}, expected 'OK'")
    if report.get("policy_hash") != policy_hash:
        raise CheckFailed("the report's policy_hash is not the stored policy's")
    if report.get("checks_total") != 2 or report.get("checks_passed") != 2:
        raise CheckFailed(
            f"{report.get('checks_passed')} of {report.get('checks_total')} rules passed, "
            "expected 2 of 2"
        )


CHECKS: tuple[tuple[str, Callable[[Smoke], None]], ...] = (
    ("healthz", check_healthz),
    ("readyz", check_readyz),
    ("verify-without-token", check_verify_unauthenticated),
    ("compile-without-token", check_compile_unauthenticated),
    ("token", check_token),
    ("compile", check_compile),
    ("policy-read", check_policy_read),
    ("policy-unknown", check_policy_unknown),
    ("verify", check_verify),
)


# -- the run ------------------------------------------------------------------------------


class Reporter:
    """Prints the result lines, masking the secret and the token should one ever slip in."""

    def __init__(self, out: TextIO, secrets: Sequence[str]) -> None:
        self.out = out
        self.secrets = [secret for secret in secrets if secret]
        self.passed = 0
        self.failed = 0

    def line(self, text: str) -> None:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        print(text, file=self.out, flush=True)

    def result(self, name: str, reason: str | None) -> None:
        if reason is None:
            self.passed += 1
            self.line(f"PASS {name}")
        else:
            self.failed += 1
            self.line(f"FAIL {name}: {reason}")


def run_check(check: Callable[[Smoke], None], smoke: Smoke, timeout: float) -> str | None:
    """None when the check passed, else the reason; network errors are reasons too."""
    try:
        check(smoke)
    except CheckFailed as exc:
        return str(exc)
    except httpx.TimeoutException:
        return f"no answer within {timeout:g} s"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {str(exc)[:160] or 'no detail'}"
    return None


def run(target: Target, timeout: float, out: TextIO) -> int:
    run_id = f"orr-smoke-{uuid.uuid4().hex[:12]}"
    reporter = Reporter(out, [target.client_secret])
    reporter.line(f"smoke {target.url} as {target.client_id} (request ids {run_id}-N)")
    with httpx.Client(
        base_url=target.url,
        verify=tls_context(target),
        timeout=timeout,
        headers={"User-Agent": "cap-ops-smoke"},
    ) as client:
        smoke = Smoke(client=client, target=target, run_id=run_id)
        for name, check in CHECKS:
            reason = run_check(check, smoke, timeout)
            if smoke.token is not None and smoke.token not in reporter.secrets:
                reporter.secrets.append(smoke.token)
            reporter.result(name, reason)
    reporter.line(f"{reporter.passed} passed, {reporter.failed} failed")
    return EXIT_FAILED if reporter.failed else EXIT_OK


def positive(text: str) -> float:
    """An argparse type: a number greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """The options naming a deployment to run against (each also read from its variable);
    ``make smoke`` and ``make loadtest`` share them."""
    parser.add_argument("--env-file", type=Path, help="another env.json than .local/env.json")
    parser.add_argument("--url", help="the verifier's base URL (or URL)")
    parser.add_argument("--token-url", help="the OAuth2 token endpoint (or TOKEN_URL)")
    parser.add_argument("--client-id", help="the OAuth2 client (or CLIENT_ID)")
    parser.add_argument(
        "--client-secret", help="its secret (or CLIENT_SECRET, which keeps it out of `ps`)"
    )
    parser.add_argument("--ca-cert", help="CA bundle for both TLS servers (or CA_CERT)")
    parser.add_argument("--client-cert", help="client certificate for mTLS (or CLIENT_CERT)")
    parser.add_argument("--client-key", help="its key (or CLIENT_KEY)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cap_ops.smoke",
        description="ORR 5.1 smoke checks of a running CAP Verifier API.",
    )
    parser.add_argument(
        "--env",
        choices=["local"],
        default="local",
        help="the environment of `make up` (default), read from .local/env.json",
    )
    add_target_options(parser)
    parser.add_argument(
        "--timeout",
        type=positive,
        default=DEFAULT_TIMEOUT,
        help=f"seconds per request (default {DEFAULT_TIMEOUT:g})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = parse_args(argv)
    try:
        target = select_target(args, os.environ if environ is None else environ)
        tls_context(target)  # unreadable TLS files are a usage error, not nine failures
    except UsageError as exc:
        print(f"smoke: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run(target, args.timeout, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
