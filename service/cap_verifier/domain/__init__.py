"""Pure domain core of the CAP Verifier: policies, IR, lints, evaluation and hashes (no I/O).

Modules: `encoding` (canonical JSON), `digests` (SHA3, BLAKE3), `identifiers` (hex32, sha3
refs, ids), `json_input` (checked reading of untrusted JSON), `policy_v1`, `policy_model`,
`policy_source`, `lints`, `ir`, `compiler` (PolicyV2) and `verification`.
"""

from cap_verifier.domain.compiler import (
    CompileResult,
    CompileV2Request,
    compile_policy_v2,
    parse_compile_v2_request,
)
from cap_verifier.domain.digests import blake3_hex, blake3_root, sha3_hex, sha3_ref
from cap_verifier.domain.encoding import (
    JsonValue,
    compact_json,
    compact_json_sorted,
    sort_keys_deep,
)
from cap_verifier.domain.errors import BadRequest, DomainError, InvalidShape
from cap_verifier.domain.identifiers import is_hex32, normalize_hex32, normalize_sha3_ref
from cap_verifier.domain.ir import IR, IR_VERSION, build_ir, compute_ir_hash, parse_ir
from cap_verifier.domain.lints import Lint, LintLevel, LintMode, lint_policy
from cap_verifier.domain.policy_model import (
    BUILTIN_VARIABLES,
    KNOWN_OPS,
    Activation,
    Adaptivity,
    InputSpec,
    LegalBasis,
    PolicyV2,
    Predicate,
    RuleV2,
    policy_v2_hash,
)
from cap_verifier.domain.policy_source import (
    decode_base64_text,
    decode_policy_yaml,
    load_policy_yaml,
    parse_policy_v2,
)
from cap_verifier.domain.policy_v1 import (
    ConstraintsV1,
    PolicyV1,
    parse_policy_v1,
    policy_v1_hash,
)
from cap_verifier.domain.verification import (
    Context,
    Evaluation,
    RuleOutcome,
    RuleStatus,
    Verdict,
    VerifyMode,
    VerifyRequest,
    company_commitment_root,
    evaluate,
    manifest_hash,
    parse_context,
    parse_verify_request,
    proof_hash,
    rfc3339_utc,
    statement,
    verify,
)

__all__ = [
    "BUILTIN_VARIABLES",
    "IR",
    "IR_VERSION",
    "KNOWN_OPS",
    "Activation",
    "Adaptivity",
    "BadRequest",
    "CompileResult",
    "CompileV2Request",
    "ConstraintsV1",
    "Context",
    "DomainError",
    "Evaluation",
    "InputSpec",
    "InvalidShape",
    "JsonValue",
    "LegalBasis",
    "Lint",
    "LintLevel",
    "LintMode",
    "PolicyV1",
    "PolicyV2",
    "Predicate",
    "RuleOutcome",
    "RuleStatus",
    "RuleV2",
    "Verdict",
    "VerifyMode",
    "VerifyRequest",
    "blake3_hex",
    "blake3_root",
    "build_ir",
    "compact_json",
    "compact_json_sorted",
    "company_commitment_root",
    "compile_policy_v2",
    "compute_ir_hash",
    "decode_base64_text",
    "decode_policy_yaml",
    "evaluate",
    "is_hex32",
    "lint_policy",
    "load_policy_yaml",
    "manifest_hash",
    "normalize_hex32",
    "normalize_sha3_ref",
    "parse_compile_v2_request",
    "parse_context",
    "parse_ir",
    "parse_policy_v1",
    "parse_policy_v2",
    "parse_verify_request",
    "policy_v1_hash",
    "policy_v2_hash",
    "proof_hash",
    "rfc3339_utc",
    "sha3_hex",
    "sha3_ref",
    "sort_keys_deep",
    "statement",
    "verify",
]
