"""Compiling a PolicyV2 (contract 2.2): the request envelope, then parse, hash, IR and lints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cap_verifier.domain.encoding import JsonValue, compact_json
from cap_verifier.domain.errors import BadRequest
from cap_verifier.domain.ir import IR, build_ir
from cap_verifier.domain.json_input import require_bool, require_object, to_json_value
from cap_verifier.domain.lints import Lint, LintMode, lint_policy, require_lint_mode
from cap_verifier.domain.policy_model import PolicyV2
from cap_verifier.domain.policy_source import (
    decode_base64_text,
    load_policy_yaml,
    parse_policy_v2,
)

SourceFormat = Literal["yaml", "json"]


@dataclass(frozen=True)
class CompileResult:
    """The outcome of compiling a PolicyV2."""

    policy: PolicyV2
    ir: IR
    lints: list[Lint]

    @property
    def policy_hash(self) -> str:
        """`sha3-256:` hash of the policy's canonical JSON."""
        return self.ir.policy_hash

    @property
    def ir_hash(self) -> str:
        """`sha3-256:` hash of the IR."""
        return self.ir.ir_hash

    @property
    def has_errors(self) -> bool:
        """True when any lint is an error (the compile is then a 422 and nothing is stored)."""
        return any(lint.level == "error" for lint in self.lints)

    def lints_json(self) -> list[dict[str, str | None]]:
        """The lints as response objects."""
        return [lint.to_json() for lint in self.lints]


def compile_policy_v2(obj: object, mode: LintMode, *, path: str = "policy") -> CompileResult:
    """Parse (InvalidShape/BadRequest on bad input), hash, lint and compile a PolicyV2."""
    policy = parse_policy_v2(obj, path=path)
    return CompileResult(policy=policy, ir=build_ir(policy), lints=lint_policy(policy, mode))


@dataclass(frozen=True)
class CompileV2Request:
    """The envelope of POST /policy/v2/compile, with the policy document decoded."""

    document: JsonValue
    document_path: str
    source_format: SourceFormat
    source_text: str
    lint_mode: LintMode
    persist: bool

    def compile(self) -> CompileResult:
        """Compile the decoded document with the requested lint mode."""
        return compile_policy_v2(self.document, self.lint_mode, path=self.document_path)


def parse_compile_v2_request(obj: object) -> CompileV2Request:
    """Validate the compile envelope: exactly one of policy_yaml / policy (else 400)."""
    body = require_object(obj, "")
    has_yaml, has_json = body.get("policy_yaml") is not None, body.get("policy") is not None
    if has_yaml == has_json:
        which = "both" if has_yaml else "neither"
        raise BadRequest(
            f"request body: exactly one of policy_yaml and policy is required, got {which}"
        )
    lint_mode = body.get("lint_mode")
    persist = body.get("persist")
    mode: LintMode = "strict" if lint_mode is None else require_lint_mode(lint_mode)
    keep = False if persist is None else require_bool(persist, "persist")
    if has_yaml:
        text = decode_base64_text(body["policy_yaml"], path="policy_yaml")
        document = load_policy_yaml(text, path="policy_yaml")
        return CompileV2Request(document, "policy_yaml", "yaml", text, mode, keep)
    document = to_json_value(body["policy"], "policy")
    return CompileV2Request(document, "policy", "json", compact_json(document), mode, keep)
