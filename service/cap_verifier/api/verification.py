"""POST /verify: evaluate a context against a stored or embedded policy (contract §3)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, post

from cap_verifier.api.policies import load_policy_v2
from cap_verifier.auth.guards import SCOPE_OPT, require_scope
from cap_verifier.domain import parse_verify_request, verify
from cap_verifier.http.body import read_json
from cap_verifier.http.problems import problem
from cap_verifier.registry import AuditRecord
from cap_verifier.services import services_of

log = logging.getLogger("cap_verifier.verify")


class VerificationController(Controller):
    tags = ["verification"]  # noqa: RUF012
    guards = [require_scope]  # noqa: RUF012

    @post("/verify", operation_id="Verify", status_code=200, opt={SCOPE_OPT: "verify"})
    async def verify(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """Verdict OK / WARN / FAIL with the per-rule report; recorded in the audit table."""
        services = services_of(request.app)
        verify_request = parse_verify_request(await read_json(request))
        if verify_request.policy_id is not None:
            cached = await load_policy_v2(services, verify_request.policy_id)
            if cached is None:
                return problem(404, f"no PolicyV2 with id {verify_request.policy_id[:80]!r}")
            ir = cached.ir
        else:
            assert verify_request.ir is not None  # parse_verify_request guarantees one of both
            ir = verify_request.ir
        now = datetime.now(UTC)
        body = verify(
            ir,
            verify_request.context,
            mode=verify_request.mode,
            policy_id=verify_request.policy_id,
            backend=verify_request.backend,
            adaptive=verify_request.adaptive,
            now=now,
        )
        record = AuditRecord(
            request_id=request.scope["state"]["request_id"],
            client_id=request.scope["state"].get("client_id") or "unknown",
            policy_id=verify_request.policy_id or ir.get("policy_id"),
            policy_hash=body["report"]["policy_hash"],
            ir_hash=body["report"]["ir_hash"],
            verdict=body["result"],
            manifest_hash=body["manifest_hash"],
            proof_hash=body["proof_hash"],
            created_at=now,
        )
        await services.audit.record(record)
        services.metrics.verifications.labels(verdict=body["result"].lower()).inc()
        log.debug(
            "verification recorded",
            extra={
                "event": "verification",
                "verdict": body["result"],
                "policy_id": record.policy_id,
            },
        )
        return Response(body)
