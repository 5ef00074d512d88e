"""PostgreSQL going away and coming back under load: every answer is a 2xx or a 503
(problem+json with Retry-After in REST, SERVICE_UNAVAILABLE in GraphQL), never a 500,
and answers are 2xx again once it is back. A statement over its timeout is a 503 too.

On a PostgreSQL of this module's own (the shared test server serves other workers),
migrated and seeded with the article's records only, so that it is quick to make.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from db.api_keys import create_api_key
from db.embedded import EmbeddedPostgres
from db.engine import SESSION_SETTINGS, is_database_unavailable, make_engine
from db.migrate import upgrade
from db.seed import load_seed_dir
from tests.conftest import AIRSTRIKE, TEST_DATA_DIR, app_client, as_, event_url, make_settings
from tests.test_graphql_mutations import CREATE_EVENT, STRIKE

EVENTS = "{ events(first: 5) { totalCount edges { node { id summary } } } }"


class PrivatePostgres:
    def __init__(self) -> None:
        self.dir = TEST_DATA_DIR / f"unavailable-{uuid.uuid4().hex[:8]}"
        self.pg = EmbeddedPostgres(self.dir, database="conflictkb")

    def pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.pg.pgdata, user=self.pg._server.system_user, timeout=60)

    def stop(self, mode: str) -> None:
        """`pg_ctl stop -m fast` (sessions ended: "terminating connection due to administrator
        command") or `-m immediate` (a crash: connections cut, recovery at the next start)."""
        self.socket_dir = self.pg.socket_dir
        self.pg_ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        """As pgserver starts it: on the same Unix socket, listening on no address."""
        self.pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.pg._server.log), "start")


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    private = PrivatePostgres()
    private.pg.start()
    url = private.pg.url()
    upgrade(url)

    async def seed_and_key() -> str:
        engine = make_engine(url, pool_size=1)
        async with engine.begin() as conn:
            await load_seed_dir(conn)
            key = (await create_api_key(conn, "editor", "unavailable tests")).token
        await engine.dispose()
        return key

    private.url = url
    private.editor = asyncio.run(seed_and_key())
    try:
        yield private
    finally:
        private.pg.stop()
        shutil.rmtree(private.dir, ignore_errors=True)


# --- one request of each kind, and what may come back --------------------------------

def _rest(method: str, path: str, **kw):
    return lambda http, key: http.request(method, path, headers={"Cache-Control": "no-cache", **as_(key)}, **kw)


def _graphql(query: str, **variables):
    return lambda http, key: http.post("/graphql", json={"query": query, "variables": variables}, headers=as_(key))


REQUESTS = {
    "REST list": _rest("GET", "/v1/events", params={"limit": 5}),
    "REST detail": _rest("GET", event_url("al-qasr-strike")),
    "REST write": _rest("POST", "/v1/events", json=AIRSTRIKE),
    "GraphQL query": _graphql(EVENTS),
    "GraphQL mutation": _graphql(CREATE_EVENT, input=STRIKE),
}


def outcome(kind: str, response) -> str:
    """'ok', 'unavailable' (a well-formed 503 or SERVICE_UNAVAILABLE), or what is wrong."""
    if kind.startswith("REST"):
        if response.status_code in (200, 201):
            return "ok"
        if response.status_code == 503 and response.headers.get("retry-after") \
                and response.headers["content-type"] == "application/problem+json":
            return "unavailable"
        return f"{response.status_code} {response.text[:200]}"
    body = response.json()
    codes = {error.get("extensions", {}).get("code") for error in body.get("errors", [])}
    if response.status_code == 200 and not codes:
        return "ok"
    if codes == {"SERVICE_UNAVAILABLE"} and response.status_code in (200, 503) and response.headers.get("retry-after"):
        return "unavailable"
    return f"{response.status_code} {response.text[:200]}"


async def _round(http, key: str) -> dict[str, str]:
    answers = await asyncio.gather(*(request(http, key) for request in REQUESTS.values()))
    return {kind: outcome(kind, answer) for kind, answer in zip(REQUESTS, answers)}


async def _until_all_ok(http, key: str, seconds: float = 30) -> dict[str, str]:
    async with asyncio.timeout(seconds):
        while True:
            answers = await _round(http, key)
            if set(answers.values()) == {"ok"}:
                return answers
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("keys_for_reads", [False, True], ids=["public reads", "keys for reads"])
async def test_postgres_stopped_and_started_under_load_answers_2xx_or_503(private_postgres, redis_url,
                                                                          keys_for_reads: bool):
    """With CONFLICTKB_REQUIRE_KEY_FOR_READS, every request's key is looked up in front of the
    app (api/auth.py RequireKeyForReads): that lookup meets the outage too."""
    seen: Counter[tuple[str, str]] = Counter()
    loading = True

    async def load(http, worker: int) -> None:
        for kind in itertools.islice(itertools.cycle(REQUESTS), worker, None):
            if not loading:
                return
            response = await asyncio.wait_for(REQUESTS[kind](http, private_postgres.editor), 30)
            seen[kind, outcome(kind, response)] += 1

    settings = make_settings().model_copy(update={"require_key_for_reads": keys_for_reads})
    async with app_client(private_postgres.url, redis_url, settings) as http:
        await _until_all_ok(http, private_postgres.editor)
        workers = [asyncio.create_task(load(http, n)) for n in range(6)]
        try:
            for mode in ("fast", "immediate"):
                await asyncio.sleep(0.3)
                await asyncio.to_thread(private_postgres.stop, mode)
                await asyncio.sleep(0.5)  # the load runs on against no database
                await asyncio.to_thread(private_postgres.start)
                await _until_all_ok(http, private_postgres.editor)
        finally:
            loading = False
            await asyncio.gather(*workers)
        # back: answered as before
        assert set((await _round(http, private_postgres.editor)).values()) == {"ok"}

    wrong = {key: count for key, count in seen.items() if key[1] not in ("ok", "unavailable")}
    assert wrong == {}
    for kind in REQUESTS:  # each kind was seen both ways: the outage was met, and outlived
        assert seen[kind, "ok"] and seen[kind, "unavailable"], seen


@pytest.fixture
async def events_locked(private_postgres) -> Iterator[None]:
    """The events table locked by another session, so a read of it waits until its
    statement timeout cancels it."""
    conn = await asyncpg.connect(private_postgres.url.replace("postgresql+asyncpg", "postgresql"))
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        await transaction.rollback()
        await conn.close()


async def test_a_statement_over_its_timeout_is_a_503(private_postgres, redis_url, monkeypatch, events_locked):
    monkeypatch.setitem(SESSION_SETTINGS, "statement_timeout", "200")  # ms, for the app made here
    async with app_client(private_postgres.url, redis_url) as http:
        rest = await REQUESTS["REST list"](http, private_postgres.editor)
        assert outcome("REST list", rest) == "unavailable", rest.text
        assert rest.json()["detail"] == "The database is unavailable; try again shortly."
        graphql = await REQUESTS["GraphQL query"](http, private_postgres.editor)
        assert outcome("GraphQL query", graphql) == "unavailable", graphql.text
        assert graphql.json()["errors"][0]["message"] == "The database is unavailable; try again shortly."


@pytest.mark.parametrize(("error", "unavailable"), [
    (asyncpg.CannotConnectNowError("the database system is starting up"), True),  # 57P03
    (asyncpg.CannotConnectNowError("the database system is not yet accepting connections"), True),
    (asyncpg.AdminShutdownError("terminating connection due to administrator command"), True),  # 57P01
    (asyncpg.CrashShutdownError("terminating connection due to crash of another server process"), True),
    (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), True),  # 57014
    (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"), True),
    (asyncpg.TooManyConnectionsError("sorry, too many clients already"), True),  # 53300
    (asyncpg.DeadlockDetectedError("deadlock detected"), True),  # 40P01: rolled back whole, may be run again
    (asyncpg.SerializationError("could not serialize access due to concurrent update"), True),  # 40001
    (ConnectionRefusedError(111, "Connection refused"), True),
    # a connection a restart broke mid-statement, reused before asyncpg saw it closed
    (asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"), True),
    (asyncpg.UniqueViolationError("duplicate key value"), False),
    (asyncpg.UndefinedColumnError("column does not exist"), False),
    (ValueError("not a database error"), False),
])
def test_what_counts_as_the_database_being_unavailable(error: Exception, unavailable: bool):
    """As asyncpg raises them, and as SQLAlchemy wraps them (DBAPIError, .orig the driver's)."""
    assert is_database_unavailable(error) is unavailable
    wrapped = DBAPIError("SELECT 1", None, error)
    assert is_database_unavailable(wrapped) is unavailable


async def test_a_statement_cancelled_through_sqlalchemy_is_unavailable(private_postgres):
    engine = make_engine(private_postgres.url, pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SET statement_timeout = 10"))
            with pytest.raises(DBAPIError) as raised:
                await conn.execute(text("SELECT pg_sleep(1)"))
        assert is_database_unavailable(raised.value)
    finally:
        await engine.dispose()
