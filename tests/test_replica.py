"""The embedded streaming replica (db/embedded.py, EmbeddedReplica): a hot standby of the
suite's PostgreSQL that follows its new databases and their writes, and one of a private
primary of its own for stopping, crashing and rebuilding."""

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from db.embedded import EmbeddedPostgres, EmbeddedReplica
from tests.conftest import AIRSTRIKE, app_client, as_, count_rows, execute_statements, make_settings

DEADLINE_SECONDS = 10


async def wait_for_count(url: str, sql: str, expected: int) -> None:
    """Poll `sql` (a count) at `url` until it is `expected`, or fail at the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        try:
            found = await count_rows(url, sql)
        except DBAPIError as error:  # a table the replica has yet to replay the creation of
            found = error
        if found == expected:
            return
        assert time.monotonic() < deadline, f"{sql}: {found}, not {expected}, after {DEADLINE_SECONDS} s"
        time.sleep(0.02)


def replica_sees(replica: EmbeddedReplica, sql: str, expected: str) -> None:
    """Poll `sql` on the replica until it answers `expected`, or fail at the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (found := replica.psql(sql).strip()) != expected:
        assert time.monotonic() < deadline, f"{sql}: {found}, not {expected}, after {DEADLINE_SECONDS} s"
        time.sleep(0.02)


async def test_the_replica_is_in_recovery_and_the_primary_is_not(
        embedded_replica: EmbeddedReplica, replica_url_of: Callable[[str], str], database_url: str):
    assert await count_rows(replica_url_of(database_url), "SELECT count(*) FROM (SELECT pg_is_in_recovery() AS r) s "
                                                          "WHERE r") == 1
    assert await count_rows(database_url, "SELECT count(*) FROM (SELECT pg_is_in_recovery() AS r) s WHERE r") == 0


async def test_a_new_database_and_its_writes_reach_the_replica(
        embedded_replica: EmbeddedReplica, replica_url_of: Callable[[str], str], fresh_database_url: str):
    # fresh_database_url is created from a template after the replica started
    await execute_statements(fresh_database_url, "CREATE TABLE probe (id int)", "INSERT INTO probe VALUES (1)")
    await wait_for_count(replica_url_of(fresh_database_url), "SELECT count(*) FROM probe", 1)
    # and what the knowledge base held already is there too
    assert await count_rows(replica_url_of(fresh_database_url), "SELECT count(*) FROM events") == \
        await count_rows(fresh_database_url, "SELECT count(*) FROM events")


async def test_paused_replay_holds_writes_back_until_resumed(
        embedded_replica: EmbeddedReplica, replica_url_of: Callable[[str], str], fresh_database_url: str):
    replica_url = replica_url_of(fresh_database_url)
    await execute_statements(fresh_database_url, "CREATE TABLE probe (id int)")
    await wait_for_count(replica_url, "SELECT count(*) FROM pg_class WHERE relname = 'probe'", 1)
    embedded_replica.pause_replay()
    try:
        paused_at = embedded_replica.replay_lsn()
        await execute_statements(fresh_database_url, "INSERT INTO probe VALUES (1)")
        written_at = embedded_replica.primary._psql("SELECT pg_current_wal_lsn()").strip()
        # the replica has received the write (no sleeping on the chance it has)...
        replica_sees(embedded_replica, f"SELECT pg_last_wal_receive_lsn() >= '{written_at}'", "t")
        # ...and applied none of it
        assert await count_rows(replica_url, "SELECT count(*) FROM probe") == 0
        assert embedded_replica.replay_lsn() == paused_at
        assert embedded_replica.psql(f"SELECT '{paused_at}'::pg_lsn < '{written_at}'").strip() == "t"
    finally:
        embedded_replica.resume_replay()
    await wait_for_count(replica_url, "SELECT count(*) FROM probe", 1)


# --------------------------------------------------------------------------- a private primary


@pytest.fixture(scope="module")
def private_primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """A primary of this module's own (a small cluster: its base backup takes a moment), so
    stopping its replica disturbs no other test."""
    primary = EmbeddedPostgres(tmp_path_factory.mktemp("replicated"), database="postgres")
    primary.start()
    primary._psql("CREATE TABLE probe (id int)")
    yield primary
    primary.stop()


def is_running(replica: EmbeddedReplica) -> bool:
    return (replica.pgdata / "postmaster.pid").exists()


def test_stopped_and_started_again_the_replica_catches_up(private_primary: EmbeddedPostgres):
    replica = EmbeddedReplica(private_primary, 1)
    replica.start()
    built = (replica.pgdata / EmbeddedReplica.BUILT_MARK).stat().st_mtime_ns
    replica.stop()
    assert not is_running(replica)
    assert private_primary._psql("SELECT count(*) FROM pg_replication_slots").strip() == "0"

    private_primary._psql("INSERT INTO probe VALUES (1)")  # while it is stopped
    replica.start()
    try:
        assert (replica.pgdata / EmbeddedReplica.BUILT_MARK).stat().st_mtime_ns == built  # reused, not rebuilt
        replica_sees(replica, "SELECT count(*) FROM probe", "1")
        assert replica.psql("SELECT pg_is_in_recovery()").strip() == "t"
    finally:
        replica.stop()
    private_primary._psql("DELETE FROM probe")


def test_a_replica_left_by_a_crashed_user_is_adopted_and_stopped_by_the_last(private_primary: EmbeddedPostgres):
    starter = (f"import sys; from pathlib import Path; from db.embedded import EmbeddedPostgres, EmbeddedReplica\n"
               f"p = EmbeddedPostgres(Path({str(private_primary.data_dir)!r}), database='postgres'); p.start()\n"
               f"EmbeddedReplica(p, 2).start(); print('started', flush=True); sys.stdin.read()")
    crashed = subprocess.Popen([sys.executable, "-c", starter], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, cwd=Path(__file__).resolve().parent.parent)
    try:
        assert crashed.stdout.readline().strip() == "started"
    finally:
        os.kill(crashed.pid, signal.SIGKILL)
        crashed.wait()
    replica = EmbeddedReplica(private_primary, 2)
    assert is_running(replica)  # nobody stopped it
    replica.start()
    replica.stop()
    assert not is_running(replica)


def test_a_half_made_replica_directory_is_rebuilt(private_primary: EmbeddedPostgres):
    replica = EmbeddedReplica(private_primary, 3)
    replica.pgdata.mkdir(mode=0o700)
    (replica.pgdata / "PG_VERSION").write_text("16\n")  # as a base backup cut short leaves it
    replica.start()
    try:
        private_primary._psql("INSERT INTO probe VALUES (3)")
        replica_sees(replica, "SELECT count(*) FROM probe WHERE id = 3", "1")
    finally:
        replica.stop()
        private_primary._psql("DELETE FROM probe")


# --- reads routed to the replica (db/replicas.py) --------------------------------------


EVENT_BY_ID = "query ($id: ID!) { event(id: $id) { id summary } }"


async def _until(condition, what: str, seconds: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"still not {what} after {seconds} s"
        await asyncio.sleep(0.1)


@pytest.fixture
async def routed(replica_url_of, fresh_database_url, redis_url):
    """The app on a fresh database, reading on the suite replica's copy of it."""
    async with app_client(fresh_database_url, redis_url, make_settings(replica_max_lag_seconds=60),
                          replica_urls=[replica_url_of(fresh_database_url)]) as client:
        async def replica_takes_reads() -> bool:
            return (await client.get("/readyz")).json()["replicas"][0]["takes_reads"]
        await _until(replica_takes_reads, "taking reads")
        yield client


async def test_reads_are_served_by_the_replica(routed):
    replica = routed.app.state.read_routing.replicas[0]
    checked_out = []

    def count_checkout(*args) -> None:
        checked_out.append(1)
    event.listen(replica.engine.sync_engine, "checkout", count_checkout)
    try:
        assert (await routed.get("/v1/events", params={"limit": 2, "country": "SYR"})).status_code == 200
        body = (await routed.post("/graphql", json={"query": "{ events(first: 2) { edges { node { id } } } }"})).json()
        assert "errors" not in body
    finally:
        event.remove(replica.engine.sync_engine, "checkout", count_checkout)
    assert len(checked_out) >= 2
    async with replica.engine.connect() as conn:  # the server those reads went to
        assert await conn.scalar(text("SELECT pg_is_in_recovery()")) is True
    ready = (await routed.get("/readyz")).json()
    assert ready["status"] == "ok" and ready["replicas"][0]["up"] is True


async def test_a_token_reads_its_write_while_the_replica_is_paused(routed, embedded_replica, keys):
    embedded_replica.pause_replay()
    try:
        created = await routed.post("/v1/events", json=AIRSTRIKE, headers=as_(keys["editor"]))
        assert created.status_code == 201, created.text
        token = created.headers["X-Consistency-Token"]
        path = created.headers["Location"]
        # without the token: the paused replica answers, from before the write
        assert (await routed.get(path)).status_code == 404
        # with it: the primary
        seen = await routed.get(path, headers={"X-Consistency-Token": token})
        assert seen.status_code == 200 and seen.json()["summary"] == AIRSTRIKE["summary"]
        event_id = seen.json()["id"]
        gql = {"query": EVENT_BY_ID, "variables": {"id": event_id}}
        assert (await routed.post("/graphql", json=gql)).json()["data"]["event"] is None
        by_extension = (await routed.post("/graphql", json={**gql, "extensions": {"consistencyToken": token}})).json()
        assert by_extension["data"]["event"]["summary"] == AIRSTRIKE["summary"]
        by_header = (await routed.post("/graphql", json=gql, headers={"X-Consistency-Token": token})).json()
        assert by_header["data"]["event"]["id"] == event_id
    finally:
        embedded_replica.resume_replay()

    async def replayed() -> bool:
        return (await routed.get(path)).status_code == 200
    await _until(replayed, "replayed")


async def test_a_graphql_write_carries_its_token(routed, keys):
    mutation = """mutation ($input: EventInput!) { createEvent(input: $input) { id } }"""
    answer = await routed.post("/graphql", headers=as_(keys["editor"]), json={"query": mutation, "variables": {
        "input": {"eventType": AIRSTRIKE["event_type"], "subEventType": AIRSTRIKE["sub_event_type"],
                  "dateStart": AIRSTRIKE["date_start"], "place": AIRSTRIKE["place"], "summary": AIRSTRIKE["summary"]}}})
    body = answer.json()
    assert "errors" not in body, body
    assert body["extensions"]["consistencyToken"] == answer.headers["X-Consistency-Token"]


async def test_a_bad_token_is_named(routed):
    refused = await routed.get("/v1/events", headers={"X-Consistency-Token": "yesterday"})
    assert refused.status_code == 400 and "X-Consistency-Token" in refused.json()["detail"]
    body = (await routed.post("/graphql", json={"query": "{ events(first: 1) { totalCount } }",
                                                "extensions": {"consistencyToken": 42}})).json()
    assert body["data"] is None and "consistencyToken" in body["errors"][0]["message"]


async def test_the_answer_cache_never_answers_older_after_a_write(routed, embedded_replica, keys):
    listing = {"limit": 500, "date_from": "2018-05-01", "date_to": "2018-05-01"}
    before = (await routed.get("/v1/events", params=listing)).json()["data"]
    embedded_replica.pause_replay()
    try:
        created = await routed.post("/v1/events", json=AIRSTRIKE, headers=as_(keys["editor"]))
        token = created.headers["X-Consistency-Token"]
        fresh = (await routed.get("/v1/events", params=listing, headers={"X-Consistency-Token": token})).json()["data"]
        assert len(fresh) == len(before) + 1
        # the paused replica still answers without the token: its own (older) generation
        assert len((await routed.get("/v1/events", params=listing)).json()["data"]) == len(before)
    finally:
        embedded_replica.resume_replay()

    async def caught_up() -> bool:
        return len((await routed.get("/v1/events", params=listing)).json()["data"]) == len(before) + 1
    await _until(caught_up, "showing the write once replayed")
    # and from then on, never the older answer again
    for _ in range(5):
        assert len((await routed.get("/v1/events", params=listing)).json()["data"]) == len(before) + 1


async def test_a_stopped_replica_costs_no_failed_request(embedded_postgres, fresh_database_url, redis_url):
    # (a replica of its own, that no other test reads from: this one stops it)
    own = EmbeddedReplica(embedded_postgres, 2)
    own.start()
    try:
        async with app_client(fresh_database_url, redis_url, make_settings(replica_max_lag_seconds=60),
                              replica_urls=[own.url(make_url(fresh_database_url).database)]) as routed:
            await _stopping_costs_nothing(routed, own)
    finally:
        own.stop()


async def _stopping_costs_nothing(routed, replica: EmbeddedReplica) -> None:
    async def takes_reads() -> bool:
        return (await routed.get("/readyz")).json()["replicas"][0]["takes_reads"]
    await _until(takes_reads, "taking reads")
    queries = [lambda: routed.get("/v1/events", params={"limit": 3}),
               lambda: routed.get("/v1/stats/events", params={"group_by": "year"}),
               lambda: routed.post("/graphql", json={"query": "{ events(first: 3) { totalCount edges { node { id } } } }"})]
    for query in queries:
        assert (await query()).status_code == 200  # (connections to the replica pooled)
    replica.stop()
    for _ in range(3):
        for query in queries:
            answer = await query()
            assert answer.status_code == 200, answer.text
            assert "errors" not in answer.json()
    ready = (await routed.get("/readyz")).json()
    assert ready["status"] == "degraded" and ready["replicas"][0]["takes_reads"] is False
    replica.start()
    await _until(takes_reads, "taking reads again")


# A token no server has reached yet: the read goes to the primary (a test's way to pick it).
ON_THE_PRIMARY = {"X-Consistency-Token": "FFFFFFFF/0"}


async def test_cursors_and_the_change_feed_go_on_whichever_server_answers(routed, keys):
    await routed.post("/v1/events", json=AIRSTRIKE, headers=as_(keys["editor"]))

    async def replayed() -> bool:
        on_replica = (await routed.get("/v1/changes", params={"limit": 1000})).json()
        on_primary = (await routed.get("/v1/changes", params={"limit": 1000}, headers=ON_THE_PRIMARY)).json()
        return on_replica == on_primary
    await _until(replayed, "the same feed on both")

    for path, after in (("/v1/events", "cursor"), ("/v1/changes", "since")):
        on_primary, mixed, params, mixed_params = [], [], {"limit": 4}, {"limit": 4}
        for turn in range(3):  # three pages on the primary; three taking turns, cursor and all
            page = (await routed.get(path, params=params, headers=ON_THE_PRIMARY)).json()
            on_primary += page["data"]
            params = {"limit": 4, after: page["next_cursor"]}
            page = (await routed.get(path, params=mixed_params, headers=ON_THE_PRIMARY if turn % 2 else None)).json()
            mixed += page["data"]
            mixed_params = {"limit": 4, after: page["next_cursor"]}
        assert len(on_primary) == 12 and mixed == on_primary, path


async def test_a_replica_past_the_lag_bound_gets_no_reads_until_it_catches_up(
        replica_url_of, embedded_replica, fresh_database_url, redis_url, keys):
    async with app_client(fresh_database_url, redis_url, make_settings(replica_max_lag_seconds=0.5),
                          replica_urls=[replica_url_of(fresh_database_url)]) as client:
        async def takes_reads() -> bool:
            return (await client.get("/readyz")).json()["replicas"][0]["takes_reads"]
        await _until(takes_reads, "taking reads")
        embedded_replica.pause_replay()
        try:
            created = await client.post("/v1/events", json=AIRSTRIKE, headers=as_(keys["editor"]))

            async def left() -> bool:
                return not await takes_reads()
            await _until(left, "left for lagging")
            # no token, yet the write shows: the primary answers while the replica lags
            assert (await client.get(created.headers["Location"])).status_code == 200
            assert (await client.get("/readyz")).json()["status"] == "degraded"
        finally:
            embedded_replica.resume_replay()
        await _until(takes_reads, "taking reads again, caught up")


async def test_a_read_as_of_a_time_is_exact_whichever_server_lags(routed, embedded_replica, keys):
    embedded_replica.pause_replay()
    try:
        created = await routed.post("/v1/events", json=AIRSTRIKE, headers=as_(keys["editor"]))
        event_id = (await routed.get(created.headers["Location"], headers=ON_THE_PRIMARY)).json()["id"]
        as_of = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)).isoformat()  # after the write
        # no token: the replica has not replayed the write, but a read as of a later time
        # must show it (answered by the primary)
        assert (await routed.get(f"/v1/events/{event_id}", params={"as_of": as_of})).status_code == 200
        gql = {"query": f'{{ event(id: "{event_id}", asOf: "{as_of}") {{ id }} }}'}
        assert (await routed.post("/graphql", json=gql)).json()["data"]["event"]["id"] == event_id
    finally:
        embedded_replica.resume_replay()
