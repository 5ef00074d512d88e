"""GraphQL: the same events, claims and filters as REST, through one filter compiler."""

from __future__ import annotations

from tests.conftest import event_url

EVENTS = """
query ($where: EventWhere, $first: Int, $after: String, $orderBy: EventOrder) {
  events(where: $where, first: $first, after: $after, orderBy: $orderBy) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id eventType subEventType dateStart dateEnd datePrecision latitude longitude geoPrecision summary claimCount
      place { id name kind ancestors { name kind iso3 } }
      fatalities { low best high civilians claimIds }
      actors { role status statusClaimIds actor { id name kind aliases } }
      claims { id predicate stance quote speaker claimant { name } via { name }
               document { title publishedAt } value { low best high actor { name } } }
      externalIds { dataset id }
    } }
  }
}"""


async def gql(client, query: str, *, headers: dict[str, str] | None = None, **variables) -> dict:
    response = await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _ids(client, where: dict, **kw) -> list[str]:
    body = await gql(client, EVENTS, where=where, first=500, **kw)
    assert "errors" not in body, body
    return [edge["node"]["id"] for edge in body["data"]["events"]["edges"]]


async def _rest_ids(client, **params) -> list[str]:
    return [e["id"] for e in (await client.get("/v1/events", params={"limit": 500, **params})).json()["data"]]


async def test_hasakah_gives_the_same_event_and_claims_as_rest(client):
    body = await gql(client, EVENTS, where={"admin1": "Hasakah"})
    (edge,) = body["data"]["events"]["edges"]
    node = edge["node"]
    rest = (await client.get(event_url("al-qasr-strike"))).json()
    assert node["id"] == rest["id"]
    assert sorted(c["id"] for c in node["claims"]) == sorted(c["id"] for c in rest["claims"])
    assert {c["quote"] for c in node["claims"]} == {c["quote"] for c in rest["claims"]}
    coalition = next(a for a in node["actors"] if a["actor"]["name"] == "US-led coalition")
    assert coalition["status"] == "CONTESTED"
    assert "CJTF-OIR" in coalition["actor"]["aliases"]
    assert [a["name"] for a in node["place"]["ancestors"]] == ["Syria", "Al Hasakah Governorate"]
    assert node["fatalities"]["civilians"] >= 25
    assert node["claimCount"] == len(node["claims"]) == len(rest["claims"])
    assert body["data"]["events"]["totalCount"] == 1


async def test_every_filter_agrees_with_rest(client):
    cases = [
        ({"country": ["SYR"]}, {"country": "SYR"}),
        ({"admin1": ["hasakeh"]}, {"admin1": "hasakeh"}),
        ({"dateFrom": "2018-03-10", "dateTo": "2018-03-12"}, {"date_from": "2018-03-10", "date_to": "2018-03-12"}),
        ({"subEventType": ["Air/drone strike"]}, {"sub_event_type": "Air/drone strike"}),
        ({"perpetrator": ["RAF"]}, {"perpetrator": "RAF"}),
        ({"actor": ["Daesh"]}, {"actor": "Daesh"}),
        ({"claimant": ["SOHR"]}, {"claimant": "SOHR"}),
        ({"attribution": ["ALLEGED"]}, {"attribution": "alleged"}),
        ({"minFatalities": 1}, {"min_fatalities": 1}),
    ]
    for where, params in cases:
        assert await _ids(client, where) == await _rest_ids(client, **params), where


async def test_or_and_not(client):
    strikes = set(await _rest_ids(client, sub_event_type="Air/drone strike"))
    iraq = set(await _rest_ids(client, country="Iraq"))
    either = await _ids(client, {"_or": [{"subEventType": ["Air/drone strike"]}, {"country": ["Iraq"]}]})
    assert set(either) == strikes | iraq
    strikes_outside_iraq = await _ids(client, {"subEventType": ["Air/drone strike"], "_not": {"country": ["IRQ"]}})
    assert set(strikes_outside_iraq) == strikes - iraq
    both = await _ids(client, {"_and": [{"subEventType": ["Air/drone strike"]}, {"country": ["Iraq"]}]})
    assert set(both) == strikes & iraq


async def test_relay_pages_walk_every_event_once(client):
    seen, after = [], None
    while True:
        body = await gql(client, EVENTS, first=5, after=after, orderBy="DATE_ASC")
        connection = body["data"]["events"]
        seen += [e["node"]["id"] for e in connection["edges"]]
        assert connection["edges"][-1]["cursor"] == connection["pageInfo"]["endCursor"]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == list(reversed(await _rest_ids(client)))


async def test_bad_input_is_a_typed_error_naming_the_argument(client):
    body = await gql(client, EVENTS, where={"admin1": "Narnia"})
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "admin1"}
    assert "Narnia" in error["message"]

    body = await gql(client, EVENTS, first=501)
    assert body["errors"][0]["extensions"]["argument"] == "first"

    body = await gql(client, EVENTS, after="forged.cursor")
    assert body["errors"][0]["extensions"]["argument"] == "after"

    body = await gql(client, EVENTS, where={"dateFrom": "yesterday"})
    assert "dateFrom" in body["errors"][0]["message"] or "yesterday" in body["errors"][0]["message"]


async def test_single_lookups_and_lists(client):
    query = """query ($id: ID!) {
      event(id: $id) { id subEventType actors { status actor { name parent { name } } } }
      missing: event(id: "not-an-id") { id }
      actors(q: "ypg") { edges { node { name memberships { group { name } relation validFrom validTo } } } }
      places(kind: ["country"]) { totalCount edges { node { name iso3 } } }
      documents { edges { node { title publishedAt language } } }
      claims(stance: [DENIES]) { edges { node { claimant { name } via { name } quote } } }
    }"""
    body = await gql(client, query, id="conflictkb-seed:raf-motorbike-strike")
    assert "errors" not in body, body
    data = body["data"]
    raf = next(a for a in data["event"]["actors"] if a["actor"]["name"] == "Royal Air Force")
    assert raf["status"] == "CONFIRMED" and raf["actor"]["parent"]["name"] == "UK Ministry of Defence"
    assert data["missing"] is None
    (ypg,) = data["actors"]["edges"]
    assert ypg["node"]["memberships"][0]["group"]["name"] == "Syrian Democratic Forces"
    assert data["places"]["totalCount"] == 2
    assert data["documents"]["edges"][0]["node"]["title"].startswith("Led strikes on Syria")
    (denial,) = data["claims"]["edges"]
    assert denial["node"]["via"]["name"] == "Associated Press"


async def test_graphiql_is_served_to_browsers(client):
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200 and "graphiql" in response.text.lower()


async def test_every_error_has_a_code_and_leaks_nothing(client):
    body = await gql(client, '{ events(where: {eventType: ["\\u0000"]}) { totalCount } }')
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "SQL" not in error["message"]
    body = await gql(client, '{ event(id: "a:\\u0000") { id } }')
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    body = await gql(client, '{ actors(kind: ["bogus"]) { totalCount } }')
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": "kind"}
    body = await gql(client, '{ events { nosuchfield } }')
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_total_count_through_fragments(client):
    body = await gql(client, """{ events { ...Page } }
        fragment Page on EventConnection { totalCount }""")
    assert body["data"]["events"]["totalCount"] == 14
    body = await gql(client, "{ events { ... on EventConnection { totalCount } } }")
    assert body["data"]["events"]["totalCount"] == 14


async def test_claims_are_read_when_selected_however_they_are_selected(client):
    where = {"admin1": ["Hasakah"]}
    plain = (await gql(client, "query ($w: EventWhere) { events(where: $w) { edges { node { claimCount } } } }",
                       w=where))["data"]
    assert plain["events"]["edges"][0]["node"]["claimCount"] == 8
    through_fragment = (await gql(client, """
        query ($w: EventWhere) { events(where: $w) { ...page } }
        fragment page on EventConnection { edges { node { ... on Event { claims { stance } } } } }""",
                                   w=where))["data"]
    assert len(through_fragment["events"]["edges"][0]["node"]["claims"]) == 8
