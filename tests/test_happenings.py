"""Happenings: a UCDP record and an ACLED record of one clash, linked, read as one; its
figures and attribution from both records' claims; `collapse=happening` on lists,
totals and stats; an event's matches paged."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import TypeAdapter

from api import schemas
from db.api_keys import create_api_key
from db.engine import make_engine
from db.imports.acled import ACLED_FORMAT
from db.imports.ucdp import UCDP_FORMAT
from tests.conftest import (app_client, as_, count_rows, execute_statements, import_into, statements_run,
                            ucdp_extract_rows, write_csv)
from tests.test_cost_limits import charged_client
from tests.test_linking import ACLED_COLUMNS, _acled

UCDP_ID = "214797"  # Teir Maaleh, Homs, 2016-01-01: an armed clash, best 4 (low 4, high 4), civilians 0
HAPPENINGS = "SELECT count(DISTINCT coalesce(hm.happening_id, e.id)) FROM events e " \
             "LEFT JOIN happening_members hm ON hm.event_id = e.id"


@pytest.fixture(scope="module")
async def linked(databases, redis_url, tmp_path_factory) -> AsyncIterator:
    """A private knowledge base with UCDP's record of the clash and ACLED's (the same day,
    ~1.8 km away, 5 killed), linked; SANA blames the coalition in UCDP's record and the
    coalition denies it in ACLED's; and a near miss (a week on) only listed."""
    name = f"t_happen_{uuid.uuid4().hex[:8]}"
    url = databases.create(name)
    folder = tmp_path_factory.mktemp("happenings")
    columns, rows = ucdp_extract_rows()
    await import_into(url, write_csv(folder / "ged.csv", columns, [r for r in rows if r["id"] == UCDP_ID]),
                      UCDP_FORMAT)
    await import_into(url, write_csv(folder / "acled.csv", ACLED_COLUMNS, [
        _acled("SYR-TRUE", "2016-01-01", "5", "34.8150", "36.7200"),
        _acled("SYR-MISS", "2016-01-08", "40", "34.802462", "36.707602"),
    ]), ACLED_FORMAT)
    engine = make_engine(url, pool_size=1)
    async with engine.begin() as conn:
        editor = (await create_api_key(conn, "editor", "test editor")).token
    await engine.dispose()
    try:
        async with app_client(url, redis_url) as http:
            ucdp = (await http.get(f"/v1/events/ucdp-ged:{UCDP_ID}")).json()
            acled = (await http.get("/v1/events/acled:SYR-TRUE")).json()
            claims = {}
            for key, event, claimant, stance in (("sana", ucdp, "SANA", "asserts"),
                                                 ("denial", acled, "US-led coalition", "denies")):
                response = await http.post("/v1/claims", headers=as_(editor), json={
                    "event": event["id"], "claimant": claimant, "predicate": "perpetrator", "stance": stance,
                    "value": "US-led coalition", "quote": f"{claimant} on the strike"})
                assert response.status_code == 201, response.text
                claims[key] = response.json()["id"]
            status = await count_rows(url, f"""
                SELECT count(*) FROM event_matches
                 WHERE linked AND '{ucdp["id"]}' IN (event_id, other_id) AND '{acled["id"]}' IN (event_id, other_id)""")
            assert status == 1, ("the fixture's UCDP and ACLED records are not linked: the scorer (db/linking.py) "
                                 "no longer links this pair; pick a closer pair for these tests")
            http.database_url = url
            http.ucdp = (await http.get(f"/v1/events/ucdp-ged:{UCDP_ID}")).json()
            http.acled = (await http.get("/v1/events/acled:SYR-TRUE")).json()
            http.claims = claims
            yield http
    finally:
        databases.drop(name)


def _claim_ids(event: dict, predicate: str) -> set[str]:
    return {c["id"] for c in event["claims"] if c["predicate"] == predicate}


async def test_a_happening_is_its_records_with_figures_and_attribution_from_all_their_claims(linked):
    ucdp, acled = linked.ucdp, linked.acled
    happening_id = min((ucdp, acled), key=lambda e: (e["created_at"], e["id"]))["id"]  # the earliest record's
    assert ucdp["happening"] == acled["happening"] == {"id": happening_id, "record_count": 2}

    response = await linked.get(f"/v1/happenings/{happening_id}")
    assert response.status_code == 200, response.text
    happening = response.json()
    schemas.Happening.model_validate(happening)  # the documented shape is the real one
    again = await linked.get(f"/v1/happenings/{happening_id}")  # cached like every read, with an ETag
    assert again.headers["x-cache"] == "hit" and again.json() == happening
    assert (await linked.get(f"/v1/happenings/{happening_id}",
                             headers={"If-None-Match": again.headers["etag"]})).status_code == 304
    assert happening["id"] == happening_id and happening["record_count"] == 2
    assert [r["id"] for r in happening["records"]] == [acled["id"], ucdp["id"]]  # by source: acled, ucdp-ged
    assert happening["records"][1]["claims"] == ucdp["claims"]
    assert happening["sources"] == ["acled", "ucdp-ged"]
    assert (happening["date_start"], happening["date_end"]) == ("2016-01-01", "2016-01-01")

    # UCDP says 4 (low 4, high 4), ACLED 5: the low is UCDP's, the high ACLED's, the best
    # the lower middle of 4 and 5; the claims of both records are named
    assert (ucdp["fatalities"]["low"], ucdp["fatalities"]["high"]) == (4, 4)
    assert (acled["fatalities"]["low"], acled["fatalities"]["high"]) == (5, 5)
    figures = happening["fatalities"]
    assert (figures["low"], figures["best"], figures["high"]) == (4, 4, 5)
    assert figures["civilians"] == 0  # UCDP's civilian count; ACLED gives none
    assert set(figures["claim_ids"]) == (_claim_ids(ucdp, "fatalities") | _claim_ids(ucdp, "civilian_fatalities")
                                         | _claim_ids(acled, "fatalities"))

    # SANA's assertion in one record and the coalition's denial in the other: contested
    # together, where each record alone says alleged and unknown
    def coalition(actors: list[dict]) -> list[dict]:
        return [a for a in actors if a["actor"]["name"] == "US-led coalition" and a["role"] == "perpetrator"]

    assert [a["status"] for a in coalition(ucdp["actors"])] == ["alleged"]
    assert [a["status"] for a in coalition(acled["actors"])] == ["unknown"]
    (together,) = coalition(happening["attribution"])
    assert together["status"] == "contested"
    assert set(together["claim_ids"]) == {linked.claims["sana"], linked.claims["denial"]}
    assert {a["role"] for a in happening["attribution"]} <= {"perpetrator", "target"}

    # any record's id or external id answers with the happening under its own id
    for ref in (ucdp["id"], acled["id"], f"ucdp-ged:{UCDP_ID}", "acled:SYR-TRUE"):
        again = await linked.get(f"/v1/happenings/{ref}")
        assert again.status_code == 200 and again.json()["id"] == happening_id, ref


async def test_a_record_linked_to_none_is_a_happening_of_its_own(linked):
    miss = (await linked.get("/v1/events/acled:SYR-MISS")).json()
    assert miss["happening"] == {"id": miss["id"], "record_count": 1}
    happening = (await linked.get("/v1/happenings/acled:SYR-MISS")).json()
    assert happening["id"] == miss["id"] and [r["id"] for r in happening["records"]] == [miss["id"]]
    assert happening["fatalities"]["best"] == miss["fatalities"]["best"] == 40


@pytest.mark.parametrize("ref", ["00000000-0000-4000-8000-000000000000", "not-an-id", "acled:NOPE"])
async def test_an_unknown_happening_is_a_404(linked, ref):
    response = await linked.get(f"/v1/happenings/{ref}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_graphql_reads_the_happening_of_events_and_by_id(linked):
    ucdp, acled = linked.ucdp, linked.acled
    happening_id = ucdp["happening"]["id"]
    response = await linked.post("/graphql", json={"query": """
        query ($id: ID!) {
          happening(id: $id) { id recordCount sources dateStart dateEnd
            fatalities { low best high claimIds }
            attribution { role status claimIds actor { name } }
            records { id externalIds { dataset id } claims { id } } }
          events(where: {externalId: ["acled:SYR-TRUE", "acled:SYR-MISS"]}) {
            edges { node { id happening { id recordCount fatalities { low high } } } } }
        }""", "variables": {"id": "acled:SYR-TRUE"}})
    body = response.json()
    assert "errors" not in body, body
    happening = body["data"]["happening"]
    rest = (await linked.get(f"/v1/happenings/{happening_id}")).json()
    assert happening["id"] == happening_id and happening["recordCount"] == 2
    assert happening["sources"] == rest["sources"] and happening["dateStart"] == rest["date_start"]
    assert happening["fatalities"] == {"low": 4, "best": 4, "high": 5, "claimIds": rest["fatalities"]["claim_ids"]}
    assert [(a["actor"]["name"], a["role"], a["status"], a["claimIds"]) for a in happening["attribution"]] == [
        (a["actor"]["name"], a["role"].upper(), a["status"].upper(), a["claim_ids"]) for a in rest["attribution"]]
    assert [r["id"] for r in happening["records"]] == [acled["id"], ucdp["id"]]
    nodes = {edge["node"]["id"]: edge["node"]["happening"] for edge in body["data"]["events"]["edges"]}
    assert nodes[acled["id"]] == {"id": happening_id, "recordCount": 2, "fatalities": {"low": 4, "high": 5}}
    miss = (await linked.get("/v1/events/acled:SYR-MISS")).json()
    assert nodes[miss["id"]]["id"] == miss["id"] and nodes[miss["id"]]["recordCount"] == 1

    unknown = (await linked.post("/graphql", json={"query": '{ happening(id: "acled:NOPE") { id } }'})).json()
    assert unknown["data"] == {"happening": None}


async def test_the_happenings_of_a_page_of_events_load_in_one_batch(linked):
    query = """query ($first: Int) { events(first: $first, orderBy: DATE_ASC) { edges { node {
                 happening { id recordCount fatalities { best } attribution { status actor { name } }
                             records { id place { name } } } } } } }"""
    counts = []
    for first in (1, 5, 14):
        with statements_run(linked) as statements:
            body = (await linked.post("/graphql", json={"query": query, "variables": {"first": first}})).json()
        assert "errors" not in body, body
        assert len(body["data"]["events"]["edges"]) == first
        counts.append(len(statements))
    assert counts[0] == counts[1] == counts[2], counts


async def test_collapsed_lists_totals_and_stats_count_happenings(linked):
    happenings = await count_rows(linked.database_url, HAPPENINGS)
    events = await count_rows(linked.database_url, "SELECT count(*) FROM events")
    assert happenings == events - 1  # the linked pair is one

    async def listed(**params) -> tuple[list[dict], int]:
        rows, cursor, total = [], None, None
        while True:
            response = await linked.get("/v1/events", params={"limit": 7, "count": "true", **params,
                                                              **({"cursor": cursor} if cursor else {})})
            assert response.status_code == 200, response.text
            body = response.json()
            rows += body["data"]
            total = body["total"]
            if not (cursor := body["next_cursor"]):
                return rows, total

    everything, total = await listed()
    assert total == len(everything) == events
    collapsed, total = await listed(collapse="happening")
    assert total == len(collapsed) == happenings
    assert len({e["happening"]["id"] for e in collapsed}) == happenings
    # the representative is the first matching record in the list's order: newest first,
    # then the larger id (both records are of the same day)
    pair = sorted((linked.ucdp["id"], linked.acled["id"]), reverse=True)
    assert pair[0] in {e["id"] for e in collapsed} and pair[1] not in {e["id"] for e in collapsed}
    # oldest first, the smaller id comes first and represents it
    oldest_first, _ = await listed(collapse="happening", sort="date")
    assert [e["id"] for e in oldest_first] == [pair[1] if e["id"] == pair[0] else e["id"] for e in reversed(collapsed)]
    # a filter only one record meets: that record represents the happening
    only_ucdp, total = await listed(collapse="happening", external_id=f"ucdp-ged:{UCDP_ID}")
    assert [e["id"] for e in only_ucdp] == [linked.ucdp["id"]] and total == 1

    stats = (await linked.get("/v1/stats/events", params={"collapse": "happening"})).json()["data"]
    assert stats[0]["events"] == happenings
    plain = (await linked.get("/v1/stats/events")).json()["data"]
    assert plain[0]["events"] == events
    # the representative's figures are summed, the other record's not
    assert plain[0]["fatalities_best"] - stats[0]["fatalities_best"] == next(
        e for e in (linked.ucdp, linked.acled) if e["id"] == pair[1])["fatalities"]["best"]
    # groups add up to the total (and the rollup, which counts events, is not used)
    by_month = (await linked.get("/v1/stats/events", params={
        "collapse": "happening", "group_by": "country,month", "date_from": "2016-01-01",
        "date_to": "2016-01-31"})).json()["data"]
    assert by_month == [{**by_month[0], "events": 2}]  # the pair and the near miss
    assert (await linked.get("/v1/events", params={"collapse": "happening", "count": "true", "date_from": "2016-01-01",
                                                   "date_to": "2016-01-31"})).json()["total"] == 2

    body = (await linked.post("/graphql", json={"query": """{
        all: events(first: 1) { totalCount }
        collapsed: events(first: 1, collapse: HAPPENING) { totalCount }
        eventStats(groupBy: [], collapse: HAPPENING) { events } }"""})).json()
    assert "errors" not in body, body
    assert body["data"]["all"]["totalCount"] == events
    assert body["data"]["collapsed"]["totalCount"] == happenings
    assert body["data"]["eventStats"] == [{"events": happenings}]


async def test_a_collapsed_lists_cursor_is_for_that_list_only(linked):
    collapsed = (await linked.get("/v1/events", params={"collapse": "happening", "limit": 1})).json()
    refused = await linked.get("/v1/events", params={"limit": 1, "cursor": collapsed["next_cursor"]})
    assert refused.status_code == 400
    plain = (await linked.get("/v1/events", params={"limit": 1})).json()
    refused = await linked.get("/v1/events", params={"collapse": "happening", "limit": 1,
                                                     "cursor": plain["next_cursor"]})
    assert refused.status_code == 400
    wrong = await linked.get("/v1/events", params={"collapse": "event"})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["name"] == "collapse"
    with_as_of = await linked.get("/v1/events", params={"collapse": "happening", "as_of": "2030-01-01T00:00"})
    assert with_as_of.status_code == 422 and with_as_of.json()["errors"][0]["name"] == "collapse"


async def test_collapse_in_distance_order_and_through_an_actors_index(linked):
    pair = {linked.ucdp["id"], linked.acled["id"]}
    for params in ({"near": "34.81,36.715,10", "sort": "distance"},   # around Teir Maaleh: the pair, the near miss
                   {"perpetrator": "US-led coalition"}):              # the pair (a claim each) and the seed's
        plain = (await linked.get("/v1/events", params={**params, "limit": 100})).json()["data"]
        assert pair <= {e["id"] for e in plain}, params
        first_of_pair = next(e["id"] for e in plain if e["id"] in pair)
        collapsed = (await linked.get("/v1/events", params={**params, "limit": 100, "collapse": "happening",
                                                            "count": "true"})).json()
        assert [e["id"] for e in collapsed["data"]] == [e["id"] for e in plain
                                                        if e["id"] not in pair or e["id"] == first_of_pair], params
        assert collapsed["total"] == len(plain) - 1, params


async def test_matches_are_paged_best_first_with_every_part_status_and_verdict(linked):
    url = f"/v1/events/ucdp-ged:{UCDP_ID}/matches"
    whole = (await linked.get(url, params={"count": "true"})).json()
    TypeAdapter(schemas.ListOf[schemas.EventMatch]).validate_python(whole)
    assert whole["total"] == len(whole["data"]) == 2 and whole["next_cursor"] is None
    assert [m["score"] for m in whole["data"]] == sorted((m["score"] for m in whole["data"]), reverse=True)
    best, miss = whole["data"]
    assert best["event"]["id"] == linked.acled["id"] and best["status"] == "linked" and best["linked"]
    assert miss["event"]["external_ids"] == [{"dataset": "acled", "id": "SYR-MISS"}]
    assert miss["status"] == "candidate" and not miss["linked"]
    assert set(best["parts"]) == {"time", "place", "type", "actors", "fatalities", "claimants", "text"}
    assert best["verdict"] is None and best["days_apart"] == 0 and best["distance_km"] > 0

    first = await linked.get(url, params={"limit": 1})
    assert first.status_code == 200
    assert first.json()["data"] == [best] and first.json()["next_cursor"]
    assert 'rel="next"' in first.headers["link"]
    second = (await linked.get(url, params={"limit": 1, "cursor": first.json()["next_cursor"]})).json()
    assert second == {"data": [miss], "next_cursor": None}
    # a cursor of one event's matches is not another's, nor another list's
    other = await linked.get("/v1/events/acled:SYR-TRUE/matches", params={"cursor": first.json()["next_cursor"]})
    assert other.status_code == 400
    assert (await linked.get("/v1/events", params={"cursor": first.json()["next_cursor"]})).status_code == 400

    # an editor's verdict on the pair is shown, for this event
    await execute_statements(linked.database_url, f"""
        INSERT INTO event_links (event_id, other_id, verdict, note, decided_by)
        VALUES ('{linked.ucdp["id"]}', '{miss["event"]["id"]}', 'rejected', 'a week apart', 'test editor'),
               ('{miss["event"]["id"]}', '{linked.ucdp["id"]}', 'rejected', 'a week apart', 'test editor')""")
    judged = (await linked.get(url)).json()["data"][1]
    assert {k: judged["verdict"][k] for k in ("verdict", "note", "decided_by")} == {
        "verdict": "rejected", "note": "a week apart", "decided_by": "test editor"}

    body = (await linked.post("/graphql", json={"query": """query ($id: ID!) { event(id: $id) {
        matches(first: 1) { totalCount pageInfo { hasNextPage endCursor }
                            edges { node { eventId score status parts { time claimants text } } } } } }""",
                                                "variables": {"id": linked.ucdp["id"]}})).json()
    assert "errors" not in body, body
    page = body["data"]["event"]["matches"]
    assert page["totalCount"] == 2 and page["pageInfo"]["hasNextPage"]
    assert [e["node"]["eventId"] for e in page["edges"]] == [linked.acled["id"]]
    assert page["edges"][0]["node"]["status"] == "LINKED"
    body = (await linked.post("/graphql", json={"query": """query ($id: ID!, $after: String) { event(id: $id) {
        matches(first: 1, after: $after) { pageInfo { hasNextPage } edges { node { eventId verdict { verdict } } } } } }""",
                                                "variables": {"id": linked.ucdp["id"],
                                                              "after": page["pageInfo"]["endCursor"]}})).json()
    assert body["data"]["event"]["matches"] == {"pageInfo": {"hasNextPage": False}, "edges": [
        {"node": {"eventId": miss["event"]["id"], "verdict": {"verdict": "rejected"}}}]}


async def test_collapsing_is_priced_before_it_runs(database_url, redis_url):
    async with charged_client(database_url, redis_url) as (http, charges):
        async def charged(path: str, **params) -> int:
            charges.clear()
            assert (await http.get(path, params=params)).status_code == 200
            return sum(charges)

        assert await charged("/v1/events", limit=500, collapse="happening") == await charged(
            "/v1/events", limit=500) + 10  # ten pages of 50 again
        assert await charged("/v1/stats/events", group_by="admin1,month", collapse="happening") == 2 * await charged(
            "/v1/stats/events", group_by="admin1,month") + 1
        query = "query ($c: Collapse) { events(first: 100, collapse: $c) { edges { node { id place { name } } } } }"
        points = []
        for collapse in (None, "HAPPENING"):
            charges.clear()
            body = (await http.post("/graphql", json={"query": query, "variables": {"c": collapse}})).json()
            assert "errors" not in body, body
            points.append(sum(charges))
        assert points[1] > points[0] > 0


async def test_graphql_gives_an_events_linked_events_and_a_matchs_event_as_rest(linked):
    ucdp = (await linked.get(f"/v1/events/ucdp-ged:{UCDP_ID}")).json()
    matches = (await linked.get(f"/v1/events/ucdp-ged:{UCDP_ID}/matches")).json()["data"]
    assert ucdp["linked_events"] and ucdp["linked_events"][0]["id"] == linked.acled["id"]
    body = (await linked.post("/graphql", json={"query": """query ($id: ID!) {
        event(id: $id) { linkedEvents { id score externalIds { dataset id } }
          matches { edges { node { eventId externalIds { dataset id } dateStart dateEnd subEventType placeName
                                   fatalitiesBest
                                   event { id eventType subEventType dateStart dateEnd datePrecision
                                           place { id name kind } fatalitiesBest externalIds { dataset id } } } } } }
        events(where: {externalId: ["ucdp-ged:214797", "acled:SYR-MISS"]}, orderBy: DATE_ASC) {
          edges { node { id linkedEvents { id score externalIds { dataset id } } } } } }""",
                                                "variables": {"id": ucdp["id"]}})).json()
    assert "errors" not in body, body
    as_rest = [{"id": e["id"], "score": e["score"], "external_ids": e["externalIds"]}
               for e in body["data"]["event"]["linkedEvents"]]
    assert as_rest == ucdp["linked_events"]
    listed = {edge["node"]["id"]: edge["node"]["linkedEvents"] for edge in body["data"]["events"]["edges"]}
    assert listed[ucdp["id"]] == body["data"]["event"]["linkedEvents"]
    assert [lists for event_id, lists in listed.items() if event_id != ucdp["id"]] == [[]]  # the near miss
    nodes = [edge["node"] for edge in body["data"]["event"]["matches"]["edges"]]
    assert [{"id": n["event"]["id"], "event_type": n["event"]["eventType"],
             "sub_event_type": n["event"]["subEventType"], "date_start": n["event"]["dateStart"],
             "date_end": n["event"]["dateEnd"], "date_precision": n["event"]["datePrecision"],
             "place": n["event"]["place"], "fatalities_best": n["event"]["fatalitiesBest"],
             "external_ids": n["event"]["externalIds"]} for n in nodes] == [m["event"] for m in matches]
    for node in nodes:  # the flat fields are the same record's
        other = node["event"]
        assert (node["eventId"], node["externalIds"], node["dateStart"], node["dateEnd"], node["subEventType"],
                node["placeName"], node["fatalitiesBest"]) == (
            other["id"], other["externalIds"], other["dateStart"], other["dateEnd"], other["subEventType"],
            other["place"]["name"], other["fatalitiesBest"])


async def test_the_linked_events_of_a_page_of_events_load_in_one_batch(linked):
    # (the resolvers' path: the planner leaves linkedEvents to them)
    query = """query ($first: Int) {
                 events(first: $first, orderBy: DATE_ASC) { edges { node { id linkedEvents { id } } } } }"""

    async def statements_for(first: int) -> int:
        with statements_run(linked) as statements:
            body = (await linked.post("/graphql", json={"query": query, "variables": {"first": first}})).json()
        assert "errors" not in body and len(body["data"]["events"]["edges"]) == first, body
        return len(statements)

    assert await statements_for(1) == await statements_for(14)
