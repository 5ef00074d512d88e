"""Cost limits on public reads (db/cost.py): what the outside test found expensive is
refused before any SQL with a 422 (REST) or a COST_LIMIT_EXCEEDED error (GraphQL)
naming the parameter and the limit; what is under the limits answers, on the shipped
data, within the read statement budget; the parts of a read are charged to the quota."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from api.app import create_app
from api.ratelimit import CHARGE
from db.cost import LIMITS
from db.engine import allow_long_statements, is_statement_timeout, make_engine
from db.writes import writing
from tests.conftest import app_client, make_settings

# Words found in nearly every event of the UCDP extract: the costliest to search for.
FREQUENT_WORDS = ("syria", "republic", "arab", "civilian", "state", "conflict", "governorate", "district",
                  "damascus", "rebel", "town", "insurgents", "forces", "al", "islamic", "killed")
# The outside test's query: 2,400 words.
LONG_Q = " or ".join(FREQUENT_WORDS[i % 16] for i in range(2400))
EVENTS_QUERY = """query($where: EventWhere, $first: Int! = 50, $asOf: DateTime) {
  events(where: $where, first: $first, asOf: $asOf) { totalCount edges { node { id place { name } } } } }"""


@pytest.fixture(scope="module")
async def shipped(shipped_database_url, redis_url) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the shipped data, with the default read budget (5 s): a read that
    ran out of it would not answer 200."""
    async with app_client(shipped_database_url, redis_url) as http:
        yield http


async def graphql(client: httpx.AsyncClient, query: str, **variables) -> dict:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return response.json()


def assert_refused(response: httpx.Response, name: str, limit: int) -> dict:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/cost-limit-exceeded"
    assert problem["errors"][0]["name"] == name
    assert problem["errors"][0]["limit"] == limit
    assert f"limit of {limit}" in problem["detail"] and problem["detail"].startswith(f"{name}: ")
    return problem


def assert_graphql_refused(body: dict, argument: str, limit: int) -> dict:
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
    assert error["extensions"]["argument"] == argument and error["extensions"]["limit"] == limit
    assert f"limit of {limit}" in error["message"]
    return error


# --------------------------------------------------------------------------- text search


async def test_a_2400_word_q_is_refused_naming_q_and_the_limit(client):
    problem = assert_refused(await client.get("/v1/events", params={"q": LONG_Q}), "q", LIMITS.q_terms)
    assert problem["detail"] == f"q: 2400 words, more than the limit of {LIMITS.q_terms}; see the limits in the README."
    # the same q anywhere a filter is taken
    for path in ("/v1/stats/events", "/v1/events.csv"):
        assert_refused(await client.get(path, params={"q": LONG_Q}), "q", LIMITS.q_terms)


async def test_a_2400_word_q_is_refused_in_graphql(client):
    error = assert_graphql_refused(await graphql(client, EVENTS_QUERY, where={"q": LONG_Q}), "where.q", LIMITS.q_terms)
    assert error["extensions"]["given"] == 2400


async def test_operators_and_nested_text_searches_count_too(client):
    many_ors = " or ".join(FREQUENT_WORDS[:4] * 5)[:LIMITS.q_length]
    assert_refused(await client.get("/v1/events", params={"q": many_ors}), "q", LIMITS.q_terms)
    # 16 words in each of two nested searches: the tree's 32 words are over the limit
    nested = {"_or": [{"q": " ".join(FREQUENT_WORDS)}, {"q": " ".join(reversed(FREQUENT_WORDS))}]}
    assert_refused(await client.get("/v1/events", params={"where": json.dumps(nested)}), "where", LIMITS.q_terms)


async def test_a_q_at_the_cap_answers_within_the_budget(shipped):
    q = " or ".join(FREQUENT_WORDS)
    assert len(FREQUENT_WORDS) == LIMITS.q_terms
    for sort in ("-date", "relevance"):
        response = await shipped.get("/v1/events", params={"q": q, "sort": sort, "count": "true", "limit": 500})
        assert response.status_code == 200, response.text
        assert response.json()["total"] > 16_000
    body = await graphql(shipped, EVENTS_QUERY, where={"q": q}, first=500)
    assert body["data"]["events"]["totalCount"] > 16_000


# --------------------------------------------------------------------------- where


def _or_of_900() -> dict:
    return {"_or": [{"country": "SYR"}] * 900}


async def test_an_or_of_900_items_is_refused_by_name(client):
    assert_refused(await client.get("/v1/events", params={"where": json.dumps(_or_of_900())}), "where",
                   LIMITS.filter_items)
    assert_graphql_refused(await graphql(client, EVENTS_QUERY, where=_or_of_900()), "where", LIMITS.filter_items)


async def test_1500_actors_are_refused_by_name(client):
    names = [f"actor {i}" for i in range(1500)]
    assert_refused(await client.get("/v1/events", params={"where": json.dumps({"_or": [{"actor": n} for n in names]})}),
                   "where", LIMITS.filter_items)
    assert_refused(await client.get("/v1/events", params={"actor": names}), "actor", LIMITS.filter_values)
    assert_graphql_refused(await graphql(client, EVENTS_QUERY, where={"actor": names}), "where.actor",
                           LIMITS.filter_values)
    # nested lists add up: 3 x 90 values are under 100 each but over 250 together
    nested = {"_or": [{"actor": names[:90]}, {"target": names[90:180]}, {"claimant": names[180:270]}]}
    assert_refused(await client.get("/v1/events", params={"where": json.dumps(nested)}), "where",
                   LIMITS.filter_values_total)


async def test_deep_nesting_is_refused(client):
    where: dict = {"country": "SYR"}
    for _ in range(LIMITS.filter_depth + 1):
        where = {"_not": where}
    assert_refused(await client.get("/v1/events", params={"where": json.dumps(where)}), "where", LIMITS.filter_depth)


async def test_filters_at_the_caps_answer_within_the_budget(shipped):
    actors = (await shipped.get("/v1/actors", params={"limit": 250, "fields": "name"})).json()["data"]
    names = [a["name"] for a in actors]
    # 33 nested filters of 7 actors each, with their members: 99 items, 231 values
    where = {"_or": [{"actor": names[7 * i:7 * i + 7], "includeMembers": True} for i in range(33)]}
    response = await shipped.get("/v1/events", params={"where": json.dumps(where), "count": "true", "limit": 500})
    assert response.status_code == 200, response.text
    assert response.json()["total"] > 0
    body = await graphql(shipped, EVENTS_QUERY, where=where, first=500)
    assert body["data"]["events"]["totalCount"] == response.json()["total"]


# --------------------------------------------------------------------------- pages, as_of, stats


async def test_page_sizes_over_the_most_are_named(client):
    response = await client.get("/v1/events", params={"limit": LIMITS.page_size + 1})
    assert response.status_code == 422
    assert response.json()["errors"][0]["name"] == "limit" and str(LIMITS.page_size) in response.json()["detail"]
    assert_graphql_refused(await graphql(client, EVENTS_QUERY, first=LIMITS.page_size + 1), "first", LIMITS.page_size)
    body = await graphql(client, "{ actors(first: 501) { edges { node { id } } } }")
    assert_graphql_refused(body, "first", LIMITS.page_size)
    response = await client.get("/v1/changes", params={"limit": LIMITS.changes_page_size + 1})
    assert response.status_code == 422 and response.json()["errors"][0]["name"] == "limit"


async def test_a_page_of_500_as_of_a_time_answers_within_the_budget(shipped):
    now = "2999-01-01T00:00:00Z"
    response = await shipped.get("/v1/events", params={"as_of": now, "limit": 500})
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 500
    # an actor filter as of a time (was 30 s: each event read the actors' whole history)
    response = await shipped.get("/v1/events", params={"as_of": now, "limit": 100, "actor": "Government of Syria",
                                                       "count": "true"})
    assert response.status_code == 200, response.text
    assert response.json()["total"] > 1000
    body = await graphql(shipped, EVENTS_QUERY, asOf=now, first=500)
    assert len(body["data"]["events"]["edges"]) == 500


async def test_stats_with_too_many_dimensions_are_refused(client):
    group_by = "day,admin1,admin2,perpetrator,claimant"
    assert_refused(await client.get("/v1/stats/events", params={"group_by": group_by}), "group_by",
                   LIMITS.stats_dimensions)
    body = await graphql(client, "{ eventStats(groupBy: [DAY, ADMIN1, ADMIN2, PERPETRATOR, CLAIMANT]) { events } }")
    assert_graphql_refused(body, "groupBy", LIMITS.stats_dimensions)


# --------------------------------------------------------------------------- GraphQL operation cost

EVENT_PAGE = """events(first: 500, orderBy: ORDER) { edges { node { id
  claims { id claimant { name } via { name } document { title } }
  actors { actor { name } } place { name ancestors { name } } } } }"""
ONE_PAGE = "{ " + EVENT_PAGE.replace("ORDER", "DATE_DESC") + " }"
# Four pages of 500 events with their claims, actors and places: 19,001 points each.
FOUR_PAGES = "{ " + " ".join(f"{name}: " + EVENT_PAGE.replace("ORDER", order) for name, order in (
    ("newest", "DATE_DESC"), ("oldest", "DATE_ASC"), ("deadliest", "FATALITIES_DESC"),
    ("least_deadly", "FATALITIES_ASC"))) + " }"


async def test_an_operation_over_the_most_is_refused_with_its_cost(client):
    body = await graphql(client, FOUR_PAGES)
    assert body["data"] is None
    [error] = body["errors"]
    extensions = error["extensions"]
    assert extensions["code"] == "COST_LIMIT_EXCEEDED"
    assert extensions["maxCost"] == LIMITS.graphql_points and extensions["cost"] > LIMITS.graphql_points
    assert f"costs {extensions['cost']} points, more than the limit of {LIMITS.graphql_points}" in error["message"]
    # one of the four is under it
    body = await graphql(client, ONE_PAGE)
    assert "errors" not in body and len(body["data"]["events"]["edges"]) == 14  # the seeded events


# --------------------------------------------------------------------------- under the limits


async def test_requests_under_the_limits_work(client):
    for path, params in (("/v1/events", {"q": "air strike", "limit": 500, "count": "true"}),
                         ("/v1/events", {"where": json.dumps({"_or": [{"country": "SYR"}, {"admin1": "Hasakah"}]})}),
                         ("/v1/stats/events", {"group_by": "month,admin1"}),
                         ("/v1/actors", {"q": "state"}), ("/v1/claims", {"limit": 500}),
                         ("/v1/events.ndjson", {"country": "SYR"}), ("/v1/changes", {"limit": 10_000})):
        response = await client.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
    body = await graphql(client, EVENTS_QUERY, where={"q": "air strike", "_or": [{"country": ["SYR"]}]})
    assert "errors" not in body


# --------------------------------------------------------------------------- charges


@asynccontextmanager
async def charged_client(database_url: str, redis_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, list[int]]]:
    """A client whose requests record what they are charged (as a limiter in front would)."""
    charges: list[int] = []

    async def record(units: int) -> None:
        charges.append(units)

    # the limiter off: its own charge would take the place of this one in the scope
    # (tests/test_rate_limits.py shows charges reaching the quota)
    app = create_app(make_settings().model_copy(update={"rate_limits": False}),
                     database_url=database_url, redis_url=redis_url)

    async def with_charge(scope, receive, send):
        scope[CHARGE] = record
        await app(scope, receive, send)

    async with LifespanManager(app):
        # (no-cache: an answer from the answer cache runs no route, so is charged nothing more)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=with_charge), base_url="http://test",
                                     headers={"Cache-Control": "no-cache"}) as http:
            yield http, charges


async def test_reads_are_charged_by_their_cost(database_url, redis_url):
    async with charged_client(database_url, redis_url) as (http, charges):
        assert (await http.get("/v1/events", params={"limit": 50})).status_code == 200
        assert sum(charges) == 0  # a plain page: only the unit paid on arrival
        charges.clear()
        assert (await http.get("/v1/events", params={"limit": 500})).status_code == 200
        assert sum(charges) == 9  # ten pages of 50
        charges.clear()
        assert (await http.get("/v1/events", params={"limit": 500, "as_of": "2999-01-01T00:00:00Z"})).status_code == 200
        assert sum(charges) == 9 + 30  # read from the history: four times the work
        charges.clear()
        assert (await http.get("/v1/events.csv")).status_code == 200
        assert sum(charges) >= 1  # by its rows
        charges.clear()
        response = await http.post("/graphql", json={"query": ONE_PAGE.replace("first: 500", "first: 100")})
        assert "errors" not in response.json()
        assert len(charges) == 1 and charges[0] > 5  # once per operation, by its points
        charges.clear()
        assert (await http.get("/v1/events", params={"q": LONG_Q})).status_code == 422
        assert charges == []  # refused before anything was charged or run


async def test_a_refused_read_takes_no_connection(client):
    """Refused before any SQL: not even a connection is taken from the pool."""
    checkouts = []
    listener = lambda *args: checkouts.append(args)  # noqa: E731
    pool = client.app.state.engine.sync_engine.pool
    event.listen(pool, "checkout", listener)
    try:
        for path, params in (("/v1/events", {"q": LONG_Q}), ("/v1/stats/events", {"where": json.dumps(_or_of_900())}),
                             ("/v1/events.csv", {"actor": [str(i) for i in range(1500)]}),
                             ("/v1/claims", {"claimant": [str(i) for i in range(101)]})):
            assert (await client.get(path, params=params)).status_code == 422, path
        body = await graphql(client, EVENTS_QUERY, where={"q": LONG_Q})
        assert body["errors"][0]["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
    finally:
        event.remove(pool, "checkout", listener)
    assert checkouts == []


# --------------------------------------------------------------------------- statement budget


async def test_reads_have_the_read_budget_and_writes_the_long_one(fresh_database_url):
    engine = make_engine(fresh_database_url, pool_size=1, statement_timeout=0.2, long_statement_timeout=30)
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SHOW statement_timeout")) == "200ms"
            with pytest.raises(DBAPIError) as cancelled:
                await conn.execute(text("SELECT pg_sleep(1)"))
            assert is_statement_timeout(cancelled.value)
            assert type(cancelled.value.orig.__cause__).__name__ == "QueryCanceledError"
        async with engine.connect() as conn:
            await allow_long_statements(conn)  # an export
            await conn.execute(text("SELECT pg_sleep(0.3)"))
        async with writing(engine, "test") as conn:
            assert await conn.scalar(text("SHOW statement_timeout")) == "30s"
            await conn.execute(text("SELECT pg_sleep(0.3)"))
    finally:
        await engine.dispose()


async def test_the_app_reads_with_its_read_budget(database_url, redis_url):
    settings = make_settings().model_copy(update={"read_statement_timeout": 4.0, "write_statement_timeout": 40.0})
    async with app_client(database_url, redis_url, settings) as http:
        async with http.app.state.engine.connect() as conn:
            assert await conn.scalar(text("SHOW statement_timeout")) == "4s"
            await allow_long_statements(conn)
            assert await conn.scalar(text("SHOW statement_timeout")) == "40s"
