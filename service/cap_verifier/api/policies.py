"""Policy endpoints: v1 LkSG policies (contract §2.1) and PolicyV2 / IR v1 (§2.2)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import anyio
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath

from cap_verifier.auth.guards import SCOPE_OPT, require_scope
from cap_verifier.cache import CachedPolicy
from cap_verifier.domain import (
    BadRequest,
    CompileResult,
    InvalidShape,
    compact_json,
    etag_matches,
    ir_etag,
    parse_compile_v2_request,
    parse_policy_v1,
    policy_v1_hash,
)
from cap_verifier.http.body import read_json
from cap_verifier.http.problems import problem
from cap_verifier.registry import PolicyV1Record, PolicyV2Record
from cap_verifier.services import Services, services_of

_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")
CACHE_CONTROL = "private, max-age=3600"


def _iso(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


def _v1_metadata(record: PolicyV1Record) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "version": record.version,
        "hash": record.policy_hash,
        "status": record.status,
        "created_at": _iso(record.created_at),
        "updated_at": _iso(record.updated_at),
        "description": record.description,
    }


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidShape(f"{path}: expected an object")
    return value


def cached_from_record(record: PolicyV2Record) -> CachedPolicy:
    return CachedPolicy(
        policy_id=record.policy_id,
        version=record.version,
        policy_hash=record.policy_hash,
        ir=json.loads(record.ir_json),
        ir_hash=record.ir_hash,
        etag=ir_etag(record.ir_hash),
    )


async def load_policy_v2(services: Services, policy_id: str) -> CachedPolicy | None:
    """A stored PolicyV2 from the cache, or from the registry on a miss."""
    cached = services.cache.get(policy_id)
    if cached is not None:
        return cached
    record = await anyio.to_thread.run_sync(services.registry.get_policy_v2, policy_id)
    if record is None:
        return None
    cached = cached_from_record(record)
    services.cache.put(cached)
    return cached


class PolicyController(Controller):
    path = "/policy"
    tags = ["policies"]  # noqa: RUF012
    guards = [require_scope]  # noqa: RUF012

    @post(
        "/compile",
        operation_id="CompilePolicyV1",
        status_code=200,
        opt={SCOPE_OPT: "policy_compile"},
    )
    async def compile_v1(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """Compile and store a v1 LkSG policy; idempotent by policy hash."""
        services = services_of(request.app)
        envelope = _object(await read_json(request), "body")
        if "policy" not in envelope:
            raise InvalidShape("policy: required field is missing")
        policy = parse_policy_v1(envelope["policy"])
        body = policy.to_json()
        record, _created = await anyio.to_thread.run_sync(
            lambda: services.registry.put_policy_v1(
                policy_hash=policy_v1_hash(policy),
                name=policy.name,
                version=policy.version,
                description=policy.notes,
                body_json=compact_json(body),
            )
        )
        return Response(
            {
                "policy_id": record.id,
                "policy_hash": record.policy_hash,
                "metadata": _v1_metadata(record),
                "status": "compiled",
            }
        )

    @get("/{policy_ref:str}", operation_id="GetPolicyV1", opt={SCOPE_OPT: "policy_read"})
    async def get_v1(
        self, request: Request[Any, Any, Any], policy_ref: FromPath[str]
    ) -> Response[dict[str, Any]]:
        """A v1 policy by its UUID or by its ``0x…`` hash."""
        services = services_of(request.app)
        if policy_ref.lower().startswith("0x"):
            if not _HEX32.fullmatch(policy_ref):
                raise BadRequest("id: a policy hash is 0x followed by 64 hex digits")
            key = policy_ref.lower()
        else:
            try:
                key = str(uuid.UUID(policy_ref))
            except ValueError:
                return problem(404, f"no v1 policy with id {policy_ref[:80]!r}")
        record = await anyio.to_thread.run_sync(services.registry.get_policy_v1, key)
        if record is None:
            return problem(404, f"no v1 policy with id or hash {key}")
        return Response({"metadata": _v1_metadata(record), "policy": json.loads(record.body_json)})

    @post(
        "/v2/compile",
        operation_id="CompilePolicyV2",
        status_code=200,
        opt={SCOPE_OPT: "policy_compile"},
    )
    async def compile_v2(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """Lint and compile a PolicyV2 to IR v1; store it when ``persist`` is true."""
        services = services_of(request.app)
        compile_request = parse_compile_v2_request(await read_json(request))
        result = compile_request.compile()
        etag = ir_etag(result.ir_hash)
        if result.has_errors:
            return problem(
                422,
                "the policy has lint errors; nothing was stored",
                extra=_compile_body(result, stored=False, etag=etag),
                slug="lint-errors",
            )
        stored = False
        if compile_request.persist:
            record, _created = await anyio.to_thread.run_sync(
                lambda: services.registry.put_policy_v2(
                    policy_id=result.policy.id,
                    version=result.policy.version,
                    policy_hash=result.policy_hash,
                    ir_hash=result.ir_hash,
                    ir_json=compact_json(result.ir),
                    source=compile_request.source_text.encode("utf-8"),
                    media_type=f"application/{compile_request.source_format}",
                )
            )
            services.cache.put(cached_from_record(record))
            stored = True
        return Response(_compile_body(result, stored=stored, etag=etag), headers={"ETag": etag})

    @get("/v2/{policy_id:str}", operation_id="GetPolicyV2", opt={SCOPE_OPT: "policy_read"})
    async def get_v2(
        self, request: Request[Any, Any, Any], policy_id: FromPath[str]
    ) -> Response[Any]:
        """A stored PolicyV2 with its IR; ``If-None-Match`` on the ETag answers 304."""
        services = services_of(request.app)
        cached = await load_policy_v2(services, policy_id)
        if cached is None:
            return problem(404, f"no PolicyV2 with id {policy_id[:80]!r}")
        headers = {"ETag": cached.etag, "Cache-Control": CACHE_CONTROL}
        if etag_matches(request.headers.get("if-none-match"), cached.etag):
            return Response(b"", status_code=304, headers=headers)
        return Response(
            {
                "policy_id": cached.policy_id,
                "version": cached.version,
                "policy_hash": cached.policy_hash,
                "ir": cached.ir,
                "ir_hash": cached.ir_hash,
                "etag": cached.etag,
            },
            headers=headers,
        )


def _compile_body(result: CompileResult, *, stored: bool, etag: str) -> dict[str, Any]:
    return {
        "policy_id": result.policy.id,
        "policy_hash": result.policy_hash,
        "ir": result.ir,
        "ir_hash": result.ir_hash,
        "lints": result.lints_json(),
        "stored": stored,
        "etag": etag,
    }
