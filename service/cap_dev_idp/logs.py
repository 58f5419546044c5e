"""JSON-lines logging for the development IdP (local and CI only).

Every record is one JSON object on stderr, in the verifier's schema (``timestamp``, ``level``,
``logger``, ``message``, ``request_id``, ``pid``: :mod:`cap_verifier.logs`), so that one query
reads both. Secrets and tokens are never passed to a logger; the ``authlib`` loggers are held
at WARNING because their DEBUG lines print issued tokens.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from typing import Any

from flask import g, has_request_context

from cap_verifier.logs import CORE_FIELDS, JSONFormatter

LOGGER_NAME = "cap_dev_idp"

_RESERVED = (
    frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"} | set(CORE_FIELDS)
)
REQUEST_ID_KEY = "request_id"
"""Where the request's id lives in ``flask.g`` while it is served."""


class JsonFormatter(JSONFormatter):
    """The verifier's line; every ``extra={...}`` key of the IdP's own calls becomes a field."""

    def request_id(self) -> str | None:
        return g.get(REQUEST_ID_KEY) if has_request_context() else None

    def extra_fields(self, record: logging.LogRecord) -> dict[str, Any]:
        return {
            key: value
            for key, value in record.__dict__.items()
            if key not in _RESERVED and not key.startswith("_")
        }


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
