"""Entity tags of stored policies and conditional requests (``If-None-Match``)."""

from __future__ import annotations


def ir_etag(ir_hash: str) -> str:
    """The strong ETag of a stored policy: `"ir:<ir_hash>"` with the double quotes."""
    return f'"ir:{ir_hash}"'


def _opaque_tag(tag: str) -> str:
    """The opaque part of an entity tag: without `W/` and without the surrounding quotes."""
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:].lstrip()
    if len(tag) >= 2 and tag[0] == tag[-1] == '"':
        tag = tag[1:-1]
    return tag


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison of `If-None-Match` (a list, `W/` tags or `*`) against `etag`."""
    if not if_none_match:
        return False
    target = _opaque_tag(etag)
    for part in if_none_match.split(","):
        candidate = part.strip()
        if candidate == "*":
            return True
        if candidate and _opaque_tag(candidate) == target:
            return True
    return False
