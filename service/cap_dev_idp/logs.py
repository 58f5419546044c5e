"""JSON-lines logging for the development IdP (local and CI only).

Every record is one JSON object on stderr. Secrets and tokens are never passed to a logger;
the ``authlib`` loggers are held at WARNING because their DEBUG lines print issued tokens.
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any

LOGGER_NAME = "cap_dev_idp"

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object; ``extra={...}`` keys become fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str, separators=(",", ":"))


class StderrHandler(logging.Handler):
    """Write to whatever ``sys.stderr`` is at emit time (pytest swaps it between tests)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping, also handed to granian for its workers."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "json": {"class": f"{__name__}.StderrHandler", "formatter": "json"},
        },
        "loggers": {
            LOGGER_NAME: {"handlers": ["json"], "level": level, "propagate": False},
            "_granian": {"handlers": ["json"], "level": level, "propagate": False},
            "granian.access": {"handlers": ["json"], "level": "WARNING", "propagate": False},
            "authlib": {"handlers": ["json"], "level": "WARNING", "propagate": False},
        },
    }


def configure(level: str = "INFO") -> None:
    """Install the JSON handlers in this process."""
    logging.config.dictConfig(logging_config(level))


def get_logger(name: str) -> logging.Logger:
    """A child of the package logger, e.g. ``get_logger("keys")``."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}")
