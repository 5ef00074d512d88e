"""The GraphQL planner (schema/planner.py, db/graph.py) gives the answers the resolvers
give: the same queries, generated from the schema, run on two apps over the same
database, one planning and one resolving every field."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from graphql import GraphQLObjectType, get_named_type, parse

from schema.app import schema
from schema.planner import _GRAPHQL_NAMES, plan_operation
from tests.conftest import app_client, execute_statements, make_settings

GRAPHQL = schema._schema

# Fields of declared types that the planner leaves to resolvers, and why: a query that
# selects one is answered by the resolvers whole.
RESOLVER_ONLY = {
    ("Event", "matches"): "a connection with arguments of its own (db/queries/matches.py)",
    ("Event", "linkedEvents"): "built by the detail tree only (db/queries/events.py)",
    ("Happening", "records"): "a happening's own tree (db/queries/happenings.py)",
    ("Happening", "sources"): "a happening's own tree",
    ("Happening", "dateStart"): "a happening's own tree",
    ("Happening", "dateEnd"): "a happening's own tree",
    ("Happening", "fatalities"): "a happening's own tree",
    ("Happening", "attribution"): "a happening's own tree",
}


@pytest.fixture(scope="module")
async def both(database_url: str, redis_url: str) -> AsyncIterator[tuple]:
    async with app_client(database_url, redis_url, make_settings(graphql_planner=True)) as planned, \
            app_client(database_url, redis_url, make_settings(graphql_planner=False)) as resolved:
        yield planned, resolved


def test_every_field_of_a_planned_type_has_its_sql_or_is_left_to_resolvers():
    for type_name, names in _GRAPHQL_NAMES.items():
        graphql_type = GRAPHQL.get_type(type_name)
        assert isinstance(graphql_type, GraphQLObjectType), f"db/graph.py declares {type_name}, GraphQL has none"
        for field in graphql_type.fields:
            assert field in names or (type_name, field) in RESOLVER_ONLY, \
                f"{type_name}.{field} has no SQL in db/graph.py and is not listed as resolver-only"
        for field in names:
            assert field in graphql_type.fields, f"db/graph.py declares {type_name}.{field}, GraphQL has no such field"
            assert (type_name, field) not in RESOLVER_ONLY


def _fields(type_name: str, rng: random.Random, depth: int, share: float) -> str:
    """A selection on a declared type: each planned field with probability `share`
    (all with 1.0), objects to `depth`, some aliased, some through fragments."""
    graphql_type = GRAPHQL.get_type(type_name)
    parts = []
    for name, field in graphql_type.fields.items():
        if (type_name, name) in RESOLVER_ONLY or rng.random() > share:
            continue
        named = get_named_type(field.type)
        under = ""
        if isinstance(named, GraphQLObjectType):
            if depth == 0:
                continue
            under = f" {{ {_fields(named.name, rng, depth - 1, share) or 'id: __typename'} }}"
        roll = rng.random()
        part = f"{name}{under}"
        if roll < 0.15:
            part = f"a{rng.randrange(100)}_{name}: {part}"
        elif roll < 0.22:
            part = f"... on {type_name} {{ {part} }}"
        elif roll < 0.26:
            part = f"... @include(if: $yes) {{ {part} }}"
        elif roll < 0.30:
            part = f"{name} @skip(if: $yes){under}"
        parts.append(part)
    if rng.random() < 0.2:
        parts.insert(rng.randrange(len(parts) + 1), "__typename")
    return " ".join(parts)


async def _ids(client, path: str, **params) -> list[str]:
    response = await client.get(path, params=params)
    return [record["id"] for record in response.json()["data"]]


@pytest.fixture(scope="module")
async def known(both) -> dict[str, str]:
    planned, _ = both
    event = (await _ids(planned, "/v1/events", q="Al-Qasr", limit=1))[0]
    detail = (await planned.get(f"/v1/events/{event}")).json()
    return {
        "event": event,
        "external": "{dataset}:{id}".format(**detail["external_ids"][0]) if detail["external_ids"] else event,
        "actor": (await _ids(planned, "/v1/actors", q="coalition", limit=1))[0],
        "place": (await _ids(planned, "/v1/places", q="Hasakah", limit=1))[0],
        "document": (await _ids(planned, "/v1/documents", limit=1))[0],
    }


def _roots(known: dict[str, str], events: str, event: str, claim: str, actor: str, place: str,
           document: str) -> list[str]:
    """Root fields with the arguments worth comparing: filters, orders, pages, unknown
    ids and bad input (errors)."""
    page = "totalCount pageInfo { hasNextPage endCursor } edges { cursor node { %s } }"
    return [
        f"events(first: 7) {{ {page % events} }}",
        f'events(first: 5, where: {{admin1: ["Hasakah"], dateFrom: "2017-01-01"}}, orderBy: FATALITIES_DESC) '
        f"{{ {page % events} }}",
        f'events(first: 4, where: {{near: {{latitude: 36.2, longitude: 40.7, radiusKm: 60}}}}, orderBy: DISTANCE) '
        f"{{ {page % ('distanceKm ' + events)} }}",
        f'events(first: 4, where: {{q: "coalition"}}, orderBy: RELEVANCE) {{ {page % events} }}',
        f"events(first: 3, collapse: HAPPENING) {{ {page % events} }}",
        f'events(first: 3, where: {{_or: [{{country: ["IRQ"]}}, {{perpetrator: ["coalition"]}}]}}) '
        f"{{ {page % events} }}",
        f'events(first: 3, where: {{dateFrom: "2019-01-01", dateTo: "2018-01-01"}}) {{ {page % events} }}',
        f'events(first: 3, where: {{country: ["Atlantis"]}}) {{ {page % events} }}',
        f"events(first: 0) {{ {page % events} }}",
        f'events(first: 2, after: "not-a-cursor") {{ {page % events} }}',
        f'event(id: "{known["event"]}") {{ {event} }}',
        f'event(id: "{known["external"]}") {{ {event} }}',
        f'event(id: "00000000-0000-0000-0000-000000000000") {{ {event} }}',
        f'event(id: "nonsense") {{ {event} }}',
        f'claims(first: 6, event: "{known["event"]}") {{ {page % claim} }}',
        f"claims(first: 4, stance: [DENIES, UNCERTAIN]) {{ {page % claim} }}",
        f'claims(first: 4, predicate: ["no-such-predicate"]) {{ {page % claim} }}',
        f'actors(first: 5, q: "coalition") {{ {page % actor} }}',
        f'actor(id: "{known["actor"]}") {{ {actor} }}',
        f'places(first: 5, kind: ["admin1"]) {{ {page % place} }}',
        f'places(first: 5, parent: "{known["place"]}") {{ {page % place} }}',
        f'place(id: "{known["place"]}") {{ {place} }}',
        f"documents(first: 3) {{ {page % document} }}",
        f'document(id: "{known["document"]}") {{ {document} }}',
        'eventStats(groupBy: [ADMIN1, MONTH], where: {dateFrom: "2018-01-01", dateTo: "2018-06-30"}) '
        "{ admin1 admin1Id month events fatalitiesLow fatalitiesBest fatalitiesHigh __typename }",
        'eventStats(groupBy: [PERPETRATOR], where: {admin1: ["Hasakah"]}) { perpetrator n: events country }',
    ]


async def _compare(both, query: str, variables: dict | None = None) -> dict:
    planned, resolved = both
    body = {"query": query, "variables": {"yes": True, **(variables or {})}}
    answers = [await client.post("/graphql", json=body) for client in (planned, resolved)]
    assert answers[0].status_code == answers[1].status_code, query
    assert answers[0].json() == answers[1].json(), query
    return answers[0].json()


def _planned(query: str) -> bool:
    return plan_operation(GRAPHQL, parse(query), None, {"yes": True}) is not None


def _query(roots: list[str]) -> str:
    return "query ($yes: Boolean!) { " + " ".join(f"r{i}: {root}" for i, root in enumerate(roots)) + " }"


async def test_every_planned_field_gives_what_its_resolver_gives(both, known):
    """Each root with every field it can plan, at depth: the same answer both ways."""
    full = {name: _fields(name, random.Random(0), depth=3, share=1.0)
            for name in ("Event", "Claim", "Actor", "Place", "Document")}
    for root in _roots(known, full["Event"], full["Event"], full["Claim"], full["Actor"], full["Place"],
                       full["Document"]):
        query = _query([root])
        assert _planned(query), root
        await _compare(both, query)


@pytest.mark.parametrize("seed", range(24))
async def test_generated_queries_give_the_same_answers(both, known, seed):
    """Random selections (aliases, fragments, @skip/@include, __typename) on several
    roots at once, pages followed by their cursors."""
    rng = random.Random(seed)
    shapes = {name: _fields(name, rng, depth=2, share=0.35) or "id"
              for name in ("Event", "Claim", "Actor", "Place", "Document")}
    roots = rng.sample(_roots(known, shapes["Event"], shapes["Event"], shapes["Claim"], shapes["Actor"],
                              shapes["Place"], shapes["Document"]), 3)
    query = _query(roots)
    assert _planned(query)
    answer = await _compare(both, query)
    for value in (answer.get("data") or {}).values():  # the next page, by the first page's cursor
        cursor = (value or {}).get("pageInfo", {}).get("endCursor") if isinstance(value, dict) else None
        if cursor:
            await _compare(both, query.replace("first: ", f'after: "{cursor}", first: ', 1))


async def test_named_fragments_and_variables(both, known):
    query = """
    query ($id: ID!, $where: EventWhere, $n: Int = 3, $withClaims: Boolean!) {
      one: event(id: $id) { ...Detail }
      list: events(where: $where, first: $n) { edges { node { ...Detail } } total: totalCount }
    }
    fragment Detail on Event {
      id __typename
      place { ...PlaceRef }
      claims @include(if: $withClaims) { stance claimant { ...ActorRef } value { best actor { ...ActorRef } } }
      actors { role actor { ...ActorRef } }
    }
    fragment PlaceRef on Place { name ancestors { name } parent { iso3 } }
    fragment ActorRef on Actor { id name parent { name } }
    """
    variables = {"id": known["event"], "where": {"admin1": ["Hasakah"]}, "withClaims": True}
    assert plan_operation(GRAPHQL, parse(query), None, variables) is not None
    await _compare(both, query, variables)
    await _compare(both, query, {**variables, "withClaims": False, "n": 1})
    await _compare(both, query, {**variables, "where": {"minFatalities": -1}})  # an error both ways


async def test_what_the_planner_leaves_to_resolvers_is_answered_the_same(both, known):
    for query in (
        f'{{ event(id: "{known["event"]}") {{ id matches(first: 2) {{ edges {{ node {{ eventId score }} }} }} }} }}',
        f'{{ event(id: "{known["event"]}") {{ happening {{ id records {{ id }} }} }} }}',
        f'{{ event(id: "{known["event"]}", asOf: "2001-01-01T00:00:00Z") {{ id }} }}',
        '{ events(first: 2, asOf: "2030-01-01T00:00:00Z") { edges { node { id claims { stance } } } } }',
        '{ changes(first: 2) { data { op type } } events(first: 1) { totalCount } }',
    ):
        assert not _planned(query), query
        await _compare(both, query)


async def test_metrics_count_planned_and_resolved_operations(both, known):
    from prometheus_client import REGISTRY

    def count(path: str) -> float:
        return REGISTRY.get_sample_value("conflictkb_graphql_operations_total", {"path": path}) or 0

    planned, resolved = both
    before = count("planned"), count("resolved")
    for query in ('{ events(first: 1) { totalCount } }',
                  f'{{ event(id: "{known["event"]}", asOf: "2030-01-01T00:00:00Z") {{ id }} }}'):
        assert (await planned.post("/graphql", json={"query": query})).status_code == 200
    await resolved.post("/graphql", json={"query": "{ events(first: 1) { totalCount } }"})
    assert (count("planned") - before[0], count("resolved") - before[1]) == (1, 2)


# A planned read does not read the data generation before its statements: it guesses
# the last one its process saw, its page statement reports the one it ran at, and a
# wrong guess is answered again (db.cache.guessing). Writes beside the app (another
# process, a migration, psql) are what make the guess wrong.

HASAKAH_2018 = '''{ events(first: 5, where: {admin1: ["Hasakah"], dateFrom: "2018-01-01"}) {
    totalCount edges { node { id summary } } } }'''
HASAKAH = '{ events(first: 50, where: {admin1: ["Hasakah"]}) { totalCount edges { node { id } } } }'
STATS = '{ eventStats(groupBy: [YEAR], where: {admin1: ["Hasakah"]}) { year events } }'


@pytest.fixture
async def planned_on_its_own(fresh_database_url: str, redis_url: str) -> AsyncIterator:
    async with app_client(fresh_database_url, redis_url, make_settings(graphql_planner=True)) as client:
        yield client


async def _answer(client, query: str) -> dict:
    response = await client.post("/graphql", json={"query": query})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_write_beside_the_app_shows_in_the_totals_of_the_next_planned_read(
        planned_on_its_own, fresh_database_url):
    before = (await _answer(planned_on_its_own, HASAKAH_2018))["data"]["events"]
    (edge,) = before["edges"]
    assert before["totalCount"] == 1
    await execute_statements(fresh_database_url, "UPDATE events SET date_start = '2017-06-01', date_end = '2017-06-01'"
                                                 f" WHERE id = '{edge['node']['id']}'")
    # (the total of the guessed generation is still in Redis: the page's statement says
    # the guess is old, and the answer is made again)
    assert (await _answer(planned_on_its_own, HASAKAH_2018))["data"]["events"] == {"totalCount": 0, "edges": []}


async def test_a_name_given_beside_the_app_widens_the_next_planned_read(planned_on_its_own, fresh_database_url):
    before = (await _answer(planned_on_its_own, HASAKAH))["data"]["events"]
    # The province with the most events is called Hasakah too, now.
    await execute_statements(fresh_database_url, """
        INSERT INTO place_names (place_id, name, name_norm)
        SELECT p.id, 'Hasakah', 'hasakah' FROM events e
          JOIN place_lineage l ON l.descendant_id = e.place_id JOIN places p ON p.id = l.ancestor_id
         WHERE p.kind = 'admin1' AND p.name NOT LIKE '%Hasakah%'
         GROUP BY p.id ORDER BY count(*) DESC LIMIT 1""")
    after = (await _answer(planned_on_its_own, HASAKAH))["data"]["events"]
    # (the guessed generation's filter still named Hasakah's ids alone)
    assert after["totalCount"] > before["totalCount"]
    assert len(after["edges"]) == min(after["totalCount"], 50)


async def test_stats_follow_a_write_beside_the_app(planned_on_its_own, fresh_database_url):
    before = {row["year"]: row["events"] for row in (await _answer(planned_on_its_own, STATS))["data"]["eventStats"]}
    await execute_statements(fresh_database_url, "UPDATE events SET date_start = '2019-06-01', date_end = '2019-06-01'"
                                                 " WHERE id IN (SELECT e.id FROM events e JOIN places p ON p.id = e.place_id"
                                                 " WHERE p.name = 'Al-Qasr')")
    after = {row["year"]: row["events"] for row in (await _answer(planned_on_its_own, STATS))["data"]["eventStats"]}
    assert sum(after.values()) == sum(before.values()) and after != before
    assert after.get(2019, 0) == before.get(2019, 0) + 1
