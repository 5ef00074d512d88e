"""The query surface beyond names and dates: text search, members, attribution of a
named actor, the `where` grammar, sparse fields, ETags, GraphQL limits and cost."""

from __future__ import annotations

import json

import pytest

from db.seed import seed_id
from tests.conftest import event_url, statements_run
from tests.test_graphql import gql


def _key(event_id: str) -> str:
    return next(k for k in KEYS if str(seed_id("event", k)) == event_id)


KEYS = ["al-qasr-strike", "raf-motorbike-strike", "raf-mosul-strikes", "northern-syria-missile-attack",
        "afrin-offensive", "afrin-capture", "sdf-redeployment", "campaign-pause", "roundup-launch",
        "captives-release", "dumayr-surrender", "eastern-qalamoun-surrender", "isis-2014-syria", "isis-2014-iraq"]


async def _keys(client, **params) -> list[str]:
    response = await client.get("/v1/events", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return [_key(e["id"]) for e in response.json()["data"]]


@pytest.mark.parametrize("q, expected", [
    ("motorbike", {"raf-motorbike-strike"}),          # a claim's quote
    ("Hasakeh", {"al-qasr-strike"}),                  # a place alias
    ("ISIL", {"raf-motorbike-strike", "raf-mosul-strikes", "roundup-launch", "isis-2014-syria",
              "isis-2014-iraq"}),                     # an actor alias
    ("surrender deals", {"dumayr-surrender", "eastern-qalamoun-surrender"}),  # stemmed words of a quote
    ('"hit and run"', {"northern-syria-missile-attack"}),                    # a phrase
])
async def test_full_text_search(client, q, expected):
    assert set(await _keys(client, q=q)) == expected


async def test_relevance_ranks_the_better_match_first(client):
    ranked = await _keys(client, q="coalition strike", sort="relevance")
    assert ranked[0] == "al-qasr-strike"
    assert set(ranked) == set(await _keys(client, q="coalition strike"))


@pytest.mark.parametrize("params, name", [
    ({"q": "the"}, "q"),                              # only stop words
    ({"sort": "relevance"}, "sort"),                  # relevance without q
    ({"sort": "distance"}, "sort"),                   # distance without near
    ({"bbox": "1,2,3"}, "bbox"),
    ({"bbox": "10,50,20,40"}, "bbox"),                # min_lat > max_lat
    ({"near": "36,40"}, "near"),
    ({"near": "95,40,10"}, "near"),
    ({"near": "36,40,0"}, "near"),
    ({"where": "{not json"}, "where"),
    ({"where": '{"admin3": "x"}'}, "where"),
    ({"where": '{"minFatalities": -1}'}, "where"),
    ({"fields": "id,colour"}, "fields"),
])
async def test_bad_query_parameters_are_named(client, params, name):
    response = await client.get("/v1/events", params=params)
    assert response.status_code == 422, response.text
    assert name in [e["name"] for e in response.json()["errors"]]


async def test_members_of_a_coalition_at_the_time(client):
    assert await _keys(client, perpetrator="US-led coalition") == ["al-qasr-strike"]
    with_members = set(await _keys(client, perpetrator="US-led coalition", include_members="true"))
    assert with_members == {"al-qasr-strike", "raf-motorbike-strike", "raf-mosul-strikes"}  # the RAF is a member
    # The YPG is a member of the SDF: the 2018 Afrin fighting counts as against the SDF.
    assert set(await _keys(client, target="SDF", include_members="true")) == {"afrin-offensive", "afrin-capture"}
    assert await _keys(client, target="SDF") == []


async def test_units_under_an_actor_count_as_its_members(client):
    assert set(await _keys(client, perpetrator="United Kingdom", include_members="true")) == {
        "raf-motorbike-strike", "raf-mosul-strikes"}


async def test_attribution_applies_to_the_named_actor(client):
    assert await _keys(client, perpetrator="US-led coalition", attribution="contested") == ["al-qasr-strike"]
    assert await _keys(client, perpetrator="Iraqi forces", attribution="contested") == []
    assert await _keys(client, perpetrator="Iraqi forces", attribution="unknown") == ["al-qasr-strike"]
    assert set(await _keys(client, perpetrator="RAF", attribution="confirmed")) == {"raf-motorbike-strike"}


async def test_the_where_grammar_on_rest_is_graphqls(client):
    where = {"_or": [{"admin1": "Hasakah"}, {"country": "IRQ"}], "_not": {"subEventType": "Non-state actor overtakes territory"}}
    rest = set(await _keys(client, where=json.dumps(where)))
    assert rest == {"al-qasr-strike", "raf-mosul-strikes"}
    body = await gql(client, "query ($w: EventWhere) { events(where: $w, first: 500) { edges { node { id } } } }", w=where)
    assert {_key(e["node"]["id"]) for e in body["data"]["events"]["edges"]} == rest
    # `where` ANDs with the other parameters
    assert await _keys(client, where=json.dumps(where), country="SYR") == ["al-qasr-strike"]


async def test_sparse_fieldsets(client):
    body = (await client.get("/v1/events", params={"fields": "date_start,place", "limit": 2})).json()
    assert all(set(item) == {"id", "date_start", "place"} for item in body["data"])
    actors = (await client.get("/v1/actors", params={"fields": "name", "limit": 3})).json()["data"]
    assert all(set(item) == {"id", "name"} for item in actors)


async def test_etags_and_304(client):
    first = await client.get(event_url("al-qasr-strike"))
    etag = first.headers["etag"]
    again = await client.get(event_url("al-qasr-strike"), headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other = await client.get(event_url("afrin-capture"), headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag
    listing = await client.get("/v1/events", params={"admin1": "Hasakah"})
    assert (await client.get("/v1/events", params={"admin1": "Hasakah"},
                             headers={"If-None-Match": listing.headers["etag"]})).status_code == 304


NESTED = """query ($first: Int) { events(first: $first) { edges { node {
  id place { name aliases ancestors { name } }
  actors { role status actor { name aliases memberships { group { name } } } }
  claims { quote claimant { name aliases } document { title language } }
} } } }"""


async def test_graphql_costs_a_constant_number_of_statements(client):
    counts = []

    for first in (1, 5, 14):
        with statements_run(client) as statements:
            body = await gql(client, NESTED, first=first)
        assert "errors" not in body, body
        assert len(body["data"]["events"]["edges"]) == first
        counts.append(len(statements))
    assert counts[0] == counts[1] == counts[2], counts
    assert counts[0] <= 6


async def test_graphql_refuses_unbounded_queries(client):
    deep = "{ events { edges { node { place " + "{ ancestors " * 9 + "{ name }" + " }" * 9 + " } } } }"
    body = await gql(client, deep)
    assert "depth" in body["errors"][0]["message"].lower()
    aliases = "{ " + " ".join(f"a{i}: events(first: 1) {{ totalCount }}" for i in range(20)) + " }"
    body = await gql(client, aliases)
    assert "alias" in body["errors"][0]["message"].lower()


async def test_where_merges_with_the_parameters_beside_it(client):
    assert set(await _keys(client, include_members="true", where='{"perpetrator": "US-led coalition"}')) == {
        "al-qasr-strike", "raf-motorbike-strike", "raf-mosul-strikes"}
    assert await _keys(client, attribution="contested", where='{"perpetrator": "Iraqi forces"}') == []
    near = '{"near": {"latitude": 36.5, "longitude": 36.87, "radiusKm": 25}}'
    events = (await client.get("/v1/events", params={"where": near, "sort": "distance"})).json()["data"]
    assert [_key(e["id"]) for e in events] == ["afrin-capture"] and events[0]["distance_km"] < 2


async def test_not_is_the_complement_even_where_a_value_is_missing(client):
    # 12 events have no figure at all: they are not "at least 1 killed", so they are its negation
    assert len(await _keys(client, where='{"_not": {"minFatalities": 1}}')) == 12
    inside = set(await _keys(client, bbox="35.5,32,42.5,37.5"))
    outside = set(await _keys(client, where='{"_not": {"bbox": [35.5, 32, 42.5, 37.5]}}'))
    assert inside and not inside & outside and len(inside | outside) == len(KEYS)


async def test_a_countrys_centroid_is_not_a_location(client):
    # "ISIS swept across Syria" is known only to the country: no bbox around the centroid finds it
    assert "isis-2014-syria" not in await _keys(client, bbox="37.5,34.5,38.5,35.5")
    assert "isis-2014-syria" not in await _keys(client, near="35,38,50")


@pytest.mark.parametrize("params, name, status", [
    ({"include_members": "true"}, "include_members", 422),      # nothing for it to apply to
    ({"cursor": ""}, "cursor", 400),
    ({"fields": "claims"}, "fields", 422),                      # lists carry claim_count, not claims
    ({"attribution": "Contested"}, "attribution", 422),
    ({"where": '{"attribution": "Contested"}'}, "where", 422),  # the same rule inside where
])
async def test_input_is_used_or_refused(client, params, name, status):
    response = await client.get("/v1/events", params=params)
    assert response.status_code == status, response.text
    assert name in [e["name"] for e in response.json()["errors"]]


async def test_relevance_and_distance_cursors_belong_to_their_query(client):
    first = (await client.get("/v1/events", params={"q": "Syria", "sort": "relevance", "limit": 1})).json()
    replayed = await client.get("/v1/events", params={"q": "RAF", "sort": "relevance", "cursor": first["next_cursor"]})
    assert replayed.status_code == 400


async def test_graphql_names_its_own_arguments(client):
    body = await gql(client, "{ events(orderBy: RELEVANCE) { totalCount } }")
    assert body["errors"][0]["extensions"]["argument"] == "orderBy"
    body = await gql(client, 'query ($w: EventWhere) { events(where: $w) { totalCount } }',
                     w={"bbox": [1, 2, 3]})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
