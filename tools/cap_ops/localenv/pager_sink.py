"""The local pager: an HTTPS receiver that answers like PagerDuty's Events API v2
(``/v2/enqueue``), Opsgenie's Alert API (``/v2/alerts``, ``/v2/alerts/<alias>/close``) and a
Slack incoming webhook (``/services/…``), and records every request it gets as one JSON line
(`.local/pages.log`; ``GET /healthz`` excepted). Keys are never written: only whether one was
sent and its fingerprint (the first 12 hex digits of its SHA-256). Binds to 127.0.0.1 only."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import ssl
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PAGERDUTY_PATH = "/v2/enqueue"
OPSGENIE_PREFIX = "/v2/alerts"
SLACK_PREFIX = "/services/"
HEALTHZ = "/healthz"
MAX_BODY = 1024 * 1024
HANDSHAKE_TIMEOUT = 10.0
PAGERDUTY_ACTIONS = ("trigger", "acknowledge", "resolve")
OPSGENIE_PRIORITIES = ("P1", "P2", "P3", "P4", "P5")

Record = dict[str, Any]


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"


def fingerprint(secret: str) -> str:
    """What the log keeps of a key: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def _json_reply(status: int, body: dict[str, Any]) -> Reply:
    return Reply(status, json.dumps(body).encode())


def _key(record: Record, secret: str | None) -> None:
    record["key_present"] = bool(secret)
    record["key_sha256"] = fingerprint(secret) if secret else None


def pagerduty(record: Record, body: Any) -> Reply:
    """Events API v2: 202 with the dedup key, or 400 like PagerDuty for a bad event."""
    event: dict[str, Any] = body if isinstance(body, dict) else {}
    payload: dict[str, Any] = event["payload"] if isinstance(event.get("payload"), dict) else {}
    routing_key = event.get("routing_key")
    _key(record, routing_key if isinstance(routing_key, str) else None)
    record.update(
        event_action=event.get("event_action"),
        dedup_key=event.get("dedup_key"),
        severity=payload.get("severity"),
        summary=payload.get("summary"),
        source=payload.get("source"),
        links=event.get("links", []),
        client=event.get("client"),
    )
    errors = []
    if not record["key_present"]:
        errors.append("'routing_key' is missing or blank")
    if event.get("event_action") not in PAGERDUTY_ACTIONS:
        errors.append("'event_action' is missing or invalid")
    if event.get("event_action") == "trigger" and not payload.get("summary"):
        errors.append("'payload.summary' is missing or blank")
    if errors:
        invalid = {"status": "invalid event", "message": "Event object is invalid"}
        return _json_reply(400, {**invalid, "errors": errors})
    dedup_key = event.get("dedup_key") or uuid.uuid4().hex
    record["dedup_key"] = dedup_key
    reply = {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
    return _json_reply(202, reply)


def opsgenie(record: Record, path: str, headers: dict[str, str], body: Any) -> Reply:
    """Alert API v2: create (``/v2/alerts``) or close (``/v2/alerts/<alias>/close``), 202."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    _key(record, value.strip() if scheme.lower() == "geniekey" else None)
    alert = body if isinstance(body, dict) else {}
    rest = path.removeprefix(OPSGENIE_PREFIX).strip("/").split("/")
    action = "create" if rest == [""] else rest[-1] if len(rest) == 2 else "unknown"
    record.update(
        action=action,
        alias=alert.get("alias") if action == "create" else rest[0],
        priority=alert.get("priority"),
        message=alert.get("message"),
        note=alert.get("note"),
        tags=alert.get("tags", []),
        source=alert.get("source"),
    )
    took = {"took": 0.001, "requestId": str(uuid.uuid4())}
    if not record["key_present"]:
        return _json_reply(401, {"message": "Could not authenticate", **took})
    if action not in ("create", "close", "acknowledge"):
        return _json_reply(404, {"message": "Not found", **took})
    if action == "create" and not alert.get("message"):
        return _json_reply(422, {"message": "Message can not be empty.", **took})
    if action == "create" and alert.get("priority", "P3") not in OPSGENIE_PRIORITIES:
        return _json_reply(422, {"message": "Priority should be one of P1-P5.", **took})
    return _json_reply(202, {"result": "Request will be processed", **took})


def slack(record: Record, path: str, body: Any) -> Reply:
    """An incoming webhook: 200 ``ok``; the path's token is the key."""
    token = path.removeprefix(SLACK_PREFIX)
    _key(record, token or None)
    message = body if isinstance(body, dict) else {}
    attachments = message.get("attachments") or [{}]
    first = attachments[0] if isinstance(attachments[0], dict) else {}
    record.update(
        channel=message.get("channel"),
        title=first.get("title"),
        text=first.get("text", message.get("text")),
        color=first.get("color"),
    )
    if not token:
        return Reply(403, b"invalid_token", "text/plain")
    if not isinstance(body, dict):
        return Reply(400, b"invalid_payload", "text/plain")
    return Reply(200, b"ok", "text/plain")


def handle(method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[Record, Reply]:
    """The record of one request and the reply a real service would give."""
    path = urlsplit(target).path
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    record: Record = {"time": now, "method": method, "path": path}
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = None
        record["body_error"] = "not JSON"
    if method != "POST":
        record["api"] = "unknown"
        reply = Reply(405, b"method not allowed", "text/plain")
    elif path == PAGERDUTY_PATH:
        record["api"] = "pagerduty"
        reply = pagerduty(record, body)
    elif path == OPSGENIE_PREFIX or path.startswith(OPSGENIE_PREFIX + "/"):
        record["api"] = "opsgenie"
        reply = opsgenie(record, path, headers, body)
    elif path.startswith(SLACK_PREFIX):
        record["api"] = "slack"
        reply = slack(record, path, body)
    else:
        record["api"] = "unknown"
        reply = Reply(404, b"not found", "text/plain")
    record["status"] = reply.status
    return record, reply


# --- reading the log ----------------------------------------------------------------------

TRIGGER, RESOLVE = "trigger", "resolve"


def read_records(log: Path, offset: int = 0) -> list[Record]:
    """The records written after byte ``offset`` (a partly written last line is left out)."""
    if not log.exists():
        return []
    with log.open("rb") as source:
        source.seek(offset)
        data = source.read()
    return [json.loads(line) for line in data.split(b"\n") if line.strip().endswith(b"}")]


def phase(record: Record) -> str | None:
    """``trigger`` or ``resolve`` for a page, a ticket or a chat message; None otherwise."""
    api = record.get("api")
    if api == "pagerduty":
        return {"trigger": TRIGGER, "resolve": RESOLVE}.get(record.get("event_action") or "")
    if api == "opsgenie":
        return {"create": TRIGGER, "close": RESOLVE}.get(record.get("action") or "")
    if api == "slack":
        return RESOLVE if record.get("color") == "good" else TRIGGER
    return None


def incident_key(record: Record) -> str | None:
    """What ties a resolve to its trigger: PagerDuty's dedup key, Opsgenie's alias."""
    key = record.get("dedup_key") if record.get("api") == "pagerduty" else record.get("alias")
    return key if isinstance(key, str) else None


def headline(record: Record) -> str:
    """The human text of a delivery: the summary, message or title."""
    return str(record.get("summary") or record.get("message") or record.get("title") or "")


def describe(record: Record) -> str:
    """One line for a person: API, phase, HTTP status and the fields that matter."""
    api = record.get("api", "?")
    fields = {
        "pagerduty": ("severity", "dedup_key", "links"),
        "opsgenie": ("priority", "alias", "note", "tags"),
        "slack": ("channel", "text"),
    }.get(str(api), ("path",))
    parts = [f"{api:<9}", f"{phase(record) or '-':<7}", str(record.get("status"))]
    parts += [f"{name}={json.dumps(record[name])}" for name in fields if record.get(name)]
    if record.get("key_present"):
        parts.append(f"key=sha256:{record['key_sha256']}")
    else:
        parts.append("key=MISSING")
    if headline(record):
        parts.append(json.dumps(headline(record)))
    return " ".join(parts)


# --- serving --------------------------------------------------------------------------------


class _TLSServer(ThreadingHTTPServer):
    """The TLS handshake happens in each request's thread, so a silent client blocks no one."""

    daemon_threads = True
    context: ssl.SSLContext

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        super().finish_request(tls, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-request is not the sink's problem


def make_server(
    port: int, log: Path, cert: Path, key: Path, host: str = "127.0.0.1"
) -> ThreadingHTTPServer:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_error(413)
                return
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            record, reply = handle(self.command, self.path, headers, raw)
            with lock, log.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record, sort_keys=True) + "\n")
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def do_GET(self) -> None:
            if urlsplit(self.path).path == HEALTHZ:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._serve()

        do_POST = _serve
        do_PUT = _serve
        do_DELETE = _serve
        do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert, key)
    server = _TLSServer((host, port), Handler)
    server.context = context
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    args = parser.parse_args()
    server = make_server(args.port, args.log, args.cert, args.key)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
