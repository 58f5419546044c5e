"""The published contract ``openapi/openapi.yaml`` against the application that serves it.

1. the document is valid OpenAPI 3.1; its examples match their schemas and are the service's
   real answers to the contract's test vectors;
2. its (method, path) pairs are exactly the routes the app serves;
3. its operationIds are the handlers' operation ids; its one security scheme is OAuth2 client
   credentials, and each operation names the scope the route's guard enforces;
4. the running service serves it byte for byte;
5. schemathesis, every check, against the running service; and the answers schemathesis cannot
   provoke (401, 403, 413, 429, 503, 304, ...) checked against the document by its own checks.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3
import httpx
import msgspec
import pytest
import schemathesis
from jsonschema import Draft202012Validator
from litestar import Litestar
from openapi_spec_validator import validate
from ruamel.yaml import YAML
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cap_ops.devkit.net import free_port
from cap_ops.devkit.service import ServiceProcess
from cap_ops.devkit.tokens import ALL_SCOPES, SigningKey, mint
from cap_verifier import __version__
from cap_verifier.app import create_app
from cap_verifier.auth.guards import METRICS_SCOPE, SCOPE_OPT, require_scope
from cap_verifier.domain import BUILTIN_VARIABLES
from cap_verifier.settings import ScopeSettings, load_settings
from support.vectors import LKSG_ETAG, LKSG_YAML_B64, V1_HASH, V1_POLICY

if TYPE_CHECKING:
    from schemathesis.specs.openapi.schemas import OpenApiCase

DOCUMENT = Path(__file__).resolve().parents[3] / "openapi" / "openapi.yaml"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
FRAMEWORK_METHODS = frozenset({"HEAD", "OPTIONS"})
_PARAMETER = re.compile(r"\{[^}]*\}")


def load_document() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe", pure=True).load(DOCUMENT.read_text(encoding="utf-8"))
    return loaded


def normalise(path: str) -> str:
    """A path template with its parameter names erased: ``/policy/{id}`` → ``/policy/{}``."""
    return _PARAMETER.sub("{}", path)


def document_operations(document: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(METHOD, normalised path) → operationId for every operation of the document."""
    return {
        (method.upper(), normalise(path)): operation["operationId"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def app_operations(app: Litestar) -> dict[tuple[str, str], str | None]:
    """(METHOD, normalised path) → operation_id for every route handler the app serves."""
    served: dict[tuple[str, str], str | None] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            operation_id = handler.operation_id
            for method in set(handler.http_methods) - FRAMEWORK_METHODS:
                served[(method, normalise(route.path_format))] = (
                    operation_id if isinstance(operation_id, str) else None
                )
    return served


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return load_document()


@pytest.fixture
def app(tmp_path: Path) -> Litestar:
    environ = {
        "CAP_VERIFIER_OAUTH2__ISSUER": "https://idp.cap.test",
        "CAP_VERIFIER_OAUTH2__AUDIENCE": "cap-verifier",
        "CAP_VERIFIER_OAUTH2__JWKS_URL": "https://127.0.0.1:9/jwks",
        "CAP_VERIFIER_TLS__ENABLED": "false",
        "CAP_VERIFIER_REGISTRY__URL": f"sqlite:///{tmp_path}/r.db",
    }
    return create_app(load_settings(None, environ), configure_logs=False)


# --------------------------------------------------------------------------- 1. valid document


@pytest.mark.orr("5.2-01")
def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"] == __version__
    validate(document)


def _examples(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(where, schema, example value) for every media-type example of the document."""

    def media(where: str, content: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
        for media_type, entry in content.items():
            for name, example in entry.get("examples", {}).items():
                yield f"{where} {media_type} {name}", entry["schema"], example["value"]

    responses = document["components"]["responses"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            label = f"{method.upper()} {path}"
            body = operation.get("requestBody", {}).get("content", {})
            yield from media(f"{label} request", body)
            for parameter in operation.get("parameters", []):
                for name, example in parameter.get("examples", {}).items():
                    where = f"{label} parameter {parameter['name']} {name}"
                    yield where, parameter["schema"], example["value"]
            for status, answer in operation["responses"].items():
                resolved = (
                    responses[answer["$ref"].rsplit("/", 1)[1]] if "$ref" in answer else answer
                )
                yield from media(f"{label} {status}", resolved.get("content", {}))
    for name, response in responses.items():
        yield from media(f"components/responses/{name}", response.get("content", {}))


def test_examples_match_their_schemas(document: dict[str, Any]) -> None:
    checked = 0
    for where, schema, value in _examples(document):
        if schema.get("type") == "string" and isinstance(value, str):
            continue  # text/plain
        root = {**schema, "components": document["components"]}
        validator = Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]
        assert not errors, f"{where}: {errors}"
        checked += 1
    assert checked >= 20


def _example(document: dict[str, Any], operation_id: str, name: str, status: str = "") -> Any:
    """The value of a named example: of the request body, or of the response ``status``."""
    for item in document["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                owner = operation["responses"][status] if status else operation["requestBody"]
                (entry,) = owner["content"].values()
                return entry["examples"][name]["value"]
    raise KeyError(operation_id)


def test_examples_are_what_the_service_answers(
    document: dict[str, Any], verifier: ServiceProcess, token: Callable[..., str]
) -> None:
    """The examples come from the contract's test vectors and are the service's real answers
    (up to the values that differ per request: UUIDs, times and the manifest hash)."""
    with verifier.client(headers={"Authorization": f"Bearer {token()}"}) as client:
        for name in ("lksg-yaml", "relaxed-warnings"):
            sent = _example(document, "CompilePolicyV2", name)
            response = client.post("/policy/v2/compile", json=sent)
            assert response.json() == _example(document, "CompilePolicyV2", name, "200"), name
            assert response.headers["etag"] == response.json()["etag"]
        stored = client.get("/policy/v2/lksg.v1")
        assert stored.json() == _example(document, "GetPolicyV2", "lksg", "200")
        for name in ("stored-policy", "embedded-ir-with-list"):
            response = client.post("/verify", json=_example(document, "Verify", name))
            expected = dict(_example(document, "Verify", name, "200"))
            answered = response.json()
            del answered["manifest_hash"], expected["manifest_hash"]  # covers the request time
            assert answered == expected, name
        v1 = client.post("/policy/compile", json=_example(document, "CompilePolicyV1", "lksg-demo"))
        expected = _example(document, "CompilePolicyV1", "lksg-demo", "200")
        assert v1.json()["policy_hash"] == expected["policy_hash"]
        volatile = {"id", "created_at", "updated_at"}
        assert {k: v for k, v in v1.json()["metadata"].items() if k not in volatile} == {
            k: v for k, v in expected["metadata"].items() if k not in volatile
        }
        got = client.get(f"/policy/{expected['policy_hash']}").json()
        assert got["policy"] == _example(document, "GetPolicyV1", "lksg-demo", "200")["policy"]


# --------------------------------------------------------------------------- 2./3. routes and ids


@pytest.mark.orr("6.4-04")
def test_document_paths_are_exactly_the_served_routes(
    document: dict[str, Any], app: Litestar
) -> None:
    assert set(document_operations(document)) == set(app_operations(app))


def test_operation_ids_are_the_handlers_operation_ids(
    document: dict[str, Any], app: Litestar
) -> None:
    in_document = document_operations(document)
    served = app_operations(app)
    assert set(in_document.values()) == set(served.values())
    assert in_document == served  # and each on the same method and path
    assert len(set(in_document.values())) == len(in_document), "operationIds must be unique"


# --------------------------------------------------------------------------- 3b. security

OAUTH2 = "oauth2"


def app_scopes(app: Litestar, scopes: ScopeSettings) -> dict[tuple[str, str], str | None]:
    """(METHOD, normalised path) → the scope the route's guard enforces (None: no guard)."""
    enforced: dict[tuple[str, str], str | None] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            key = handler.opt.get(SCOPE_OPT) if require_scope in handler.resolve_guards() else None
            for method in set(handler.http_methods) - FRAMEWORK_METHODS:
                enforced[(method, normalise(route.path_format))] = (
                    None if key is None else getattr(scopes, key)
                )
    return enforced


def oauth2_scheme_problems(document: dict[str, Any]) -> list[str]:
    """What keeps the document's security scheme from being OAuth2 client credentials only."""
    schemes = document.get("components", {}).get("securitySchemes", {})
    if set(schemes) != {OAUTH2} or schemes[OAUTH2].get("type") != "oauth2":
        return [f"security schemes {sorted(schemes)}: expected one oauth2 scheme {OAUTH2!r}"]
    flows = schemes[OAUTH2].get("flows", {})
    problems = [] if set(flows) == {"clientCredentials"} else [f"flows {sorted(flows)}"]
    if not flows.get("clientCredentials", {}).get("tokenUrl"):
        problems.append("the clientCredentials flow names no tokenUrl")
    return problems


def scope_problems(document: dict[str, Any], app: Litestar, scopes: ScopeSettings) -> list[str]:
    """Where the documented scopes differ from the ones the service enforces, per operation."""
    flow = document["components"]["securitySchemes"][OAUTH2]["flows"]["clientCredentials"]
    declared, configured = set(flow.get("scopes", {})), set(msgspec.structs.asdict(scopes).values())
    problems = (
        [] if declared == configured else [f"scopes {sorted(declared)} ≠ {sorted(configured)}"]
    )
    enforced = app_scopes(app, scopes)
    optional = getattr(scopes, METRICS_SCOPE)  # the guard waives it unless metrics.require_auth
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            required = enforced.get((method.upper(), normalise(path)))
            if required is None:
                expected: list[dict[str, list[str]]] = []
            elif required == optional:
                expected = [{}, {OAUTH2: [required]}]
            else:
                expected = [{OAUTH2: [required]}]
            security = operation.get("security", document.get("security"))
            if security != expected:
                problems.append(
                    f"{method.upper()} {path}: security {security}, enforced {expected}"
                )
    return problems


@pytest.mark.orr("6.4-02")
def test_security_scheme_is_oauth2_client_credentials(document: dict[str, Any]) -> None:
    assert oauth2_scheme_problems(document) == []


@pytest.mark.orr("6.4-03")
def test_each_operation_documents_the_scope_the_service_enforces(
    document: dict[str, Any], app: Litestar
) -> None:
    scopes = ScopeSettings()
    assert {"verify:run", "policy:compile", "policy:read"} <= set(
        document["components"]["securitySchemes"][OAUTH2]["flows"]["clientCredentials"]["scopes"]
    )
    assert scope_problems(document, app, scopes) == []


def _mutated(document: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(document))
    change(copy)
    return copy


def _scheme(document: dict[str, Any]) -> dict[str, Any]:
    scheme: dict[str, Any] = document["components"]["securitySchemes"][OAUTH2]
    return scheme


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: _scheme(d).update(type="http", scheme="bearer"), id="bearer-scheme"),
        pytest.param(
            lambda d: _scheme(d)["flows"].update(
                authorizationCode=_scheme(d)["flows"].pop("clientCredentials")
            ),
            id="authorization-code-flow",
        ),
        pytest.param(
            lambda d: _scheme(d)["flows"]["clientCredentials"].pop("tokenUrl"), id="no-token-url"
        ),
    ],
)
def test_the_scheme_check_refuses_a_wrong_scheme(
    document: dict[str, Any], change: Callable[[dict[str, Any]], None]
) -> None:
    assert oauth2_scheme_problems(_mutated(document, change)) != []


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda d: d["paths"]["/verify"]["post"].update(security=[{OAUTH2: ["policy:read"]}]),
            id="wrong-scope",
        ),
        pytest.param(
            lambda d: d["paths"]["/policy/v2/compile"]["post"].update(security=[]), id="public"
        ),
        pytest.param(
            lambda d: _scheme(d)["flows"]["clientCredentials"]["scopes"].pop("policy:read"),
            id="undocumented-scope",
        ),
        pytest.param(
            lambda d: d["paths"]["/metrics"]["get"].update(security=[{OAUTH2: ["metrics:read"]}]),
            id="metrics-always-required",
        ),
    ],
)
def test_the_scope_check_refuses_a_wrong_scope(
    document: dict[str, Any], app: Litestar, change: Callable[[dict[str, Any]], None]
) -> None:
    assert scope_problems(_mutated(document, change), app, ScopeSettings()) != []


# --------------------------------------------------------------------------- 4. served document


def test_service_serves_the_document_byte_for_byte(verifier: ServiceProcess) -> None:
    with verifier.client() as client:
        response = client.get("/openapi.yaml")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "application/yaml"
    assert response.content == DOCUMENT.read_bytes()


# --------------------------------------------------------------------------- answers schemathesis
# cannot provoke: the real error responses, checked against the document by schemathesis' own
# conformance checks (status documented, content type, headers, body schema).

CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CONTEXT = {"supplier_hashes": ["0x" + "11" * 32], "ubo_hashes": ["0x" + "33" * 32]}


def assert_conforms(operation_id: str, response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    operation = contract.find_operation_by_id(operation_id)
    # Path parameters only name the request; the checks look at the response.
    parameters = (
        {"id": response.request.url.path.rsplit("/", 1)[1]} if "{id}" in operation.path else {}
    )
    operation.Case(path_parameters=parameters).validate_response(response, checks=CONFORMANCE)
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        assert response.json()["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("operation_id", "method", "path", "scope", "kwargs", "status"),
    [
        pytest.param("Verify", "POST", "/verify", None, {"json": {}}, 401, id="401-no-token"),
        pytest.param("Verify", "POST", "/verify", "garbage", {"json": {}}, 401, id="401-bad-token"),
        pytest.param("Verify", "POST", "/verify", "policy:read", {"json": {}}, 403, id="403-scope"),
        pytest.param(
            "CompilePolicyV1",
            "POST",
            "/policy/compile",
            ALL_SCOPES,
            {"content": b"policy: {}", "headers": {"Content-Type": "application/yaml"}},
            415,
            id="415",
        ),
        pytest.param(
            "CompilePolicyV1",
            "POST",
            "/policy/compile",
            ALL_SCOPES,
            {
                "content": b'{"policy": "' + b"x" * (1024 * 1024) + b'"}',
                "headers": {"Content-Type": "application/json"},
            },
            413,
            id="413",
        ),
        pytest.param(
            "CompilePolicyV1",
            "POST",
            "/policy/compile",
            ALL_SCOPES,
            {"content": b"{", "headers": {"Content-Type": "application/json"}},
            400,
            id="400-json",
        ),
        pytest.param("GetPolicyV1", "GET", "/policy/0x12", ALL_SCOPES, {}, 400, id="400-hash"),
        pytest.param("GetPolicyV1", "GET", "/policy/not-a-uuid", ALL_SCOPES, {}, 404, id="404-v1"),
        pytest.param("GetPolicyV2", "GET", "/policy/v2/no.such", ALL_SCOPES, {}, 404, id="404"),
        pytest.param(
            "GetPolicyV2",
            "GET",
            "/policy/v2/lksg.v1",
            ALL_SCOPES,
            {"headers": {"If-None-Match": f'W/{LKSG_ETAG}, "other"'}},
            304,
            id="304",
        ),
        pytest.param(
            "CompilePolicyV2",
            "POST",
            "/policy/v2/compile",
            ALL_SCOPES,
            {"json": {"policy_yaml": LKSG_YAML_B64, "policy": {}}},
            400,
            id="400-both",
        ),
        pytest.param(
            "CompilePolicyV2",
            "POST",
            "/policy/v2/compile",
            ALL_SCOPES,
            {"json": {"policy": {"id": "x", "version": "1", "rules": [{"id": "r"}]}}},
            422,
            id="422-shape",
        ),
        pytest.param(
            "CompilePolicyV2",
            "POST",
            "/policy/v2/compile",
            ALL_SCOPES,
            {
                "json": {
                    "policy": {
                        "id": "lint.errors",
                        "version": "1",
                        "rules": [{"id": "r", "op": "eq", "lhs": "nowhere", "rhs": 1}] * 2,
                    }
                }
            },
            422,
            id="422-lints",
        ),
        pytest.param(
            "Verify",
            "POST",
            "/verify",
            ALL_SCOPES,
            {"json": {"policy_id": "no.such", "context": CONTEXT}},
            404,
            id="404-verify",
        ),
        pytest.param(
            "Verify",
            "POST",
            "/verify",
            ALL_SCOPES,
            {"json": {"policy_id": "lksg.v1", "context": {"supplier_hashes": ["0x12"]}}},
            400,
            id="400-hex",
        ),
    ],
)
def test_error_responses_conform(
    verifier: ServiceProcess,
    token: Callable[..., str],
    operation_id: str,
    method: str,
    path: str,
    scope: str | None,
    kwargs: dict[str, Any],
    status: int,
) -> None:
    headers = dict(kwargs.pop("headers", {}))
    if scope == "garbage":
        headers["Authorization"] = "Bearer not.a.jwt"
    elif scope is not None:
        headers["Authorization"] = f"Bearer {token(scope=scope)}"
    with verifier.client() as client:
        stored = client.post(
            "/policy/v2/compile",
            json={"policy_yaml": LKSG_YAML_B64, "persist": True},
            headers={"Authorization": f"Bearer {token()}"},
        )
        assert stored.status_code == 200, stored.text
        response = client.request(method, path, headers=headers, **kwargs)
    assert_conforms(operation_id, response, status)
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    if status == 403:
        assert response.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    if status == 304:
        assert response.headers["etag"] == LKSG_ETAG
        assert not response.content


def test_integral_numbers_are_integers(verifier: ServiceProcess, token: Callable[..., str]) -> None:
    """JSON Schema (so the document) reads 10.0 as the integer 10: the v1 test vector with
    ``10.0`` is the same policy, with the same hash."""
    policy = {
        **V1_POLICY,
        "constraints": {**V1_POLICY["constraints"], "supplier_count_max": 10.0},
    }
    with verifier.client(headers={"Authorization": f"Bearer {token()}"}) as client:
        response = client.post("/policy/compile", json={"policy": policy})
    assert_conforms("CompilePolicyV1", response, 200)
    assert response.json()["policy_hash"] == V1_HASH


def test_long_policy_id_is_not_a_server_error(
    verifier: ServiceProcess, token: Callable[..., str]
) -> None:
    """A PolicyV2 id longer than 255 characters is refused (422), never a server error."""
    policy = {
        "id": "a" * 300,
        "version": "1",
        "legal_basis": [{"directive": "LkSG"}],
        "description": "a long id",
        "rules": [{"id": "r", "op": "eq", "lhs": 1, "rhs": 1}],
    }
    with verifier.client(headers={"Authorization": f"Bearer {token()}"}) as client:
        response = client.post("/policy/v2/compile", json={"policy": policy, "persist": True})
    assert response.status_code == 422, response.text
    assert_conforms("CompilePolicyV2", response, 422)


def test_request_id_is_echoed(verifier: ServiceProcess) -> None:
    with verifier.client() as client:
        response = client.get("/healthz", headers={"X-Request-ID": "client-42.attempt-1"})
    assert_conforms("GetHealth", response, 200)
    assert response.headers["x-request-id"] == "client-42.attempt-1"


def test_metrics_auth_and_rate_limit_conform(
    make_service: Callable[..., ServiceProcess], token: Callable[..., str]
) -> None:
    service = make_service(
        metrics={"require_auth": True}, limits={"rate_limit": {"requests": 2, "per": "minute"}}
    )
    service.migrate()
    service.start()
    try:
        with service.client() as client:
            anonymous = client.get("/metrics")
            wrong_scope = client.get(
                "/metrics", headers={"Authorization": f"Bearer {token(scope='verify:run')}"}
            )
            scraped = client.get(
                "/metrics", headers={"Authorization": f"Bearer {token(scope='metrics:read')}"}
            )
            documents = [client.get("/openapi.yaml") for _ in range(3)]
    finally:
        service.stop()
    assert_conforms("GetMetrics", anonymous, 401)
    assert_conforms("GetMetrics", wrong_scope, 403)
    assert wrong_scope.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="metrics:read"'
    )
    assert_conforms("GetMetrics", scraped, 200)
    assert scraped.headers["content-type"].startswith("text/plain")
    assert [d.status_code for d in documents[:2]] == [200, 200]
    assert_conforms("GetOpenAPI", documents[2], 429)


def test_unavailable_registry_answers_conform(
    make_service: Callable[..., ServiceProcess], token: Callable[..., str]
) -> None:
    service = make_service(
        registry={"url": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"}
    )
    service.start()
    try:
        with service.client(headers={"Authorization": f"Bearer {token()}"}) as client:
            ready = client.get("/readyz")
            policy = client.get("/policy/v2/lksg.v1")
    finally:
        service.stop()
    assert_conforms("GetReadiness", ready, 503)
    assert ready.json()["status"] == "DEGRADED"
    assert {"name": "registry", "status": "FAIL"} in ready.json()["checks"]
    assert_conforms("GetPolicyV2", policy, 503)


# --------------------------------------------------------------------------- 5. schemathesis

# The semantic rules JSON Schema cannot state, each answered with a status the document lists for
# the operation, would make schemathesis' "schema-valid request rejected" check fire on random
# data. Two ways around them, both narrow:
#
# * POST /verify and the JSON form of POST /policy/v2/compile: the test repairs positive requests
#   the way a careful client would (recomputed ir_hash and list roots, unique ids, declared
#   variables, a legal basis in strict mode), after which any 400 or 422 is a real discrepancy.
# * POST /policy/v2/compile with `policy_yaml`: a random base64 string is not a YAML PolicyV2, so
#   400 (bad base64/UTF-8/YAML) and 422 (wrong shape) stay acceptable for positive data there.
POSITIVE_DEFAULT_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
POSITIVE_EXTRA_STATUSES = {"CompilePolicyV2": ["400", "422"]}


def schemathesis_config() -> schemathesis.Config:
    operations = [
        {
            "include-operation-id": operation_id,
            "checks": {
                "positive_data_acceptance": {"expected-statuses": POSITIVE_DEFAULT_STATUSES + extra}
            },
        }
        for operation_id, extra in POSITIVE_EXTRA_STATUSES.items()
    ]
    return schemathesis.Config.from_dict(
        {
            "seed": 20251025,
            "request-timeout": 10,
            "generation": {"max-examples": 50, "deterministic": True, "database": "none"},
            "checks": {"enabled": True},
            "operations": operations,
        }
    )


def _unique_by_id(items: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    kept = []
    for item in items:
        if item["id"] not in seen:
            seen.add(item["id"])
            kept.append(item)
    return kept


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


def _var_name(operand: Any, *, bare_strings: bool) -> str | None:
    if isinstance(operand, str) and bare_strings:
        return operand
    if isinstance(operand, dict) and isinstance(operand.get("var"), str):
        return str(operand["var"])
    return None


def _repair_adaptivity(adaptivity: Any, rule_ids: set[str]) -> None:
    """Unique predicate ids; activations only of known predicates and rules (E1004, E1001)."""
    if not isinstance(adaptivity, dict):
        return
    predicates = _unique_by_id(adaptivity.get("predicates") or [])
    known = {predicate["id"] for predicate in predicates}
    adaptivity["predicates"] = predicates
    adaptivity["activations"] = [
        {**act, "rules": [rule for rule in act["rules"] if rule in rule_ids]}
        for act in adaptivity.get("activations") or []
        if act["when"] in known
    ]


def repair_policy_v2(policy: dict[str, Any], *, strict: bool) -> None:
    """Make a schema-valid PolicyV2 free of lint errors (contract 2.2), keeping its shape."""
    policy["rules"] = _unique_by_id(policy["rules"])  # E1003
    if strict and not policy.get("legal_basis"):
        policy["legal_basis"] = [{"directive": "LkSG"}]  # E1002
    _repair_adaptivity(policy.get("adaptivity"), {rule["id"] for rule in policy["rules"]})
    names = {
        name
        for rule in policy["rules"]
        for operand in (rule["lhs"], rule["rhs"])
        if (name := _var_name(operand, bare_strings=True)) is not None
    }
    adaptivity = policy.get("adaptivity")
    for predicate in adaptivity["predicates"] if isinstance(adaptivity, dict) else ():
        expr = predicate["expr"]
        if isinstance(expr, str):
            names.add(expr)
        elif isinstance(expr, dict):
            names.update(
                name
                for arg in expr["args"]
                if (name := _var_name(arg, bare_strings=False)) is not None
            )
    inputs = policy.get("inputs") or {}
    for name in sorted(names - BUILTIN_VARIABLES - set(inputs)):
        inputs[name] = {"type": "any"}  # E2003
    policy["inputs"] = inputs


def ir_hash(ir: dict[str, Any]) -> str:
    """`ir_hash` of an IR as the contract defines it (2.2), computed independently of the app."""
    body: dict[str, Any] = {
        "ir_version": ir["ir_version"],
        "policy_id": ir["policy_id"],
        "policy_hash": ir["policy_hash"].lower(),
        "rules": [
            {
                "id": rule["id"],
                "op": rule["op"],
                "lhs": _sorted_keys(rule["lhs"]),
                "rhs": _sorted_keys(rule["rhs"]),
            }
            for rule in ir["rules"]
        ],
    }
    adaptivity = ir.get("adaptivity")
    if isinstance(adaptivity, dict):
        body["adaptivity"] = {
            "predicates": [
                {
                    "id": predicate["id"],
                    "expr": {
                        "args": [_sorted_keys(arg) for arg in predicate["expr"]["args"]],
                        "func": predicate["expr"]["func"],
                    }
                    if isinstance(predicate["expr"], dict)
                    else predicate["expr"],
                }
                for predicate in adaptivity.get("predicates") or []
            ],
            "activations": [
                {"when": act["when"], "rules": list(act["rules"])}
                for act in adaptivity.get("activations") or []
            ],
        }
    body["ir_hash"] = ""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return "sha3-256:" + hashlib.sha3_256(text.encode("utf-8")).hexdigest()


def repair_verify(body: dict[str, Any]) -> None:
    """Recompute what a client computes: the embedded IR's ir_hash, the disclosed lists' roots."""
    ir = body.get("ir")
    if isinstance(ir, dict):
        ir["rules"] = _unique_by_id(ir["rules"])
        adaptivity = ir.get("adaptivity")
        if isinstance(adaptivity, dict):
            adaptivity["predicates"] = _unique_by_id(adaptivity.get("predicates") or [])
        ir["ir_hash"] = ir_hash(ir)
    lists = body["context"].get("lists")
    if isinstance(lists, dict):
        body["context"]["lists"] = {
            "0x" + blake3.blake3("".join(entries).encode("utf-8")).hexdigest(): entries
            for entries in lists.values()
        }


def repair(case: OpenApiCase) -> bool:
    """Repair a positive case of an operation with semantic rules; True when it was repaired."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return False
    if case.operation.definition.raw.get("operationId") == "Verify":
        repair_verify(case.body)
        return True
    policy = case.body.get("policy")
    if case.operation.definition.raw.get("operationId") == "CompilePolicyV2" and isinstance(
        policy, dict
    ):
        repair_policy_v2(policy, strict=case.body.get("lint_mode") in (None, "strict"))
        return True
    return False


contract = schemathesis.openapi.from_path(DOCUMENT, config=schemathesis_config())


@pytest.fixture(scope="module")
def bearer(signing_key: SigningKey) -> dict[str, str]:
    """What the ``token`` fixture mints (all scopes), once for the module: Hypothesis runs every
    example of an operation inside one test item, so a function-scoped fixture is refused."""
    return {"Authorization": f"Bearer {mint(signing_key, lifetime=900)}"}


@pytest.mark.slow
@pytest.mark.orr("5.2-02", "6.4-05")
@contract.parametrize()
def test_service_conforms_to_the_document(
    case: OpenApiCase, verifier: ServiceProcess, bearer: dict[str, str]
) -> None:
    repaired = repair(case)
    response = case.call_and_validate(
        base_url=verifier.url, headers=bearer, verify=str(verifier.ca_cert)
    )
    if repaired:
        assert response.status_code not in (400, 422), (
            f"a repaired schema-valid request was refused: {response.status_code} "
            f"{response.text[:500]}\n{case.as_curl_command()}"
        )
