"""Rate limits and quotas (api/ratelimit.py, db/rate_limits.py) on the real Redis:
RateLimit headers on every answer, 429 problem+json past the quota, per key and per
address, X-Forwarded-For from trusted proxies only, lockout after failed
authentications, charges beyond the first unit, an in-process limiter when Redis is
down, and one quota shared by two server processes."""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import strawberry
from asgi_lifespan import LifespanManager
from fastapi import Request

from api.app import create_app
from api.ratelimit import RequestQuota, charge
from db.api_keys import create_api_key
from db.engine import make_engine
from db.rate_limits import Policy, RateLimiter
from schema.context import GraphQLContext
from schema.errors import ErrorCodes, Schema
from schema.queries import Query
from tests.conftest import CONFLICTKB, AIRSTRIKE, as_, free_port, make_settings, websocket_handshake

EVENTS = "/v1/events?limit=1"


def _address() -> str:
    """A client address of the test's own: the buckets of other tests are elsewhere."""
    n = uuid.uuid4().int
    return f"198.51.{n % 250}.{(n >> 8) % 250 + 1}"


@asynccontextmanager
async def limited(database_url: str, redis_url: str, *, peer: str = "127.0.0.1", **settings
                  ) -> AsyncIterator[httpx.AsyncClient]:
    """The app with low quotas (anonymous 5 units a minute unless told), reached from `peer`."""
    app = create_app(make_settings(**{"rate_limit_anonymous": 5, **settings}),
                     database_url=database_url, redis_url=redis_url)

    async def expensive(request: Request, units: int) -> dict:
        await charge(request.scope, units)
        return {"charged": units}

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/test/expensive", expensive)  # outside /v1: a cached answer would skip its charge
    app.add_api_route("/test/broken", broken)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=(peer, 4321), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            http.app = manager.app  # for a test that speaks ASGI itself (a websocket)
            yield http


def _from(address: str, **headers: str) -> dict[str, str]:
    """Headers of a request the trusted proxy in front (the test client, 127.0.0.1) forwards from `address`."""
    return {"X-Forwarded-For": address, **headers}


def _remaining(response: httpx.Response) -> int:
    return int(re.fullmatch(r'"[a-z]+";r=(\d+);t=\d+', response.headers["ratelimit"]).group(1))


async def _key(database_url: str, role: str = "reader", rate_limit: int | None = None) -> str:
    engine = make_engine(database_url, pool_size=1)
    async with engine.begin() as conn:
        made = await create_api_key(conn, role, f"rate-limited {role}", rate_limit)
    await engine.dispose()
    return made.token


async def test_every_answer_says_its_policy_and_what_is_left(database_url, redis_url):
    me = _address()
    async with limited(database_url, redis_url) as http:
        first = await http.get(EVENTS, headers=_from(me))
        second = await http.get(EVENTS, headers=_from(me))  # from the answer cache: it counts too
        missing = await http.get("/v1/events/not-an-id", headers=_from(me))
        invalid = await http.get("/v1/events?date_from=yesterday", headers=_from(me))
        broken = await http.get("/test/broken", headers=_from(_address()))
        probe = await http.get("/healthz", headers=_from(me))
    assert first.status_code == 200 and second.headers["x-cache"] == "hit"
    assert first.headers["ratelimit-policy"] == '"anonymous";q=5;w=60'
    assert re.fullmatch(r'"anonymous";r=4;t=(60|59)', first.headers["ratelimit"])
    assert [_remaining(r) for r in (second, missing, invalid)] == [3, 2, 1]
    assert (missing.status_code, invalid.status_code) == (404, 422)
    assert broken.status_code == 500 and broken.headers["content-type"] == "application/problem+json"
    assert _remaining(broken) == 4
    assert probe.status_code == 200 and "ratelimit" not in probe.headers  # probes are free


async def test_past_the_quota_a_429_problem_says_when_to_come_back(database_url, redis_url):
    me = _address()
    async with limited(database_url, redis_url, rate_limit_anonymous=2) as http:
        allowed = [(await http.get(EVENTS, headers=_from(me))).status_code for _ in range(2)]
        refused = await http.get(EVENTS, headers=_from(me))
        graphql = await http.post("/graphql", json={"query": "{ events(first: 1) { totalCount } }"},
                                  headers=_from(me))
        someone_else = await http.get(EVENTS, headers=_from(_address()))
    assert allowed == [200, 200]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-policy"] == '"anonymous";q=2;w=60'
    assert refused.headers["ratelimit"].startswith('"anonymous";r=0;t=')
    body = refused.json()
    assert (body["status"], body["title"], body["type"]) == (429, "Too many requests", "/problems/rate-limited")
    assert f"The rate limit of {me} is reached" in body["detail"]
    assert graphql.status_code == 429 and graphql.headers["content-type"] == "application/problem+json"
    assert someone_else.status_code == 200 and _remaining(someone_else) == 1


async def test_a_key_pays_from_its_own_quota_not_its_address(fresh_database_url, redis_url):
    me = _address()
    reader = await _key(fresh_database_url, "reader")
    async with limited(fresh_database_url, redis_url, rate_limit_anonymous=1, rate_limit_reader=3) as http:
        assert (await http.get(EVENTS, headers=_from(me))).status_code == 200
        assert (await http.get(EVENTS, headers=_from(me))).status_code == 429  # the address's quota is spent
        with_key = await http.get(EVENTS, headers=_from(me, **as_(reader)))
        elsewhere = await http.get(EVENTS, headers=_from(_address(), **as_(reader)))  # the same key's quota
        third = await http.get("/v1/apikeys/me", headers=_from(me, **as_(reader)))
        spent = await http.get(EVENTS, headers=_from(me, **as_(reader)))
    assert with_key.status_code == 200
    assert with_key.headers["ratelimit-policy"] == '"reader";q=3;w=60' and _remaining(with_key) == 2
    assert elsewhere.status_code == 200 and _remaining(elsewhere) == 1
    assert third.status_code == 200 and _remaining(third) == 0
    assert spent.status_code == 429 and "The rate limit of the key 'rate-limited reader'" in spent.json()["detail"]


def _conflictkb(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run([str(CONFLICTKB), "apikey", *args], env=env, capture_output=True, text=True, timeout=120)


async def test_a_key_s_own_limit_set_by_the_command_applies(fresh_database_url, redis_url):
    made = _conflictkb(fresh_database_url, "create", "--role", "editor", "--name", "slow bot", "--rate-limit", "2")
    assert made.returncode == 0, made.stderr
    assert "rate limit 2 units per window" in made.stderr
    token = made.stdout.strip()
    async with limited(fresh_database_url, redis_url) as http:
        first = await http.get(EVENTS, headers=_from(_address(), **as_(token)))
        assert first.headers["ratelimit-policy"] == '"editor";q=2;w=60'
        changed = _conflictkb(fresh_database_url, "set-limit", token[:12], "4")
        assert changed.returncode == 0 and "now has 4 units per window" in changed.stdout, changed.stderr
        raised = await http.get(EVENTS, headers=_from(_address(), **as_(token)))
        assert raised.headers["ratelimit-policy"] == '"editor";q=4;w=60' and _remaining(raised) == 2
        back = _conflictkb(fresh_database_url, "set-limit", token[:12], "default")
        assert back.returncode == 0 and "its role's quota" in back.stdout
        default = await http.get(EVENTS, headers=_from(_address(), **as_(token)))
        assert default.headers["ratelimit-policy"] == f'"editor";q={10**9};w=60'
    listed = _conflictkb(fresh_database_url, "list").stdout
    assert "rate limit" in listed.splitlines()[0] and "role's" in listed.splitlines()[1]
    refused = _conflictkb(fresh_database_url, "set-limit", token[:12], "0")
    assert refused.returncode == 2 and "at least 1 unit" in refused.stderr


async def test_x_forwarded_for_is_believed_from_trusted_proxies_only(database_url, redis_url):
    untrusted_peer = _address()
    async with limited(database_url, redis_url, peer=untrusted_peer) as http:
        spoofed = [await http.get(EVENTS, headers={"X-Forwarded-For": _address()}) for _ in range(2)]
    # the peer pays, whatever the header says
    assert [_remaining(r) for r in spoofed] == [4, 3]

    proxy = "10.1.2.3"
    async with limited(database_url, redis_url, peer=proxy, trusted_proxies=["10.0.0.0/8"]) as http:
        client = _address()
        # the client's own claim on the left is not believed; the hop the proxies saw is
        forwarded = [await http.get(EVENTS, headers={"X-Forwarded-For": f"{_address()}, {client}, 10.9.9.9"})
                     for _ in range(2)]
        other = await http.get(EVENTS, headers={"X-Forwarded-For": _address()})
        direct = await http.get(EVENTS)  # the proxy's own request
    assert [_remaining(r) for r in forwarded] == [4, 3]
    assert _remaining(other) == 4 and _remaining(direct) == 4


async def test_wrong_key_writes_are_charged_heavily_then_locked_out(fresh_database_url, redis_url):
    me = _address()
    editor = await _key(fresh_database_url, "editor")
    wrong = as_("ckb_" + "x" * 43)
    async with limited(fresh_database_url, redis_url, rate_limit_anonymous=100, failed_auth_charge=20,
                       failed_auth_lockout_after=3, failed_auth_lockout_seconds=120) as http:
        failures = [await http.post("/v1/events", json=AIRSTRIKE, headers=_from(me, **wrong)) for _ in range(2)]
        malformed = await http.post("/v1/events", json=AIRSTRIKE,
                                    headers=_from(me, Authorization="Basic Zm9vOmJhcg=="))
        locked_out = await http.post("/v1/events", json=AIRSTRIKE, headers=_from(me, **wrong))
        good_key = await http.get("/v1/apikeys/me", headers=_from(me, **as_(editor)))
        keyless = await http.get(EVENTS, headers=_from(me))
        good_key_elsewhere = await http.get("/v1/apikeys/me", headers=_from(_address(), **as_(editor)))
    assert [r.status_code for r in failures] == [401, 401]
    assert [_remaining(r) for r in failures] == [80, 60]  # 20 units each, from the address
    assert malformed.status_code == 429 and "locked out" in malformed.json()["detail"]  # the third failure
    assert locked_out.status_code == 429 and 110 <= int(locked_out.headers["retry-after"]) <= 120
    assert good_key.status_code == 429 and "Too many failed authentications" in good_key.json()["detail"]
    assert keyless.status_code == 200 and _remaining(keyless) == 59  # the failures' charges stay spent
    assert good_key_elsewhere.status_code == 200


async def test_a_charge_beyond_the_first_unit_spends_the_quota(database_url, redis_url):
    me = _address()
    async with limited(database_url, redis_url, rate_limit_anonymous=10) as http:
        first = await http.get("/test/expensive?units=5", headers=_from(me))
        too_much = await http.get("/test/expensive?units=5", headers=_from(me))
        cheap = await http.get(EVENTS, headers=_from(me))
        never = await http.get("/test/expensive?units=50", headers=_from(_address()))
    assert first.status_code == 200 and _remaining(first) == 4  # 1 on arrival, 5 more
    # 1 on arrival leaves 3: the 5 cannot be covered, are refused whole and spend nothing
    assert too_much.status_code == 429 and _remaining(too_much) == 3
    assert "3 left, this needs 5" in too_much.json()["detail"] and too_much.headers["retry-after"]
    assert cheap.status_code == 200 and _remaining(cheap) == 2
    assert never.status_code == 429 and "more than the whole quota" in never.json()["detail"]


@strawberry.type
class _Costly:
    @strawberry.field
    async def costly(self, info: strawberry.Info, units: int) -> int:
        await info.context.charge(units)
        return units


_SCHEMA = Schema(query=_Costly, extensions=[ErrorCodes])


async def test_a_graphql_charge_the_quota_cannot_cover_is_rate_limited(redis_url):
    import redis.asyncio as redis

    client = redis.from_url(redis_url)
    limiter = RateLimiter(client)
    quota = RequestQuota(limiter, f"address:{_address()}", _address(), Policy("anonymous", 10, 60), "someone")
    context = GraphQLContext(None, None, None, authenticate=None, charge=quota)
    covered = await _SCHEMA.execute("{ costly(units: 6) }", context_value=context)
    refused = await _SCHEMA.execute("{ costly(units: 6) }", context_value=context)
    await client.aclose()
    assert covered.errors is None and quota.usage.remaining == 4
    [error] = refused.errors
    assert error.extensions["code"] == "RATE_LIMITED" and 1 <= error.extensions["retryAfter"] <= 60
    assert "4 left, this needs 6" in error.message


async def test_with_redis_down_each_process_still_limits(database_url, caplog):
    me = _address()
    async with limited(database_url, "unix:///nonexistent/redis.sock", rate_limit_anonymous=3) as http:
        answers = [await http.get(EVENTS, headers=_from(me)) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [_remaining(r) for r in answers] == [2, 1, 0, 0]
    assert answers[3].headers["content-type"] == "application/problem+json" and answers[3].headers["retry-after"]
    assert "counting in this process" in caplog.text


# --- two server processes, one Redis --------------------------------------------------


def _serve(database_url: str, redis_url: str, data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "PORT": str(port),
           "CONFLICTKB_DATA_DIR": str(data_dir), "CONFLICTKB_LOG_LEVEL": "warning",
           "CONFLICTKB_RATE_LIMIT_ANONYMOUS": "4"}
    proc = subprocess.Popen([str(CONFLICTKB), "serve", "--no-prepare"], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited early:\n{proc.stdout.read()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail("serve did not become ready")


def test_two_server_processes_share_one_quota(database_url, redis_url, tmp_path):
    servers = [_serve(database_url, redis_url, tmp_path / f"server{i}") for i in (1, 2)]
    try:
        for proc, url in servers:
            _wait_ready(proc, url)
        (_, first), (_, second) = servers
        # the servers believe 127.0.0.1 (the default trusted proxy): the test's own client address
        me = {"X-Forwarded-For": _address()}
        spent = [httpx.get(first + EVENTS, headers=me, timeout=10) for _ in range(4)]
        refused = httpx.get(second + EVENTS, headers=me, timeout=10)
        other = httpx.get(second + EVENTS, headers={"X-Forwarded-For": _address()}, timeout=10)
    finally:
        for proc, _ in servers:
            proc.terminate()
        for proc, _ in servers:
            proc.wait(timeout=30)
    assert [r.status_code for r in spent] == [200] * 4 and _remaining(spent[-1]) == 0
    assert refused.status_code == 429 and refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["ratelimit"].startswith('"anonymous";r=0;')
    assert other.status_code == 200 and _remaining(other) == 3


async def test_a_websocket_past_the_quota_is_closed_before_it_is_accepted(database_url, redis_url):
    me = _address()
    async with limited(database_url, redis_url, rate_limit_anonymous=1) as http:
        assert (await http.get(EVENTS, headers=_from(me))).status_code == 200
        sent = await websocket_handshake(http.app, [(b"x-forwarded-for", me.encode())])
    assert [(m["type"], m["code"]) for m in sent] == [("websocket.close", 1008)]
    assert "rate limit" in sent[0]["reason"]
