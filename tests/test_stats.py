"""Event stats over REST and GraphQL: every dimension and filter, groups adding up to
the list's total, the counting rule, fill, the monthly rollup agreeing with the events,
and cached answers that follow every write."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as redis
from pydantic.alias_generators import to_camel
from sqlalchemy import event as sa_event, text

from db.bulk import finish_interrupted_bulk_load, start_bulk_load
from db.cache import AnswerCache, current_generation
from db.embedded import EmbeddedRedis
from db.engine import make_engine
from db.queries import stats
from tests.conftest import app_client, execute_statements, generated_database, make_settings

SINGLE_VALUED = ["country", "admin1", "admin2", "year", "month", "week", "day", "event_type", "sub_event_type"]
MEASURES = ["events", "fatalities_low", "fatalities_best", "fatalities_high", "civilian_fatalities"]


@pytest.fixture(scope="module")
async def generated(databases, redis_url) -> AsyncIterator:
    """Seed plus 600 generated events, and a client on them."""
    async with generated_database(databases, 600, seed=5) as url, app_client(url, redis_url) as http:
        http.database_url = url
        yield http


async def _stats(client, **params) -> list[dict]:
    response = await client.get("/v1/stats/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def _total(client, **params) -> int:
    response = await client.get("/v1/events", params={"limit": 1, "count": "true", **params})
    assert response.status_code == 200, response.text
    return response.json()["total"]


@pytest.mark.parametrize("dimension", SINGLE_VALUED)
async def test_groups_of_each_dimension_add_up_to_the_list_total(generated, dimension):
    rows = await _stats(generated, group_by=dimension)
    assert len(rows) > 1
    assert sum(r["events"] for r in rows) == await _total(generated)
    everything = (await _stats(generated))[0]  # no group_by: one row, the totals
    for measure in MEASURES:
        figures = [r[measure] for r in rows]
        # an open upper bound in any group leaves the whole without one
        assert (None if None in figures else sum(figures)) == everything[measure]


async def test_an_open_upper_bound_leaves_the_group_without_one(client):
    """Al-Qasr: "over two dozen civilians dead" gives low 25 and no high."""
    (row,) = await _stats(client, group_by="admin1", admin1="Hasakah")
    assert (row["events"], row["fatalities_low"], row["fatalities_high"], row["civilian_fatalities"]) == (
        1, 25, None, 25)


FILTERS = [
    {"country": "SYR"}, {"admin1": "Hasakah"}, {"sub_event_type": "Air/drone strike"},
    {"event_type": "Battles", "date_from": "2017-01-01", "date_to": "2017-12-31"},
    {"date_from": "2017-03-15", "date_to": "2018-02-10"}, {"perpetrator": "US-led coalition", "include_members": "true"},
    {"claimant": "SOHR"}, {"attribution": "contested"}, {"min_fatalities": "10"}, {"q": "killed"},
    {"bbox": "35,32,43,38"}, {"near": "36.2,37.1,150"},
    {"where": '{"_or": [{"country": "IRQ"}, {"subEventType": "Attack"}], "_not": {"eventType": "Protests"}}'},
]


@pytest.mark.parametrize("params", FILTERS, ids=lambda p: ",".join(p))
async def test_every_filter_gives_the_lists_total(generated, params):
    rows = await _stats(generated, group_by="admin1,month", **params)
    assert sum(r["events"] for r in rows) == await _total(generated, **params)


GRAPHQL_FILTERS = [
    ({"country": ["SYR"]}, {"country": "SYR"}),
    ({"subEventType": ["Air/drone strike"], "dateFrom": "2017-03-15", "dateTo": "2018-02-10"},
     {"sub_event_type": "Air/drone strike", "date_from": "2017-03-15", "date_to": "2018-02-10"}),
    ({"perpetrator": ["US-led coalition"], "includeMembers": True},
     {"perpetrator": "US-led coalition", "include_members": "true"}),
    ({"claimant": ["SOHR"], "attribution": ["CONTESTED"]}, {"claimant": "SOHR", "attribution": "contested"}),
    ({"minFatalities": 10, "q": "killed"}, {"min_fatalities": "10", "q": "killed"}),
    ({"near": {"latitude": 36.2, "longitude": 37.1, "radiusKm": 150}}, {"near": "36.2,37.1,150"}),
    ({"_or": [{"country": ["IRQ"]}, {"subEventType": ["Attack"]}], "_not": {"eventType": ["Protests"]}},
     {"where": '{"_or": [{"country": "IRQ"}, {"subEventType": "Attack"}], "_not": {"eventType": "Protests"}}'}),
]


@pytest.mark.parametrize("where, params", GRAPHQL_FILTERS, ids=lambda value: ",".join(value))
async def test_graphql_filters_give_the_lists_total(generated, where, params):
    query = """query ($where: EventWhere) { eventStats(groupBy: [ADMIN1, MONTH], where: $where) { events } }"""
    response = await generated.post("/graphql", json={"query": query, "variables": {"where": where}})
    assert "errors" not in response.json(), response.text
    total = sum(row["events"] for row in response.json()["data"]["eventStats"])
    assert total == await _total(generated, **params) > 0


async def test_the_rollup_agrees_with_the_events(generated, monkeypatch):
    """The same stats read from the monthly rollup and from the events."""
    engine = make_engine(generated.database_url, pool_size=1)
    cases = [({}, ("country", "admin1", "admin2", "year", "month", "event_type", "sub_event_type")),
             (stats.EventFilter(sub_event_type=("Air/drone strike",)), ("admin1", "month")),
             (stats.EventFilter(date_from=stats.dt.date(2017, 2, 1), date_to=stats.dt.date(2018, 5, 31),
                                country=("SYR", "Iraq")), ("country", "year", "month"))]
    try:
        async with engine.connect() as conn:
            for f, group_by in cases:
                f = f or stats.EventFilter()
                assert stats.rollup_answers(f, group_by)
                from_rollup = orjson.loads(await stats._rows_json(conn, f, group_by))
                with monkeypatch.context() as patch:
                    patch.setattr(stats, "rollup_answers", lambda *_: False)
                    from_events = orjson.loads(await stats._rows_json(conn, f, group_by))
                assert from_rollup == from_events
                assert from_rollup == sorted(from_rollup, key=stats._sort_key(group_by))  # SQL orders as fill does
                assert len(from_rollup) > 3
    finally:
        await engine.dispose()


async def test_the_rollup_follows_every_write(fresh_database_url):
    """After inserts, moves, re-typings, new figures and deletes, the trigger-kept rollup
    equals one rebuilt from the events."""
    engine = make_engine(fresh_database_url, pool_size=1)
    rollup = text("""SELECT level, start_month, end_month, country_id, admin1_id, admin2_id, event_type,
                            sub_event_type, events, fatalities_low, fatalities_best, fatalities_high,
                            civilian_fatalities, open_high_events
                       FROM event_month_counts WHERE events <> 0 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8""")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("""
                UPDATE events SET date_end = date_start + 40, date_precision = 'month',
                                  fatalities_best = coalesce(fatalities_best, 0) + 3, fatalities_high = NULL
                 WHERE id IN (SELECT id FROM events ORDER BY id LIMIT 3)"""))
            await conn.execute(text("""
                UPDATE events SET event_type = 'Explosions/Remote violence',
                                  sub_event_type = 'Shelling/artillery/missile attack'
                 WHERE id IN (SELECT id FROM events ORDER BY id DESC LIMIT 2)"""))
            await conn.execute(text("""
                UPDATE events SET place_id = (SELECT id FROM places WHERE iso3 = 'IRQ')
                 WHERE id = (SELECT id FROM events WHERE country_id <> (SELECT id FROM places WHERE iso3 = 'IRQ')
                             ORDER BY id LIMIT 1)"""))
            await conn.execute(text("DELETE FROM events WHERE id = (SELECT id FROM events ORDER BY date_start LIMIT 1)"))
            await conn.execute(text("""
                INSERT INTO events (id, event_type, sub_event_type, date_start, date_end, date_precision, place_id,
                                    geo_precision, fatalities_best)
                SELECT gen_random_uuid(), event_type, sub_event_type, date_start - 400, date_end - 400, date_precision,
                       place_id, geo_precision, 7 FROM events ORDER BY id LIMIT 2"""))
        async with engine.begin() as conn:
            kept = (await conn.execute(rollup)).all()
            await conn.execute(text("SELECT rebuild_event_month_counts()"))
            assert (await conn.execute(rollup)).all() == kept
            assert len(kept) > 5
    finally:
        await engine.dispose()


async def test_an_event_counts_once_in_its_first_period_inside_the_dates(fresh_client, fresh_database_url):
    await execute_statements(fresh_database_url,
                 "DELETE FROM events WHERE date_start >= '2010-01-01' AND date_end < '2011-01-01'", """
                 INSERT INTO events (id, event_type, sub_event_type, date_start, date_end, date_precision, place_id,
                                     geo_precision, fatalities_best)
                 VALUES (gen_random_uuid(), 'Battles', 'Armed clash', '2010-03-28', '2010-04-03', 'week',
                         (SELECT id FROM places WHERE iso3 = 'SYR'), 'country', 4)""")
    spanning = {"group_by": "month", "country": "SYR"}
    assert [(r["month"], r["events"]) for r in await _stats(fresh_client, **spanning, date_from="2010-01-01",
                                                             date_to="2010-12-31")] == [("2010-03", 1)]
    assert [(r["month"], r["events"]) for r in await _stats(fresh_client, **spanning, date_from="2010-04-01",
                                                             date_to="2010-12-31")] == [("2010-04", 1)]
    filled = await _stats(fresh_client, **spanning, date_from="2010-02-10", date_to="2010-05-31", fill="true")
    assert [(r["month"], r["events"], r["fatalities_best"]) for r in filled] == [
        ("2010-02", 0, 0), ("2010-03", 1, 4), ("2010-04", 0, 0), ("2010-05", 0, 0)]
    weeks = await _stats(fresh_client, group_by="week", country="SYR", date_from="2010-03-20", date_to="2010-04-05",
                         fill="true")
    # Sunday March 28 ends ISO week 12
    assert [(r["week"], r["events"]) for r in weeks] == [("2010-W11", 0), ("2010-W12", 1), ("2010-W13", 0),
                                                          ("2010-W14", 0)]


async def test_perpetrators_and_claimants_count_each_event_under_each(generated):
    for dimension, role_filter in (("perpetrator", "perpetrator"), ("claimant", "claimant")):
        rows = await _stats(generated, group_by=dimension)
        named = [r for r in rows if r[f"{dimension}_id"] is not None]
        assert len(named) > 2
        for row in named[:4]:
            assert row["events"] == await _total(generated, **{role_filter: row[f"{dimension}_id"]})
        assert sum(r["events"] for r in rows) >= await _total(generated)


def _camel(row: dict) -> dict:
    return {to_camel(key): value for key, value in row.items()}


@pytest.mark.parametrize("dimension", stats.DIMENSIONS)
async def test_graphql_gives_rest_rows_for_each_dimension(generated, dimension):
    named = dimension in (*stats.PLACE_DIMENSIONS, *stats.ACTOR_DIMENSIONS)
    fields = " ".join(to_camel(name) for name in [dimension, *([f"{dimension}_id"] if named else []), *MEASURES])
    query = f"query ($where: EventWhere) {{ eventStats(groupBy: [{dimension.upper()}], where: $where) {{ {fields} }} }}"
    for where, params in (({}, {}), ({"country": ["SYR"], "dateFrom": "2016-06-15"},
                                    {"country": "SYR", "date_from": "2016-06-15"})):
        response = await generated.post("/graphql", json={"query": query, "variables": {"where": where}})
        assert "errors" not in response.json(), response.text
        rest = await _stats(generated, group_by=dimension, **params)
        assert response.json()["data"]["eventStats"] == [_camel(row) for row in rest]
        assert rest


async def test_graphql_event_stats_equal_rest(generated):
    query = """query ($where: EventWhere) { eventStats(groupBy: [ADMIN1, MONTH, PERPETRATOR], where: $where) {
        admin1 admin1Id month perpetrator perpetratorId events fatalitiesLow fatalitiesBest fatalitiesHigh
        civilianFatalities } }"""
    response = await generated.post("/graphql", json={"query": query, "variables": {"where": {"country": ["SYR"]}}})
    graphql = response.json()["data"]["eventStats"]
    rest = await _stats(generated, group_by="admin1,month,perpetrator", country="SYR")
    camel = {"admin1_id": "admin1Id", "perpetrator_id": "perpetratorId", "fatalities_low": "fatalitiesLow",
             "fatalities_best": "fatalitiesBest", "fatalities_high": "fatalitiesHigh",
             "civilian_fatalities": "civilianFatalities"}
    assert graphql == [{camel.get(k, k): v for k, v in row.items()} for row in rest]
    assert len(graphql) > 5


@pytest.mark.parametrize("params, name", [
    ({"group_by": "province"}, "group_by"), ({"group_by": "month,month"}, "group_by"),
    ({"group_by": "admin1", "fill": "true"}, "fill"), ({"group_by": "month", "date_from": "soon"}, "date_from"),
    ({"group_by": "month", "country": "Atlantis"}, "country")])
async def test_bad_stats_parameters_are_named(client, params, name):
    response = await client.get("/v1/stats/events", params=params)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["name"] == name


async def test_graphql_names_a_bad_stats_argument(client):
    response = await client.post("/graphql", json={"query": "{ eventStats(groupBy: [ADMIN1], fill: true) { events } }"})
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "fill"}
    response = await client.post("/graphql", json={"query": "{ eventStats(groupBy: [PROVINCE]) { events } }"})
    assert "PROVINCE" in response.json()["errors"][0]["message"]


async def test_stats_answers_are_cached_until_a_write(fresh_client, fresh_database_url):
    params = {"group_by": "country,year", "sub_event_type": "Air/drone strike"}
    first = await fresh_client.get("/v1/stats/events", params=params)
    again = await fresh_client.get("/v1/stats/events", params=params)
    assert (first.headers["x-cache"], again.headers["x-cache"]) == ("miss", "hit")
    assert again.json() == first.json() and again.headers["etag"] == first.headers["etag"]
    assert again.headers["cache-control"] == "public, no-cache"
    revalidated = await fresh_client.get("/v1/stats/events", params=params,
                                         headers={"if-none-match": again.headers["etag"]})
    assert revalidated.status_code == 304
    asked_fresh = await fresh_client.get("/v1/stats/events", params=params, headers={"cache-control": "no-cache"})
    assert asked_fresh.headers["x-cache"] == "miss" and asked_fresh.json() == first.json()
    await execute_statements(fresh_database_url, "UPDATE events SET sub_event_type = 'Air/drone strike', "
                 "event_type = 'Explosions/Remote violence' WHERE sub_event_type <> 'Air/drone strike'")
    after = await fresh_client.get("/v1/stats/events", params=params)
    assert after.headers["x-cache"] == "miss"
    assert sum(r["events"] for r in after.json()["data"]) == await _total(fresh_client)
    assert after.json() != first.json()


async def test_lists_and_details_are_cached_until_a_write(fresh_client, fresh_database_url):
    """Whole answers of lists and details too; GraphQL's eventStats follows the same write."""
    paths = ["/v1/events?country=SYR&limit=5&count=true", "/v1/events/conflictkb-seed:al-qasr-strike",
             "/v1/actors?q=coalition"]
    for path in paths:
        assert [(await fresh_client.get(path)).headers["x-cache"] for _ in range(2)] == ["miss", "hit"]
    query = '{ eventStats(groupBy: [COUNTRY], where: {country: ["SYR"]}) { events } }'
    before = (await fresh_client.post("/graphql", json={"query": query})).json()["data"]["eventStats"]
    await execute_statements(fresh_database_url,
                 "UPDATE actors SET name = name || ' (renamed)' WHERE name = 'US-led coalition'",
                 "DELETE FROM events WHERE id = (SELECT id FROM events WHERE country_id = "
                 "(SELECT id FROM places WHERE iso3 = 'SYR') ORDER BY id LIMIT 1)")
    for path in paths:
        response = await fresh_client.get(path)
        assert response.headers["x-cache"] == "miss", path
    assert (await fresh_client.get(paths[0])).json()["total"] == before[0]["events"] - 1
    assert "US-led coalition (renamed)" in (await fresh_client.get(paths[2])).text
    after = (await fresh_client.post("/graphql", json={"query": query})).json()["data"]["eventStats"]
    assert after == [{"events": before[0]["events"] - 1}]


async def test_a_hung_redis_costs_no_long_wait(database_url, tmp_path):
    """A Redis that stops answering (SIGSTOP) is skipped after the short socket timeout;
    when it answers again, caching resumes."""
    own_redis = EmbeddedRedis(tmp_path)
    own_redis.start()
    settings = make_settings()
    settings.redis_retry_seconds = 0.5
    pid = int(own_redis.pidfile.read_text())
    try:
        async with app_client(database_url, own_redis.url, settings=settings) as http:
            os.kill(pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                for group_by in ("year", "month", "country", "year,country", "event_type"):
                    response = await http.get("/v1/stats/events", params={"group_by": group_by})
                    assert response.status_code == 200 and response.json()["data"]
                assert time.monotonic() - started < 1.5  # one timeout (0.1 s), then Redis is skipped
            finally:
                os.kill(pid, signal.SIGCONT)
            await asyncio.sleep(0.6)
            params = {"group_by": "day"}
            statuses = [(await http.get("/v1/stats/events", params=params)).headers["x-cache"] for _ in range(2)]
            assert statuses == ["miss", "hit"]
    finally:
        own_redis.stop()


async def test_fifty_identical_misses_aggregate_once(fresh_database_url, redis_url):
    async with app_client(fresh_database_url, redis_url) as http:
        aggregates = []

        def watch(conn, cursor, statement, parameters, context, executemany):
            if "GROUP BY" in statement:
                aggregates.append(statement)

        engine = http.app.state.engine.sync_engine
        sa_event.listen(engine, "before_cursor_execute", watch)
        try:
            params = {"group_by": "day,admin2,sub_event_type", "date_from": "2018-01-01", "country": "SYR"}
            responses = await asyncio.gather(*(http.get("/v1/stats/events", params=params) for _ in range(50)))
        finally:
            sa_event.remove(engine, "before_cursor_execute", watch)
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert len(aggregates) == 1


async def test_redis_stopped_and_restarted(database_url, tmp_path, caplog):
    """Answers keep coming from PostgreSQL, quickly, while the real Redis is down; /readyz
    says degraded; when Redis is back, caching resumes by itself."""
    own_redis = EmbeddedRedis(tmp_path)
    own_redis.start()
    settings = make_settings()
    settings.redis_retry_seconds = 0.5
    try:
        async with app_client(database_url, own_redis.url, settings=settings) as http:
            params = {"group_by": "country,month"}
            assert [(await http.get("/v1/stats/events", params=params)).headers["x-cache"] for _ in range(2)] == [
                "miss", "hit"]
            expected = (await http.get("/v1/stats/events", params=params)).json()

            own_redis.stop()
            for _ in range(3):
                started = time.monotonic()
                response = await http.get("/v1/stats/events", params=params)
                assert response.status_code == 200 and response.json() == expected
                assert response.headers["x-cache"] == "miss"
                assert time.monotonic() - started < 1.0
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "degraded"
            assert any("Redis unavailable" in r.message for r in caplog.records)

            own_redis.start()
            await asyncio.sleep(0.6)  # past the retry interval
            statuses = [(await http.get("/v1/stats/events", params=params)).headers["x-cache"] for _ in range(2)]
            assert statuses == ["miss", "hit"]  # a restarted Redis is empty, then holds the answer again
            assert (await http.get("/readyz")).json()["status"] == "ok"
    finally:
        own_redis.stop()


async def test_single_flight_across_processes(redis_url):
    """Two caches (as in two server processes) sharing Redis: one computes, the other
    waits for its answer."""
    client = redis.from_url(redis_url)
    computed = []

    async def compute():
        computed.append(1)
        await asyncio.sleep(0.2)
        return {"answer": 42}

    key = f"conflictkb:v1:test:{uuid.uuid4().hex}"
    try:
        first, second = AnswerCache(client), AnswerCache(client)
        answers = await asyncio.gather(*(cache.answer_at(key, compute, encode=orjson.dumps, decode=orjson.loads)
                                         for cache in (first, second)))
        assert [a.value for a in answers] == [{"answer": 42}] * 2
        assert len(computed) == 1
        assert (await first.answer_at(key, compute, encode=orjson.dumps, decode=orjson.loads)).status == "hit"
    finally:
        await client.aclose()


# --- found by review: each of these was wrong once ---

async def test_a_bound_of_zero_is_a_filter(generated):
    """max_fatalities=0 is given (0 == False in Python): stats, totals and lists apply it."""
    engine = make_engine(generated.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            expected = await conn.scalar(text("SELECT count(*) FROM events WHERE fatalities_best <= 0"))
    finally:
        await engine.dispose()
    rows = await _stats(generated, group_by="country", max_fatalities="0")
    assert sum(r["events"] for r in rows) == await _total(generated, max_fatalities="0") == expected
    listed = (await generated.get("/v1/events", params={"max_fatalities": "0", "where": '{"country": "SYR"}',
                                                        "limit": 500})).json()["data"]
    assert listed and all(e["fatalities"]["best"] == 0 for e in listed)


async def test_repeated_group_by_in_another_order_is_another_answer(client):
    first = await client.get("/v1/stats/events?group_by=year&group_by=country")
    second = await client.get("/v1/stats/events?group_by=country&group_by=year")
    assert first.json()["group_by"] == ["year", "country"] and second.json()["group_by"] == ["country", "year"]


async def test_a_cached_page_links_relatively(client):
    for host in ("internal.local:9000", "api.example.org"):
        response = await client.get("/v1/events?limit=2&country=SYR", headers={"host": host})
        assert response.headers["link"].startswith("</v1/events?") and host not in response.headers["link"]


async def test_first_requests_together_open_one_small_pool(fresh_database_url, redis_url):
    async with app_client(fresh_database_url, redis_url) as http:
        await asyncio.gather(*(http.get("/v1/vocabularies") for _ in range(40)))
        async with http.app.state.engine.connect() as conn:
            opened = await conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                            "AND application_name = 'conflictkb-generation'"))
    assert 1 <= opened <= 4


async def test_truncating_events_empties_the_rollup(fresh_client, fresh_database_url):
    await execute_statements(fresh_database_url, "TRUNCATE events CASCADE")
    assert await _stats(fresh_client, group_by="country") == []
    assert await _total(fresh_client, country="SYR") == 0


@pytest.mark.parametrize("params", [
    {"group_by": "week", "date_from": "9999-12-01", "date_to": "9999-12-31"},
    {"group_by": "day", "date_from": "9999-12-30", "date_to": "9999-12-31"},
    {"group_by": "week", "date_from": "0001-01-01", "date_to": "0001-01-20"},
])
async def test_fill_at_the_ends_of_the_calendar(client, params):
    rows = await _stats(client, fill="true", **params)
    period = params["group_by"]
    assert rows and all(r["events"] == 0 for r in rows)
    assert all(len(str(r[period]).split("-")[0]) == 4 for r in rows)  # 0001-W01, not 1-W01


async def test_a_huge_fill_is_refused_before_it_is_built(client):
    started = time.monotonic()
    response = await client.get("/v1/stats/events", params={"group_by": "day", "fill": "true",
                                                             "date_from": "0001-01-01", "date_to": "9998-12-31"})
    assert response.status_code == 422 and response.json()["errors"][0]["name"] == "fill"
    assert time.monotonic() - started < 1.0


async def test_a_cancelled_computation_leaves_the_others_to_compute(redis_url):
    client = redis.from_url(redis_url)
    started = asyncio.Event()
    calls = []

    async def slow():
        calls.append(1)
        started.set()
        await asyncio.sleep(10)

    async def quick():
        calls.append(2)
        return {"answer": 1}

    key = f"conflictkb:v1:test:{uuid.uuid4().hex}"
    try:
        cache = AnswerCache(client)
        leader = asyncio.create_task(cache.answer_at(key, slow, encode=orjson.dumps, decode=orjson.loads))
        await started.wait()
        follower = asyncio.create_task(cache.answer_at(key, quick, encode=orjson.dumps, decode=orjson.loads))
        await asyncio.sleep(0.05)
        leader.cancel()
        assert (await asyncio.wait_for(follower, 5)).value == {"answer": 1}
        assert calls == [1, 2]
        await cache.drain()
    finally:
        await client.aclose()


async def test_large_figures_add_up_without_overflow(fresh_client, fresh_database_url):
    await execute_statements(fresh_database_url,
                 """
                 INSERT INTO events (id, event_type, sub_event_type, date_start, date_end, date_precision, place_id,
                                     geo_precision, fatalities_best)
                 SELECT gen_random_uuid(), 'Battles', 'Armed clash', '2030-01-05', '2030-01-05', 'day',
                        (SELECT id FROM places WHERE iso3 = 'SYR'), 'country', 2000000000
                   FROM generate_series(1, 2)""")
    (row,) = await _stats(fresh_client, group_by="year", date_from="2030-01-01", date_to="2030-12-31")
    assert (row["events"], row["fatalities_best"]) == (2, 4_000_000_000)


async def test_an_interrupted_bulk_load_is_finished_later(fresh_database_url):
    """A load that died between its batches and its end left the rollup without its
    events; the next seed (serve, generate) rebuilds it and moves the generation."""
    engine = make_engine(fresh_database_url, pool_size=1)
    try:
        async with engine.begin() as conn:  # (as db.bulk.bulk_load begins one)
            await conn.execute(text("UPDATE data_generation SET rollup_stale = true"))
        async with engine.begin() as conn:
            await start_bulk_load(conn)
            await conn.execute(text("""
                INSERT INTO events (id, event_type, sub_event_type, date_start, date_end, date_precision, place_id,
                                    geo_precision)
                SELECT gen_random_uuid(), 'Battles', 'Armed clash', '2031-02-01', '2031-02-01', 'day',
                       (SELECT id FROM places WHERE iso3 = 'IRQ'), 'country' FROM generate_series(1, 3)"""))
        count = text("SELECT coalesce(sum(events), 0) FROM event_month_counts WHERE level = 0 "
                     "AND start_month = '2031-02-01'")
        async with engine.begin() as conn:
            assert await conn.scalar(count) == 0  # the load died here
            generation = await current_generation(conn)
            assert await finish_interrupted_bulk_load(conn)
        async with engine.begin() as conn:
            assert await conn.scalar(count) == 3
            assert await current_generation(conn) != generation
            assert not await finish_interrupted_bulk_load(conn)
            # the batch took no generation of its own: its events are in the feed from the finish
            unlisted = await conn.scalar(text("""
                SELECT count(*) FROM changes c
                 WHERE NOT EXISTS (SELECT 1 FROM write_generations w WHERE w.txid = c.txid)"""))
            assert unlisted == 0
    finally:
        await engine.dispose()
