"""The load of `make loadtest` (``cap_ops.loadtest``): locust, headless, in this process.

Importing this module monkey-patches the interpreter (locust's gevent): only a load run does.

The simulated client is one OAuth2 client application with ``users`` connections (locust
users), each on a fixed schedule of one request every ``users / rate`` seconds, the schedules
offset by ``1 / rate``: requests arrive evenly at ``rate`` per second. A connection waits for its
answer, so ``users`` leaves each request ``HEADROOM_S`` before a slow service lowers the rate (a
late request goes at once; the count of requests done shows any shortfall).

The mix, by weight: mostly ``POST /verify`` of the contract's ``lksg.v1`` with a context of
random suppliers, none sanctioned (verdict OK); sometimes ``POST /policy/v2/compile`` of that
policy with ``persist`` (idempotent: the stored policy is the same) and ``GET /policy/v2/lksg.v1``.
The access token is the application's, shared by its connections: fetched by client credentials
and fetched again once ``REFRESH_AT`` of its lifetime has passed, before it expires.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import gevent
import gevent.ssl
from gevent.lock import BoundedSemaphore
from locust import FastHttpUser, task
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from locust.exception import StopUser

from cap_ops import smoke
from cap_ops.localenv.environment import DEMO_POLICY

VERIFY = "POST /verify"
COMPILE = "POST /policy/v2/compile"
READ = "GET /policy/v2/{id}"
GRANT = "client credentials grant"
POLICY_ID = "lksg.v1"
MIX = {VERIFY: 8, COMPILE: 1, READ: 1}
HEADROOM_S = 2.0
REFRESH_AT = 0.8
"""Share of a token's lifetime after which the client fetches a new one."""
DEFAULT_LIFETIME_S = 300.0
"""Assumed when the token response has no ``expires_in``."""
TIMEOUT_S = 10.0
USER_AGENT = "cap-ops-loadtest"
SANCTIONED = ("0x" + "5e" * 32, "0x" + "5f" * 32)

Record = Callable[[float, str, float, bool], None]
"""Called for each API request: seconds since the start, endpoint, latency in ms, ok."""


class LoadError(Exception):
    """The load cannot start; one line for the operator."""


class TokenError(Exception):
    """No access token: the client's request is not sent."""


def policy_yaml() -> str:
    """The contract's lksg.v1 PolicyV2 as ``make up`` seeds it (standard base64 YAML)."""
    return base64.b64encode(DEMO_POLICY.read_bytes()).decode()


def verify_body() -> dict[str, Any]:
    """A verification of 1 to 5 random suppliers against a disclosed list they are not on."""
    suppliers = ["0x" + secrets.token_hex(32) for _ in range(1 + secrets.randbelow(5))]
    root = smoke.list_root(SANCTIONED)
    return {
        "policy_id": POLICY_ID,
        "context": {
            "supplier_hashes": suppliers,
            "sanctions_root": root,
            "lists": {root: list(SANCTIONED)},
        },
    }


class Tokens:
    """The client application's access token, shared by its connections."""

    def __init__(self, target: smoke.Target, clock: Callable[[], float] = time.monotonic) -> None:
        self.target = target
        self.clock = clock
        self.fetched = 0
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = BoundedSemaphore()
        user, secret = (quote(value, safe="") for value in (target.client_id, target.client_secret))
        credentials = base64.b64encode(f"{user}:{secret}".encode()).decode()
        self._headers = {
            "Authorization": f"Basic {credentials}",
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": USER_AGENT,
        }

    def get(self, client: FastHttpSession) -> str:
        """The current token, fetched first when there is none or it is due for refresh."""
        with self._lock:
            if self._token is None or self.clock() >= self._refresh_at:
                self._fetch(client)
            assert self._token is not None
            return self._token

    def _fetch(self, client: FastHttpSession) -> None:
        form = urlencode(
            {"grant_type": "client_credentials", "scope": " ".join(smoke.REQUIRED_SCOPES)}
        )
        asked = self.clock()
        response = client.request(
            "POST", self.target.token_url, name=GRANT, data=form, headers=self._headers
        )
        if response.status_code != 200:
            raise TokenError(f"the token endpoint answered {response.status_code}")
        try:
            body = json.loads(response.text or "")
            token, lifetime = str(body["access_token"]), float(body.get("expires_in", 0))
        except (ValueError, KeyError, TypeError):
            raise TokenError("the token response has no access_token") from None
        self._token = token
        self._refresh_at = asked + REFRESH_AT * (lifetime or DEFAULT_LIFETIME_S)
        self.fetched += 1


def _verdict(text: str | None) -> str:
    """The ``result`` of a verification response, or what stands in for it."""
    try:
        body = json.loads(text or "")
    except ValueError:
        return "unreadable (not JSON)"
    return str(body.get("result")) if isinstance(body, dict) else "unreadable (not an object)"


@dataclass
class Run:
    tokens_fetched: int


@dataclass(frozen=True)
class Schedule:
    """``users`` connections, one arrival each every ``users / rate`` s, offset by ``1 / rate``
    s from each other from ``begun`` on, the last before ``deadline`` (``time.monotonic``)."""

    rate: float
    users: int
    begun: float
    deadline: float

    @classmethod
    def of(cls, rate: float, duration_s: float) -> Schedule:
        begun = time.monotonic()
        return cls(rate, max(1, math.ceil(rate * HEADROOM_S)), begun, begun + duration_s)

    @property
    def period(self) -> float:
        return self.users / self.rate


def _user_class(target: smoke.Target, tokens: Tokens, schedule: Schedule) -> type[FastHttpUser]:
    """A locust user class bound to this run (locust instantiates users from a class)."""
    starts = itertools.count()

    def tls(**_: object) -> gevent.ssl.SSLContext:
        context = gevent.ssl.create_default_context(
            cafile=str(target.ca_cert) if target.ca_cert else None
        )
        if target.client_cert is not None:
            key = str(target.client_key) if target.client_key else None
            context.load_cert_chain(str(target.client_cert), key)
        return context

    compile_body = {"policy_yaml": policy_yaml(), "persist": True}

    class Client(FastHttpUser):
        host = target.url
        insecure = False
        ssl_context_factory = staticmethod(tls)
        network_timeout = TIMEOUT_S
        connection_timeout = TIMEOUT_S

        def on_start(self) -> None:
            self.due = schedule.begun + next(starts) / schedule.rate
            gevent.sleep(self._until_due())

        def wait_time(self) -> float:
            """Until this connection's next arrival (none missed: a late one goes at once)."""
            self.due += schedule.period
            return self._until_due()

        def _until_due(self) -> float:
            if self.due >= schedule.deadline:
                raise StopUser  # the run's arrivals are all made
            return max(0.0, self.due - time.monotonic())

        def _send(self, endpoint: str, method: str, path: str, **kwargs: Any) -> None:
            begun, begun_ms = time.time(), time.perf_counter()
            try:
                token = tokens.get(self.client)
            except TokenError as exc:  # the request fails as the client sees it: not sent
                self.environment.events.request.fire(
                    request_type=method,
                    name=endpoint,
                    response_time=(time.perf_counter() - begun_ms) * 1000,
                    response_length=0,
                    response=None,
                    context={},
                    exception=exc,
                    start_time=begun,
                    url=path,
                )
                return
            headers = {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}
            with self.client.request(
                method, path, name=endpoint, headers=headers, catch_response=True, **kwargs
            ) as response:
                if response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}")
                elif endpoint == VERIFY and _verdict(response.text) != "OK":
                    response.failure(f"verdict {_verdict(response.text)}")

        @task(MIX[VERIFY])
        def verify(self) -> None:
            self._send(VERIFY, "POST", "/verify", json=verify_body())

        @task(MIX[COMPILE])
        def compile_policy(self) -> None:
            self._send(COMPILE, "POST", "/policy/v2/compile", json=compile_body)

        @task(MIX[READ])
        def read_policy(self) -> None:
            self._send(READ, "GET", f"/policy/v2/{POLICY_ID}")

    return Client


def drive(
    target: smoke.Target,
    *,
    rate: float,
    duration_s: float,
    record: Record,
    tick: Callable[[], None] | None = None,
) -> Run:
    """Send the mix at ``rate`` per second for ``duration_s``, calling ``record`` for each API
    request (its start as seconds since the run's) and ``tick`` once a second."""
    tokens = Tokens(target)
    started, schedule = time.time(), Schedule.of(rate, duration_s)

    def on_request(
        name: str, response_time: float, exception: object, start_time: float, **_: object
    ) -> None:
        if name != GRANT:
            record(start_time - started, name, response_time, exception is None)

    try:
        user = _user_class(target, tokens, schedule)
    except OSError as exc:
        raise LoadError(f"cannot read the policy ({exc})") from None
    # stop_timeout: a request sent before the end is answered and counted
    environment = Environment(user_classes=[user], host=target.url, stop_timeout=TIMEOUT_S)
    environment.events.request.add_listener(on_request)  # type: ignore[no-untyped-call]
    runner = environment.create_local_runner()

    def until_done() -> None:
        # by the clock, not by a gevent timer: the hub's cached time lags after a busy start
        while (left := schedule.deadline - time.monotonic()) > 0:
            if tick is not None:
                tick()
            gevent.sleep(min(1.0, left))
        runner.quit()

    runner.start(schedule.users, spawn_rate=schedule.users)
    gevent.spawn(until_done)
    runner.greenlet.join()
    return Run(tokens_fetched=tokens.fetched)
