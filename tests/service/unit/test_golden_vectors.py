"""Every test vector of the contract (docs/contract.md, 2 and 3), as support.vectors reads them."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest

from cap_verifier.domain import (
    blake3_hex,
    build_ir,
    compact_json,
    company_commitment_root,
    compile_policy_v2,
    decode_policy_yaml,
    manifest_hash,
    normalize_hex32,
    normalize_sha3_ref,
    parse_context,
    parse_ir,
    parse_policy_v1,
    parse_policy_v2,
    policy_v1_hash,
    policy_v2_hash,
    proof_hash,
    sha3_hex,
    statement,
    verify,
)
from cap_verifier.http.etags import etag_matches, ir_etag
from support.vectors import (
    COMPANY_ROOT,
    LKSG_IR_HASH,
    LKSG_IR_TEXT,
    LKSG_JSON,
    LKSG_POLICY_HASH,
    LKSG_YAML,
    PROOF_HASH,
    V1_HASH,
    V1_POLICY,
    VERIFY_SUPPLIERS,
    VERIFY_UBOS,
)

NOW = datetime(2025, 10, 25, 9, 0, tzinfo=UTC)


def b64(text: str) -> str:
    """Standard base64 of UTF-8 text."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


# --------------------------------------------------------------------------- v1


def _v1_reordered() -> dict[str, Any]:
    """The v1 vector with its keys in another order plus an unknown key."""
    policy = {key: V1_POLICY[key] for key in reversed(list(V1_POLICY))}
    policy["constraints"] = {"supplier_count_max": 10, "require_at_least_one_ubo": True}
    policy["extra"] = "ignored"
    return policy


@pytest.mark.parametrize("policy", [V1_POLICY, _v1_reordered()], ids=["as-given", "reordered"])
def test_v1_policy_hash_vector(policy: dict[str, Any]) -> None:
    assert policy_v1_hash(parse_policy_v1(policy)) == V1_HASH


def test_v1_canonical_json_orders_keys_and_always_writes_notes() -> None:
    policy = {
        "notes": None,
        "constraints": {
            "require_statement_roots": ["jurisdiction_root"],
            "ubo_count_min": 1,
            "supplier_count_max": 3,
            "require_at_least_one_ubo": False,
        },
        "created_at": "2025-01-01T00:00:00+01:00",
        "name": "Prüfung",
        "version": "lksg.v2",
    }
    expected = (
        '{"version":"lksg.v2","name":"Prüfung","created_at":"2025-01-01T00:00:00+01:00",'
        '"constraints":{"require_at_least_one_ubo":false,"supplier_count_max":3,'
        '"ubo_count_min":1,"require_statement_roots":["jurisdiction_root"]},"notes":""}'
    )
    parsed = parse_policy_v1(policy)
    assert compact_json(parsed.to_json()) == expected
    assert policy_v1_hash(parsed) == "0x" + hashlib.sha3_256(expected.encode()).hexdigest()


def test_sha3_is_fips_sha3_not_keccak() -> None:
    assert sha3_hex("") == "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"


def test_blake3_empty_input_vector() -> None:
    assert blake3_hex("") == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


# --------------------------------------------------------------------------- PolicyV2 / IR


def _json_with_unknown_keys() -> dict[str, Any]:
    """The JSON vector with unknown keys at several levels and keys reordered."""
    policy = copy.deepcopy(LKSG_JSON)
    policy["owner"] = "compliance"
    policy["inputs"]["sanctions_root"]["comment"] = "x"
    policy["rules"][0]["note"] = "ignored"
    policy["legal_basis"][0]["url"] = "https://example.invalid"
    return {key: policy[key] for key in sorted(policy)}


def _wrapped_b64(text: str) -> str:
    """Base64 wrapped at 76 characters, as `base64` prints it."""
    raw = b64(text)
    return "\n".join(raw[i : i + 76] for i in range(0, len(raw), 76))


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(lambda: decode_policy_yaml(b64(LKSG_YAML)), id="yaml-base64"),
        pytest.param(lambda: decode_policy_yaml(_wrapped_b64(LKSG_YAML)), id="yaml-wrapped"),
        pytest.param(
            lambda: decode_policy_yaml(b64(LKSG_YAML + "owner: compliance\n")), id="yaml-extra"
        ),
        pytest.param(lambda: copy.deepcopy(LKSG_JSON), id="json"),
        pytest.param(_json_with_unknown_keys, id="json-extra-keys"),
    ],
)
def test_policy_v2_vector(document: Any) -> None:
    result = compile_policy_v2(document(), "strict")
    assert result.policy_hash == LKSG_POLICY_HASH
    assert result.ir_hash == LKSG_IR_HASH
    assert result.ir.ir_hash == LKSG_IR_HASH
    assert result.lints == []
    assert not result.has_errors
    assert compact_json(result.ir.to_json()) == LKSG_IR_TEXT


def test_policy_hash_and_ir_hash_functions_agree_with_vector() -> None:
    policy = parse_policy_v2(LKSG_JSON)
    assert policy_v2_hash(policy) == LKSG_POLICY_HASH
    assert build_ir(policy).ir_hash == LKSG_IR_HASH


COMPILE_FROM_STDIN = (
    "import json, sys\n"
    "from cap_verifier.domain import compile_policy_v2\n"
    "print(compile_policy_v2(json.load(sys.stdin), 'strict').ir.canonical_json())\n"
)


@pytest.mark.parametrize("seed", ["0", "1"])
def test_ir_bytes_do_not_depend_on_the_hash_seed(seed: str) -> None:
    """Sets and dicts of strings iterate in another order under another hash seed: a compile
    in a process with another seed gives the same bytes as this one and the vector."""
    here = compile_policy_v2(LKSG_JSON, "strict").ir.canonical_json()
    there = subprocess.run(
        [sys.executable, "-c", COMPILE_FROM_STDIN],
        input=json.dumps(LKSG_JSON),
        env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONIOENCODING": "utf-8"},
        capture_output=True,
        encoding="utf-8",
        check=True,
    ).stdout
    assert there == here + "\n"
    assert here == LKSG_IR_TEXT


def test_ir_sorts_rules_and_nested_operand_keys() -> None:
    policy = copy.deepcopy(LKSG_JSON)
    policy["rules"] = [
        {"id": "z_rule", "op": "eq", "lhs": {"b": 1, "a": 2}, "rhs": 3},
        {"id": "a_rule", "op": "range_min", "lhs": "supplier_hashes", "rhs": 1},
    ]
    ir = compile_policy_v2(policy, "strict").ir.to_json()
    rules = cast(list[dict[str, Any]], ir["rules"])
    assert [rule["id"] for rule in rules] == ["a_rule", "z_rule"]
    assert rules[0]["lhs"] == {"var": "supplier_hashes"}
    assert list(rules[1]["lhs"]) == ["a", "b"]
    assert list(ir) == ["ir_version", "policy_id", "policy_hash", "rules", "ir_hash"]


def test_parse_ir_round_trip_is_identity() -> None:
    ir = compile_policy_v2(LKSG_JSON, "strict").ir.to_json()
    assert compact_json(parse_ir(ir).to_json()) == LKSG_IR_TEXT
    assert compact_json(parse_ir(parse_ir(ir).to_json()).to_json()) == LKSG_IR_TEXT


def test_parse_ir_accepts_upper_case_hashes_and_returns_lower_case() -> None:
    ir = compile_policy_v2(LKSG_JSON, "strict").ir.to_json()
    ir["ir_hash"] = "sha3-256:" + LKSG_IR_HASH.removeprefix("sha3-256:").upper()
    assert parse_ir(ir).ir_hash == LKSG_IR_HASH


@pytest.mark.parametrize(
    ("yaml_text", "key", "expected"),
    [
        ('id: a\nversion: "1"\nrules: [{id: r, op: eq, lhs: 1, rhs: yes}]\n', "rhs", "yes"),
        ('id: a\nversion: "1"\nrules: [{id: r, op: eq, lhs: 1, rhs: on}]\n', "rhs", "on"),
        ('id: a\nversion: "1"\nrules: [{id: r, op: eq, lhs: 1, rhs: no}]\n', "rhs", "no"),
        ('id: a\nversion: "1"\nrules: [{id: r, op: eq, lhs: 1, rhs: true}]\n', "rhs", True),
        (
            'id: a\nversion: "1"\nrules: [{id: r, op: eq, lhs: 1, rhs: 2025-01-01}]\n',
            "rhs",
            "2025-01-01",
        ),
        (
            '%YAML 1.1\n---\nid: a\nversion: "1"\nrules: [{id: r, op: eq, lhs: 1, rhs: yes}]\n',
            "rhs",
            "yes",
        ),
    ],
)
def test_yaml_is_read_as_yaml_1_2(yaml_text: str, key: str, expected: object) -> None:
    policy = parse_policy_v2(decode_policy_yaml(b64(yaml_text)))
    assert getattr(policy.rules[0], key) == expected


# --------------------------------------------------------------------------- verification


def _context(suppliers: list[str], ubos: list[str]) -> dict[str, Any]:
    return {"supplier_hashes": suppliers, "ubo_hashes": ubos}


def test_company_root_and_proof_hash_vector() -> None:
    ctx = parse_context(_context(VERIFY_SUPPLIERS, VERIFY_UBOS))
    assert company_commitment_root(ctx) == COMPANY_ROOT
    assert proof_hash(statement(LKSG_POLICY_HASH, COMPANY_ROOT, ctx)) == PROOF_HASH
    ir = compile_policy_v2(LKSG_JSON, "strict").ir
    body = verify(
        ir, ctx, mode="embedded_ir", policy_id=None, backend="mock", adaptive=False, now=NOW
    )
    assert body["proof_hash"] == PROOF_HASH


@pytest.mark.parametrize("field", ["supplier_hashes", "ubo_hashes"])
def test_upper_case_hex_gives_the_same_root_and_proof(field: str) -> None:
    lower = {"supplier_hashes": ["0x" + "ab" * 32], "ubo_hashes": ["0x" + "cd" * 32]}
    upper = {**lower, field: ["0x" + lower[field][0][2:].upper()]}
    ctx_lower, ctx_upper = parse_context(lower), parse_context(upper)
    assert ctx_upper == ctx_lower
    root = company_commitment_root(ctx_upper)
    assert root == company_commitment_root(ctx_lower)
    assert root == "0x" + blake3_hex("0x" + "ab" * 32 + "0x" + "cd" * 32)
    assert proof_hash(statement(LKSG_POLICY_HASH, root, ctx_upper)) == proof_hash(
        statement(LKSG_POLICY_HASH, root, ctx_lower)
    )


def test_proof_hash_is_independent_of_time_and_manifest_is_not() -> None:
    ctx = parse_context(_context(VERIFY_SUPPLIERS, VERIFY_UBOS))
    ir = compile_policy_v2(LKSG_JSON, "strict").ir
    kwargs: dict[str, Any] = {
        "mode": "policy_id",
        "policy_id": "lksg.v1",
        "backend": "mock",
        "adaptive": False,
    }
    first = verify(ir, ctx, now=NOW, **kwargs)
    later = verify(ir, ctx, now=NOW + timedelta(seconds=1), **kwargs)
    assert first["proof_hash"] == later["proof_hash"] == PROOF_HASH
    assert first["manifest_hash"] != later["manifest_hash"]


def test_given_company_root_wins_over_the_hash_lists() -> None:
    ctx = parse_context(
        {**_context(VERIFY_SUPPLIERS, VERIFY_UBOS), "company_commitment_root": "0x" + "AB" * 32}
    )
    assert company_commitment_root(ctx) == "0x" + "ab" * 32


def test_manifest_hash_follows_the_contract_formula() -> None:
    sanctions = "0x" + "4" * 64
    ctx = parse_context({**_context(VERIFY_SUPPLIERS, VERIFY_UBOS), "sanctions_root": sanctions})
    expected_text = (
        '{"company_commitment_root":"' + COMPANY_ROOT + '",'
        '"created_at":"2025-10-25T09:00:00Z","jurisdiction_root":null,'
        '"policy":{"hash":"' + LKSG_POLICY_HASH + '","name":"lksg.v1","version":"lksg.v1"},'
        '"proof":{"proof_type":"mock","status":"ok"},'
        '"sanctions_root":"' + sanctions + '","version":"manifest.v1.0"}'
    )
    expected = "0x" + hashlib.sha3_256(expected_text.encode()).hexdigest()
    cest = timezone(timedelta(hours=2))
    got = manifest_hash(
        policy_id="lksg.v1",
        policy_hash=LKSG_POLICY_HASH,
        company_root=COMPANY_ROOT,
        context=ctx,
        backend="mock",
        created_at=datetime(2025, 10, 25, 11, 0, 0, 123456, tzinfo=cest),
    )
    assert got == expected


def test_statement_includes_optional_roots_only_when_given() -> None:
    roots = {"sanctions_root": "0x" + "4" * 64, "jurisdiction_root": "0x" + "5" * 64}
    bare = statement(
        LKSG_POLICY_HASH, COMPANY_ROOT, parse_context(_context(VERIFY_SUPPLIERS, VERIFY_UBOS))
    )
    full = statement(
        LKSG_POLICY_HASH, COMPANY_ROOT, parse_context({"supplier_hashes": [], **roots})
    )
    assert bare == {"policy_hash": LKSG_POLICY_HASH, "company_commitment_root": COMPANY_ROOT}
    assert full == {
        "policy_hash": LKSG_POLICY_HASH,
        "company_commitment_root": COMPANY_ROOT,
        **roots,
    }


# --------------------------------------------------------------------------- hex and ETags


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0x" + "AB" * 32, "0x" + "ab" * 32),
        ("0x" + "aB" * 32, "0x" + "ab" * 32),
        ("0x" + "0" * 64, "0x" + "0" * 64),
    ],
)
def test_hex32_upper_case_is_accepted_and_lowered(value: str, expected: str) -> None:
    assert normalize_hex32(value, "x") == expected


def test_sha3_ref_upper_case_is_accepted_and_lowered() -> None:
    assert normalize_sha3_ref("sha3-256:" + "CD" * 32, "x") == "sha3-256:" + "cd" * 32


def test_ir_etag_has_quotes() -> None:
    assert ir_etag(LKSG_IR_HASH) == f'"ir:{LKSG_IR_HASH}"'


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (f'"ir:{LKSG_IR_HASH}"', True),
        (f'W/"ir:{LKSG_IR_HASH}"', True),
        (f'"ir:other", "ir:{LKSG_IR_HASH}"', True),
        (f'"a",W/"ir:{LKSG_IR_HASH}" ,"b"', True),
        ("*", True),
        ('"ir:other"', False),
        (f'"ir:{LKSG_IR_HASH}x"', False),
        ("", False),
        (None, False),
    ],
)
def test_etag_matches(header: str | None, matches: bool) -> None:
    assert etag_matches(header, ir_etag(LKSG_IR_HASH)) is matches
