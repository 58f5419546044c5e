"""Errors raised by the policy registry.

Messages are safe to show to a client: they never hold SQL, parameters or the database URL.
The underlying driver error stays available as ``__cause__`` for server-side logs.
"""

from __future__ import annotations

__all__ = ["PolicyConflict", "RegistryError", "RegistryUnavailable"]


class RegistryError(Exception):
    """Base class of every registry error (an unexpected database error maps to HTTP 500)."""


class RegistryUnavailable(RegistryError):
    """The database cannot be reached or is not answering in time (HTTP 503).

    Raised for a refused or timed-out connection, a lost connection, an exhausted pool, a
    SQLite database locked beyond its busy timeout and any other ``OperationalError``.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"policy registry unavailable: {reason}")


class PolicyConflict(RegistryError):
    """A PolicyV2 id is already stored with a different ``policy_hash`` (HTTP 409)."""

    def __init__(self, policy_id: str, stored_hash: str, given_hash: str) -> None:
        self.policy_id = policy_id
        self.stored_hash = stored_hash
        self.given_hash = given_hash
        super().__init__(
            f"policy {policy_id!r} is already stored with policy_hash {stored_hash}, "
            f"not {given_hash}"
        )
