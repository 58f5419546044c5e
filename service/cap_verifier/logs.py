"""JSON log lines on stdout (contract §7), with the request id of the current request."""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
"""The header a caller may set its own request id in; every response carries it back."""

# The fields every line of the service and of the dev IdP carries (docs/logging.md).
CORE_FIELDS = ("timestamp", "level", "logger", "message", "request_id", "pid")

# A UUID, or a short token of safe characters with at least one letter: never an e-mail
# address or a phone number, which would carry personal data into every log line.
_SANE_REQUEST_ID = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"|(?=[^A-Za-z]*[A-Za-z])[A-Za-z0-9][A-Za-z0-9._-]{7,63}"
)


def accepted_request_id(candidate: str | None) -> str:
    """The caller's ``X-Request-ID`` when sane, else a new UUID4 (the rejected value is dropped)."""
    if candidate is not None and _SANE_REQUEST_ID.fullmatch(candidate):
        return candidate
    return str(uuid.uuid4())


ERROR_FIELD = "error"
"""An exception's type and message (never its traceback)."""

# Extra attributes a log call may carry into the JSON line (access lines and events);
# docs/logging.md describes each.
EXTRA_FIELDS = (
    "method",
    "endpoint",
    "status",
    "duration_ms",
    "client_id",
    "client_san",
    "event",
    "reason",
    "outcome",
    "verdict",
    "policy_id",
    "policy_hash",
    "rows",
    "cutoff",
    "dry_run",
)


class JSONFormatter(logging.Formatter):
    """One JSON object per record: timestamp, level, message, request_id and known extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = dict(
            zip(
                CORE_FIELDS,
                (
                    datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                    record.levelname,
                    record.name,
                    record.getMessage(),
                    getattr(record, "request_id", None) or self.request_id(),
                    record.process,
                ),
                strict=True,
            )
        )
        line.update(self.extra_fields(record))
        if record.exc_info and record.exc_info[0] is not None:
            # Type and message only: a traceback can carry request data into the logs.
            line[ERROR_FIELD] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(line, ensure_ascii=False, default=str)

    def request_id(self) -> str | None:
        """The id of the request being served, when there is one."""
        return request_id_var.get()

    def extra_fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """The known extras the record carries (an allow-list: nothing else reaches a line)."""
        fields = ((name, getattr(record, name, None)) for name in EXTRA_FIELDS)
        return {name: value for name, value in fields if value is not None}


def configure_logging(level: str) -> None:
    """Route every logger to stdout as JSON lines at ``level``."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def granian_log_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for granian's own loggers, in the same JSON format."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "cap_verifier.logs.JSONFormatter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {
            "_granian": {"handlers": ["console"], "level": level, "propagate": False},
            "granian.access": {"handlers": ["console"], "level": level, "propagate": False},
        },
        "root": {"handlers": ["console"], "level": level},
    }
