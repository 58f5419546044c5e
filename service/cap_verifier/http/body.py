"""Reading JSON request bodies with the contract's status codes (400 / 413 / 415)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import HTTPException

from cap_verifier.domain import BadRequest


async def read_json(request: Request[Any, Any, Any]) -> Any:
    """The decoded JSON body; 415 unless the body is ``application/json``, 400 if malformed.

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
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
