"""POST /verify: evaluate a context against a stored or embedded policy (contract §3)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency

from cap_verifier.audit import AuditWriter
from cap_verifier.auth.guards import SCOPE_OPT, require_scope
from cap_verifier.domain import parse_verify_request, verify
from cap_verifier.http.body import JsonBodyReader
from cap_verifier.http.problems import problem
from cap_verifier.metrics import Metrics
from cap_verifier.paths import VERIFY
from cap_verifier.policy_store import PolicyStore
from cap_verifier.registry import AuditRecord

log = logging.getLogger("cap_verifier.verify")


class VerificationController(Controller):
    tags = ["verification"]  # noqa: RUF012
    guards = [require_scope]  # noqa: RUF012

    @post(VERIFY, operation_id="Verify", status_code=200, opt={SCOPE_OPT: "verify"})
    async def verify(
        self,
        request: Request[Any, Any, Any],
        json_body: NamedDependency[JsonBodyReader],
        policies: NamedDependency[PolicyStore],
        audit: NamedDependency[AuditWriter],
        metrics: NamedDependency[Metrics],
    ) -> Response[dict[str, Any]]:
        """Verdict OK / WARN / FAIL with the per-rule report; recorded in the audit table."""
        verify_request = parse_verify_request(await json_body(request))
        if verify_request.policy_id is not None:
            cached = await policies.get(verify_request.policy_id)
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
            policy_id=verify_request.policy_id or ir.policy_id,
            policy_hash=body["report"]["policy_hash"],
            ir_hash=body["report"]["ir_hash"],
            verdict=body["result"],
            manifest_hash=body["manifest_hash"],
            proof_hash=body["proof_hash"],
            created_at=now,
        )
        await audit.record(record)
        metrics.verifications.labels(verdict=body["result"].lower()).inc()
        log.debug(
            "verification recorded",
            extra={
                "event": "verification",
                "verdict": body["result"],
                "policy_id": record.policy_id,
            },
        )
        return Response(body)
