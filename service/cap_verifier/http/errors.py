"""Errors of the HTTP exchange itself, as opposed to the request's content."""

from __future__ import annotations


class BodyTimeout(Exception):
    """The request body did not arrive in time (408)."""


class ClientAborted(Exception):
    """The client hung up before its request body was complete (499, never a 5xx)."""
