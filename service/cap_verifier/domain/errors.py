"""Domain errors: each carries the HTTP status, the problem title and a one-line detail."""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    """Base class of every error the domain core raises on bad client input."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad Request"

    def __init__(self, detail: str) -> None:
        """Keep `detail` as one line: runs of whitespace (newlines included) become one space."""
        self.detail: str = " ".join(detail.split())
        super().__init__(self.detail)


class BadRequest(DomainError):
    """A malformed value: bad base64 or YAML, bad hex, a root or hash that does not match (400)."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad Request"


class InvalidShape(DomainError):
    """Well-formed JSON of the wrong shape: missing field, wrong type, bad enum or pattern (422)."""

    status: ClassVar[int] = 422
    title: ClassVar[str] = "Unprocessable Content"
