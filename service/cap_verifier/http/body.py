"""Reading JSON request bodies with the contract's status codes (400 / 413 / 415)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import HTTPException

from cap_verifier.domain import BadRequest

# A JSON string, or an unterminated one up to the end (a single pass, never quadratic).
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\Z)')
# An array or object holding no other array or object.
_INNERMOST = re.compile(rb"\[[^\[\]{}]*\]|\{[^\[\]{}]*\}")


def nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether the JSON text ``body`` nests arrays and objects deeper than ``limit``.

    Each pass replaces the innermost containers by a scalar, in C (the regex engine), so the
    check costs nothing like the decoder's recursion it keeps away from.
    """
    text = _STRING.sub(b"0", body)
    for _ in range(limit):
        text, replaced = _INNERMOST.subn(b"0", text)
        if not replaced:
            return False
    return _INNERMOST.search(text) is not None


class JsonBodyReader:
    """Reads request bodies as JSON, nested at most ``max_depth`` deep
    (``limits.max_json_depth``); route handlers get it by dependency injection."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth

    async def __call__(self, request: Request[Any, Any, Any]) -> Any:
        return await read_json(request, self.max_depth)


async def read_json(request: Request[Any, Any, Any], max_depth: int) -> Any:
    """The decoded JSON body; 415 unless the body is ``application/json``, 400 if malformed,
    not UTF-8 or nested deeper than ``max_depth``.

    The body size limit (413) is enforced by Litestar's ``request_max_body_size``.
    """
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise HTTPException(
            status_code=415,
            detail=f"the body must be application/json, not {media_type or 'unspecified'}",
        )
    body = await request.body()
    if not body.strip():
        raise BadRequest("the request body is empty; a JSON object is expected")
    if nesting_exceeds(body, max_depth):
        raise BadRequest(f"the request body nests arrays and objects deeper than {max_depth}")
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise BadRequest("the request body is not valid UTF-8") from None
    except RecursionError:
        raise BadRequest("the request body nests arrays and objects too deeply") from None
