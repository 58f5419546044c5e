"""The local Alertmanager receiver: a webhook that appends each delivered alert to a file,
one JSON object per line (`.local/alerts.log`). Binds to 127.0.0.1 only."""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY = 1024 * 1024


def alert_lines(payload: dict[str, Any]) -> list[str]:
    """One line per alert of an Alertmanager webhook payload (version 4)."""
    lines = []
    for alert in payload.get("alerts", []):
        record = {
            "receiver": payload.get("receiver"),
            "status": alert.get("status"),
            "labels": alert.get("labels", {}),
            "annotations": alert.get("annotations", {}),
            "startsAt": alert.get("startsAt"),
            "endsAt": alert.get("endsAt"),
            "fingerprint": alert.get("fingerprint"),
        }
        lines.append(json.dumps(record, sort_keys=True))
    return lines


def make_server(port: int, log: Path) -> ThreadingHTTPServer:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.path != "/alerts" or not 0 < length <= MAX_BODY:
                self.send_error(400 if self.path == "/alerts" else 404)
                return
            try:
                payload = json.loads(self.rfile.read(length))
            except ValueError:
                self.send_error(400, "body is not JSON")
                return
            with lock, log.open("a", encoding="utf-8") as out:
                for line in alert_lines(payload):
                    out.write(line + "\n")
            self.send_response(204)
            self.end_headers()

        def do_GET(self) -> None:
            status = 200 if self.path == "/healthz" else 404
            self.send_response(status)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    server = make_server(args.port, args.log)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
