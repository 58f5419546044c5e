"""Shared fixtures: a PKI, a signing key, a JWKS server and the verifier as a process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cap_ops.devkit.jwks_server import JWKSServer
from cap_ops.devkit.pki import PKI, make_pki
from cap_ops.devkit.service import ServiceProcess, service_config
from cap_ops.devkit.tokens import AUDIENCE, ISSUER, SigningKey, jwks_document, mint
from cap_verifier.domain.ir import IR
from support.postgres import postgres_url
from support.s3 import s3_server
from support.vectors import LKSG_YAML

__all__ = ["postgres_url", "s3_server"]  # fixtures, shared with every test folder

pytest_plugins = ["cap_ops.orr.evidence"]  # each run writes its ORR evidence (.cache/orr/)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey()


@pytest.fixture(scope="session")
def jwks_server(pki: PKI, signing_key: SigningKey) -> Iterator[JWKSServer]:
    server = JWKSServer(pki.server.cert, pki.server.key, jwks_document(signing_key))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def make_service(
    pki: PKI, jwks_server: JWKSServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ServiceProcess]]:
    """Build (not start) verifier processes; every one built is stopped at the end."""
    built: list[ServiceProcess] = []

    def build(env: dict[str, str] | None = None, **sections: dict[str, Any]) -> ServiceProcess:
        workdir = tmp_path_factory.mktemp("verifier")
        config = service_config(
            workdir,
            cert=pki.server.cert,
            key=pki.server.key,
            ca_cert=pki.ca_cert,
            jwks_url=jwks_server.url,
            registry_url=None,  # SQLite in workdir; a ``registry`` section overrides it
            issuer=ISSUER,
            audience=AUDIENCE,
            **sections,
        )
        service = ServiceProcess(config, workdir, pki.ca_cert, env=env)
        built.append(service)
        return service

    yield build
    for service in built:
        service.stop()


@pytest.fixture(scope="session")
def verifier(make_service: Callable[..., ServiceProcess]) -> ServiceProcess:
    """The shared verifier (SQLite registry, TLS 1.3, one worker), started once."""
    service = make_service()
    service.migrate()
    service.start()
    return service


@pytest.fixture
def token(signing_key: SigningKey) -> Callable[..., str]:
    """Mint a valid token (all scopes by default); keyword arguments adjust the claims."""

    def _mint(**overrides: Any) -> str:
        return mint(signing_key, **overrides)

    return _mint


@pytest.fixture(scope="session")
def lksg_policy_yaml() -> str:
    """The contract's §2.2 test vector policy, as YAML text."""
    return LKSG_YAML


@pytest.fixture(scope="session")
def lksg_ir() -> IR:
    """The IR v1 of the §2.2 test vector."""
    from cap_verifier.domain import compile_policy_v2, load_policy_yaml

    return compile_policy_v2(load_policy_yaml(LKSG_YAML), "strict").ir


LOCAL_ENVIRONMENT = "tests/localenv/"
"""The tests against `make up`: they share its fixed ports and its state, so under
pytest-xdist (`make test` runs two workers) one worker runs them all, in order, from the start,
while the other takes everything else."""


IMAGE = "tests/image/"
"""The image tests: they build the service image once (Debian bases, buildah) and sign, push and
scan it; one worker runs them together and last, so that the load of a build does not fall on
the local environment's live paging and load tests, which run at the start of the other
worker's queue."""


def _order(item: pytest.Item) -> int:
    if item.nodeid.startswith(LOCAL_ENVIRONMENT):
        return 0
    return 2 if item.nodeid.startswith(IMAGE) else 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The local-environment tests first and the image tests last (a stable sort: the order
    within each part stays)."""
    items.sort(key=_order)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Load distribution with the local-environment tests as one unit of work, and the image
    tests as another."""
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class LocalEnvironmentTogether(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            for together in (LOCAL_ENVIRONMENT, IMAGE):
                if nodeid.startswith(together):
                    return together
            return nodeid

    return LocalEnvironmentTogether(config, log)
