"""Policy endpoints: v1 LkSG policies (contract §2.1) and PolicyV2 / IR v1 (§2.2)."""

from __future__ import annotations

import json
from typing import Any

import anyio
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from cap_verifier.auth.guards import SCOPE_OPT, require_scope
from cap_verifier.domain import (
    BadRequest,
    CompileResult,
    InvalidShape,
    compact_json,
    is_hex32,
    parse_compile_v2_request,
    parse_policy_v1,
    policy_v1_hash,
)
from cap_verifier.domain.identifiers import HEX_PREFIX, canonical_uuid
from cap_verifier.http.body import JsonBodyReader
from cap_verifier.http.etags import etag_matches, ir_etag
from cap_verifier.http.problems import problem
from cap_verifier.paths import POLICY
from cap_verifier.policy_store import PolicyStore
from cap_verifier.registry import PolicyV1Record, Registry

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


class PolicyController(Controller):
    path = POLICY
    tags = ["policies"]  # noqa: RUF012
    guards = [require_scope]  # noqa: RUF012

    @post(
        "/compile",
        operation_id="CompilePolicyV1",
        status_code=200,
        opt={SCOPE_OPT: "policy_compile"},
    )
    async def compile_v1(
        self,
        request: Request[Any, Any, Any],
        registry: NamedDependency[Registry],
        json_body: NamedDependency[JsonBodyReader],
    ) -> Response[dict[str, Any]]:
        """Compile and store a v1 LkSG policy; idempotent by policy hash."""
        envelope = _object(await json_body(request), "body")
        if "policy" not in envelope:
            raise InvalidShape("policy: required field is missing")
        policy = parse_policy_v1(envelope["policy"])
        body = policy.to_json()
        record, _created = await anyio.to_thread.run_sync(
            lambda: registry.put_policy_v1(
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
        self, policy_ref: FromPath[str], registry: NamedDependency[Registry]
    ) -> Response[dict[str, Any]]:
        """A v1 policy by its UUID or by its ``0x…`` hash."""
        if policy_ref.lower().startswith(HEX_PREFIX):
            if not is_hex32(policy_ref):
                raise BadRequest("id: a policy hash is 0x followed by 64 hex digits")
            key = policy_ref.lower()
        else:
            canonical = canonical_uuid(policy_ref)
            if canonical is None:
                return problem(404, f"no v1 policy with id {policy_ref[:80]!r}")
            key = canonical
        record = await anyio.to_thread.run_sync(registry.get_policy_v1, key)
        if record is None:
            return problem(404, f"no v1 policy with id or hash {key}")
        return Response({"metadata": _v1_metadata(record), "policy": json.loads(record.body_json)})

    @post(
        "/v2/compile",
        operation_id="CompilePolicyV2",
        status_code=200,
        opt={SCOPE_OPT: "policy_compile"},
    )
    async def compile_v2(
        self,
        request: Request[Any, Any, Any],
        policies: NamedDependency[PolicyStore],
        json_body: NamedDependency[JsonBodyReader],
    ) -> Response[dict[str, Any]]:
        """Lint and compile a PolicyV2 to IR v1; store it when ``persist`` is true."""
        compile_request = parse_compile_v2_request(await json_body(request))
        result = compile_request.compile()
        etag = ir_etag(result.ir_hash)
        if result.has_errors:
            return problem(
                422,
                "the policy has lint errors; nothing was stored",
                extra=_compile_body(result, stored=False, etag=etag),
                slug="lint-errors",
            )
        if compile_request.persist:
            await policies.save(result, compile_request)
        body = _compile_body(result, stored=compile_request.persist, etag=etag)
        return Response(body, headers={"ETag": etag})

    @get("/v2/{policy_id:str}", operation_id="GetPolicyV2", opt={SCOPE_OPT: "policy_read"})
    async def get_v2(
        self,
        request: Request[Any, Any, Any],
        policy_id: FromPath[str],
        policies: NamedDependency[PolicyStore],
    ) -> Response[Any]:
        """A stored PolicyV2 with its IR; ``If-None-Match`` on the ETag answers 304."""
        cached = await policies.get(policy_id)
        if cached is None:
            return problem(404, f"no PolicyV2 with id {policy_id[:80]!r}")
        etag = ir_etag(cached.ir.ir_hash)
        headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
        if etag_matches(request.headers.get("if-none-match"), etag):
            return Response(b"", status_code=304, headers=headers)
        return Response(
            {
                "policy_id": cached.policy_id,
                "version": cached.version,
                "policy_hash": cached.ir.policy_hash,
                "ir": cached.ir.to_json(),
                "ir_hash": cached.ir.ir_hash,
                "etag": etag,
            },
            headers=headers,
        )


def _compile_body(result: CompileResult, *, stored: bool, etag: str) -> dict[str, Any]:
    return {
        "policy_id": result.policy.id,
        "policy_hash": result.policy_hash,
        "ir": result.ir.to_json(),
        "ir_hash": result.ir_hash,
        "lints": result.lints_json(),
        "stored": stored,
        "etag": etag,
    }
