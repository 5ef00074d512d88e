"""GraphQL mutations through the real app: the same writes, rules and refusals as REST's
(tests/test_writes.py), as typed GraphQL errors, each mutation one transaction."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from graphql import GraphQLError
from pydantic.alias_generators import to_camel

from db.seed import seed_id
from db.writes import StaleRecord
from schema.errors import classify, is_client_error
from tests.conftest import AIRSTRIKE, as_, count_rows
from tests.test_graphql import gql

EVENT_FIELDS = "id summary dateStart dateEnd geoPrecision place { id name ancestors { name } } fatalities { best }"
CREATE_EVENT = f"mutation ($input: EventInput!) {{ createEvent(input: $input) {{ {EVENT_FIELDS} }} }}"
UPDATE_EVENT = f"""mutation ($id: ID!, $input: EventInput!, $ifMatch: String) {{
  updateEvent(id: $id, input: $input, ifMatch: $ifMatch) {{ {EVENT_FIELDS} }} }}"""
DELETE_EVENT = "mutation ($id: ID!, $ifMatch: String) { deleteEvent(id: $id, ifMatch: $ifMatch) { id type } }"
CREATE_CLAIM = "mutation ($input: ClaimInput!) { createClaim(input: $input) { id stance document { id title } } }"
EVENT_ACTORS = "query ($id: ID!) { event(id: $id) { summary actors { role status actor { name } } } }"

STRIKE = {to_camel(name): value for name, value in AIRSTRIKE.items()}
HASAKAH = str(seed_id("place", "al-hasakah-governorate"))


def refusal(answer: dict) -> dict:
    """The one error of a refused mutation: its extensions, with its message."""
    (error,) = answer["errors"]
    return {**error["extensions"], "message": error["message"]}


async def _new_event(client, editor: str, **changes) -> dict:
    answer = await gql(client, CREATE_EVENT, headers=as_(editor), input={**STRIKE, **changes})
    assert "errors" not in answer, answer
    return answer["data"]["createEvent"]


async def test_mutations_need_an_editor_key(fresh_client, fresh_database_url, keys):
    events = "SELECT count(*) FROM events"
    before = await count_rows(fresh_database_url, events)
    missing = await gql(fresh_client, CREATE_EVENT, input=STRIKE)
    assert missing["data"] == {"createEvent": None}
    assert refusal(missing)["code"] == "UNAUTHENTICATED" and "needs an API key" in refusal(missing)["message"]
    unknown = await gql(fresh_client, CREATE_EVENT, headers=as_("ckb_not-a-key"), input=STRIKE)
    assert refusal(unknown)["code"] == "UNAUTHENTICATED"
    reader = await gql(fresh_client, CREATE_EVENT, headers=as_(keys["reader"]), input=STRIKE)
    assert refusal(reader)["code"] == "FORBIDDEN" and refusal(reader)["requiredRole"] == "editor"
    seeded = str(seed_id("event", "al-qasr-strike"))
    for query, variables in ((UPDATE_EVENT, {"id": seeded, "input": {"summary": "x"}}),
                             (DELETE_EVENT, {"id": seeded})):
        assert refusal(await gql(fresh_client, query, headers=as_(keys["reader"]), **variables))["code"] == "FORBIDDEN"
    # the key is refused before the input is looked at, as in REST
    assert refusal(await gql(fresh_client, CREATE_EVENT, input={}))["code"] == "UNAUTHENTICATED"
    assert await count_rows(fresh_database_url, events) == before
    admin = await gql(fresh_client, CREATE_EVENT, headers={"X-API-Key": keys["admin"]}, input=STRIKE)
    assert admin["data"]["createEvent"]["id"], admin


async def test_create_event_with_a_place_id_or_a_new_place(fresh_client, keys):
    at_a_place = await _new_event(fresh_client, keys["editor"])
    assert at_a_place["place"]["name"] == "Al-Qasr" and at_a_place["geoPrecision"] == "exact"
    assert at_a_place["dateEnd"] == "2018-05-01" and at_a_place["fatalities"]["best"] is None
    rest = (await fresh_client.get(f"/v1/events/{at_a_place['id']}")).json()
    assert (rest["summary"], rest["place"]["id"]) == (AIRSTRIKE["summary"], at_a_place["place"]["id"])

    new_place = {"name": "Tal Tamr East", "kind": "locality", "parent": HASAKAH, "latitude": 36.65,
                 "longitude": 40.37}
    first = await _new_event(fresh_client, keys["editor"], place=None, newPlace=new_place)
    assert [a["name"] for a in first["place"]["ancestors"]] == ["Syria", "Al Hasakah Governorate"]
    assert first["place"]["name"] == "Tal Tamr East"
    second = await _new_event(fresh_client, keys["editor"], place=None, newPlace=new_place)
    assert second["place"]["id"] == first["place"]["id"]  # made once, then found


async def test_every_bad_field_is_named_and_nothing_is_written(fresh_client, fresh_database_url, keys):
    editor = as_(keys["editor"])
    events, villages = "SELECT count(*) FROM events", "SELECT count(*) FROM places WHERE name = 'New Village'"
    before = await count_rows(fresh_database_url, events)

    shapeless = refusal(await gql(fresh_client, CREATE_EVENT, headers=editor,
                                  input={"subEventType": "Air/drone strike", "latitude": 91, "summary": ""}))
    assert shapeless["code"] == "BAD_USER_INPUT"
    named = {e["name"] for e in shapeless["errors"]}
    assert named == {"input.eventType", "input.dateStart", "input.place", "input.latitude", "input.summary"}, \
        shapeless
    assert all(name in shapeless["message"] for name in named)

    unknowable = refusal(await gql(fresh_client, CREATE_EVENT, headers=editor, input={
        **STRIKE, "subEventType": "Shelling", "datePrecision": "fortnight", "place": None,
        "newPlace": {"name": "New Village", "kind": "locality", "parent": "00000000-0000-0000-0000-000000000001"}}))
    reasons = {e["name"]: e["reason"] for e in unknowable["errors"]}
    assert set(reasons) == {"input.subEventType", "input.datePrecision", "input.newPlace.parent"}, unknowable
    assert "Shelling" in reasons["input.subEventType"]

    new_place = {"name": "New Village", "parent": "not-an-id"}
    both = refusal(await gql(fresh_client, CREATE_EVENT, headers=editor,
                             input={**STRIKE, "newPlace": new_place}))
    assert {e["name"] for e in both["errors"]} == {"input.newPlace", "input.newPlace.kind", "input.newPlace.parent"}
    assert "not both" in next(e["reason"] for e in both["errors"] if e["name"] == "input.newPlace")
    bad_id = refusal(await gql(fresh_client, CREATE_EVENT, headers=editor, input={**STRIKE, "place": "nowhere"}))
    assert [(e["name"], "UUID" in e["reason"]) for e in bad_id["errors"]] == [("input.place", True)]
    unstorable = refusal(await gql(fresh_client, CREATE_EVENT, headers=editor,
                                   input={**STRIKE, "summary": "a\u0000b"}))
    assert unstorable["code"] == "BAD_USER_INPUT"

    assert await count_rows(fresh_database_url, events) == before
    assert await count_rows(fresh_database_url, villages) == 0


async def test_a_claims_bad_fields_are_named(fresh_client, keys):
    answer = refusal(await gql(fresh_client, CREATE_CLAIM, headers=as_(keys["editor"]), input={
        "event": "conflictkb-seed:no-such-event", "claimant": "Nobody At All", "predicate": "perpetrator",
        "stance": "ASSERTS", "value": {"best": 3}, "newDocument": {"title": ""}}))
    reasons = {e["name"]: e["reason"] for e in answer["errors"]}
    assert set(reasons) == {"input.newDocument.title"}, answer  # shapes first, as REST's 422
    answer = refusal(await gql(fresh_client, CREATE_CLAIM, headers=as_(keys["editor"]), input={
        "event": "conflictkb-seed:no-such-event", "claimant": "Nobody At All", "predicate": "perpetrator",
        "stance": "ASSERTS", "value": {"best": 3}}))
    assert {e["name"] for e in answer["errors"]} == {"input.event", "input.claimant", "input.value"}, answer
    two_values = refusal(await gql(fresh_client, CREATE_CLAIM, headers=as_(keys["editor"]), input={
        "event": "conflictkb-seed:al-qasr-strike", "claimant": "SOHR", "predicate": "fatalities",
        "stance": "ASSERTS", "value": {"best": 3, "text": "three"}}))
    assert [e["name"] for e in two_values["errors"]] == ["input.value"]
    unordered = refusal(await gql(fresh_client, CREATE_CLAIM, headers=as_(keys["editor"]), input={
        "event": "conflictkb-seed:al-qasr-strike", "claimant": "SOHR", "predicate": "fatalities",
        "stance": "ASSERTS", "value": {"low": 5, "high": 2}}))
    assert unordered["errors"] == [{"name": "input.value", "reason": "low <= best <= high"}]


async def test_assert_then_deny_moves_alleged_to_contested(fresh_client, keys):
    editor = as_(keys["editor"])
    event = await _new_event(fresh_client, keys["editor"])
    asserted = await gql(fresh_client, CREATE_CLAIM, headers=editor, input={
        "event": event["id"], "claimant": "SANA", "predicate": "perpetrator", "stance": "ASSERTS",
        "value": {"actor": "US-led coalition"}, "quote": "The US-led coalition targeted the village.",
        "newDocument": {"publisher": "SANA", "title": "Coalition strike kills civilians",
                        "publishedAt": "2018-05-01"}})
    claim = asserted["data"]["createClaim"]
    assert claim["stance"] == "ASSERTS" and claim["document"]["title"] == "Coalition strike kills civilians", asserted
    actors = (await gql(fresh_client, EVENT_ACTORS, id=event["id"]))["data"]["event"]["actors"]
    assert actors == [{"role": "PERPETRATOR", "status": "ALLEGED", "actor": {"name": "US-led coalition"}}]
    between = dt.datetime.now(dt.timezone.utc).isoformat()
    denied = await gql(fresh_client, CREATE_CLAIM, headers=editor, input={
        "event": event["id"], "claimant": "US-led coalition", "via": "Associated Press", "predicate": "perpetrator",
        "stance": "DENIES", "value": {"actor": "US-led coalition"}, "quote": "We did not strike there.",
        "document": claim["document"]["id"]})
    assert "errors" not in denied, denied
    actors = (await gql(fresh_client, EVENT_ACTORS, id=event["id"]))["data"]["event"]["actors"]
    assert actors == [{"role": "PERPETRATOR", "status": "CONTESTED", "actor": {"name": "US-led coalition"}}]
    attribution = (await fresh_client.get(f"/v1/events/{event['id']}/attribution")).json()
    assert sorted(attribution[0]["claim_ids"]) == sorted([claim["id"], denied["data"]["createClaim"]["id"]])
    then = await gql(fresh_client, "query ($id: ID!, $at: DateTime) { event(id: $id, asOf: $at) { "
                                   "actors { role status actor { name } } claims { id } } }", id=event["id"], at=between)
    assert then["data"]["event"] == {
        "actors": [{"role": "PERPETRATOR", "status": "ALLEGED", "actor": {"name": "US-led coalition"}}],
        "claims": [{"id": claim["id"]}]}, then
    before = await gql(fresh_client, "query ($id: ID!) { event(id: $id, asOf: \"2001-01-01T00:00:00\") { id } }",
                       id=event["id"])
    assert before["data"]["event"] is None

    figures = "mutation ($id: ID!, $input: ClaimPatch!) { updateClaim(id: $id, input: $input) { value { best } } }"
    fatalities = await gql(fresh_client, CREATE_CLAIM, headers=editor, input={
        "event": event["id"], "claimant": "SOHR", "predicate": "fatalities", "stance": "ASSERTS",
        "value": {"best": 12}})
    fatalities_id = fatalities["data"]["createClaim"]["id"]
    changed = await gql(fresh_client, figures, headers=editor, id=fatalities_id,
                        input={"value": {"low": 10, "best": 14}})
    assert changed["data"]["updateClaim"]["value"] == {"best": 14}, changed
    query = "query ($id: ID!) { event(id: $id) { fatalities { low best } } }"
    assert (await gql(fresh_client, query, id=event["id"]))["data"]["event"]["fatalities"] == {"low": 10, "best": 14}
    removed = await gql(fresh_client, "mutation ($id: ID!) { deleteClaim(id: $id) { id type } }", headers=editor,
                        id=fatalities_id)
    assert removed["data"]["deleteClaim"] == {"id": fatalities_id, "type": "claim"}
    assert (await gql(fresh_client, query, id=event["id"]))["data"]["event"]["fatalities"] == \
        {"low": None, "best": None}


async def test_a_stale_if_match_is_refused_and_a_fresh_one_accepted(fresh_client, keys):
    editor = as_(keys["editor"])
    event = await _new_event(fresh_client, keys["editor"])
    url = f"/v1/events/{event['id']}"
    etag = (await fresh_client.get(url)).headers["etag"]
    first = await gql(fresh_client, UPDATE_EVENT, headers=editor, id=event["id"], ifMatch=etag,
                      input={"summary": "First edit."})
    assert first["data"]["updateEvent"]["summary"] == "First edit.", first
    current = (await fresh_client.get(url)).headers["etag"]
    assert current != etag
    stale = await gql(fresh_client, UPDATE_EVENT, headers=editor, id=event["id"], ifMatch=etag,
                      input={"summary": "Second edit."})
    assert stale["data"] == {"updateEvent": None}
    assert refusal(stale)["code"] == "PRECONDITION_FAILED" and refusal(stale)["currentEtag"] == current
    assert (await fresh_client.get(url)).json()["summary"] == "First edit."
    assert refusal(await gql(fresh_client, DELETE_EVENT, headers=editor, id=event["id"],
                             ifMatch=etag))["code"] == "PRECONDITION_FAILED"
    fresh = await gql(fresh_client, UPDATE_EVENT, headers=editor, id=event["id"], ifMatch=current,
                      input={"summary": "Second edit."})
    assert fresh["data"]["updateEvent"]["summary"] == "Second edit.", fresh


async def test_an_update_sets_only_the_fields_given(fresh_client, keys):
    editor = as_(keys["editor"])
    event = await _new_event(fresh_client, keys["editor"], datePrecision="month")
    moved = await gql(fresh_client, UPDATE_EVENT, headers=editor, id=event["id"], input={"dateStart": "2018-06-01"})
    updated = moved["data"]["updateEvent"]
    # the precision (month) was left as it was: the end follows the new start's month
    assert (updated["dateStart"], updated["dateEnd"], updated["summary"]) == \
        ("2018-06-01", "2018-06-30", AIRSTRIKE["summary"]), moved
    cleared = await gql(fresh_client, UPDATE_EVENT, headers=editor, id=event["id"], input={"summary": None})
    assert cleared["data"]["updateEvent"]["summary"] is None and cleared["data"]["updateEvent"]["dateStart"] == \
        "2018-06-01"
    placeless = refusal(await gql(fresh_client, UPDATE_EVENT, headers=editor, id=event["id"],
                                  input={"place": None, "eventType": None}))
    assert {e["name"] for e in placeless["errors"]} == {"input.place", "input.eventType"}, placeless
    missing = refusal(await gql(fresh_client, UPDATE_EVENT, headers=editor, id="conflictkb-seed:nothing",
                                input={"summary": "x"}))
    assert missing["code"] == "NOT_FOUND"


async def test_a_deleted_event_is_null_in_graphql_and_410_in_rest(fresh_client, keys):
    editor = as_(keys["editor"])
    event = await _new_event(fresh_client, keys["editor"])
    deleted = await gql(fresh_client, DELETE_EVENT, headers=editor, id=event["id"])
    assert deleted["data"]["deleteEvent"] == {"id": event["id"], "type": "event"}, deleted
    assert (await gql(fresh_client, EVENT_ACTORS, id=event["id"]))["data"] == {"event": None}
    gone = await fresh_client.get(f"/v1/events/{event['id']}")
    assert gone.status_code == 410 and gone.json()["tombstone"]["id"] == event["id"]
    again = refusal(await gql(fresh_client, UPDATE_EVENT, headers=editor, id=event["id"], input={"summary": "x"}))
    assert again["code"] == "GONE"
    assert again["tombstone"]["id"] == event["id"] and again["tombstone"]["type"] == "event"
    assert again["tombstone"]["deletedAt"] == gone.json()["tombstone"]["deleted_at"]
    assert refusal(await gql(fresh_client, DELETE_EVENT, headers=editor, id=event["id"]))["code"] == "GONE"


async def test_actors_places_and_documents(fresh_client, keys):
    editor = as_(keys["editor"])
    actor = (await gql(fresh_client, """mutation { createActor(input: {name: "Hasakah Monitoring Group",
        kind: "monitor", aliases: ["HMG"]}) { id name kind aliases } }""", headers=editor))["data"]["createActor"]
    assert (actor["name"], actor["aliases"]) == ("Hasakah Monitoring Group", ["HMG"])
    found = (await fresh_client.get("/v1/actors", params={"q": "HMG"})).json()["data"]
    assert [a["id"] for a in found] == [actor["id"]]
    renamed = await gql(fresh_client, """mutation ($id: ID!) { updateActor(id: $id, input: {name: "Hasakah Monitors"})
        { name aliases } }""", headers=editor, id=actor["id"])
    assert renamed["data"]["updateActor"] == {"name": "Hasakah Monitors", "aliases": ["HMG"]}, renamed

    place = await gql(fresh_client, """mutation ($parent: ID!) { createPlace(input: {name: "Tell Brak",
        kind: "locality", parent: $parent, latitude: 36.67, longitude: 41.06}) { id name parent { name } } }""",
                      headers=editor, parent=HASAKAH)
    place = place["data"]["createPlace"]
    assert place["parent"] == {"name": "Al Hasakah Governorate"}, place
    bad_place = refusal(await gql(fresh_client, """mutation ($parent: ID!) { createPlace(input: {name: "Nowhere",
        kind: "admin1", parent: $parent, iso3: "XXX"}) { id } }""", headers=editor, parent=place["id"]))
    assert {e["name"] for e in bad_place["errors"]} == {"input.parent", "input.iso3"}, bad_place
    moved = await gql(fresh_client, """mutation ($id: ID!) { updatePlace(id: $id, input: {latitude: 36.7,
        longitude: 41.1}) { latitude longitude name } }""", headers=editor, id=place["id"])
    assert moved["data"]["updatePlace"] == {"latitude": 36.7, "longitude": 41.1, "name": "Tell Brak"}, moved

    document = await gql(fresh_client, """mutation ($actor: String!) { createDocument(input: {publisherActor: $actor,
        title: "Weekly report", url: "https://example.org/r/1"}) { id publisher title } }""",
                         headers=editor, actor=actor["id"])
    document = document["data"]["createDocument"]
    assert document["publisher"] == "Hasakah Monitors", document
    retitled = await gql(fresh_client, """mutation ($id: ID!) { updateDocument(id: $id,
        input: {title: "Weekly report 1", language: "en"}) { title language url } }""", headers=editor,
                         id=document["id"])
    assert retitled["data"]["updateDocument"] == {"title": "Weekly report 1", "language": "en",
                                                  "url": "https://example.org/r/1"}, retitled

    referenced = refusal(await gql(fresh_client, "mutation ($id: ID!) { deleteActor(id: $id) { id } }",
                                   headers=editor, id=actor["id"]))
    assert referenced["code"] == "CONFLICT" and "documents" in referenced["message"]
    for record_type, record in (("document", document), ("actor", actor), ("place", place)):
        mutation = f"mutation ($id: ID!) {{ delete{record_type.title()}(id: $id) {{ id type }} }}"
        deleted = await gql(fresh_client, mutation, headers=editor, id=record["id"])
        assert deleted["data"] == {f"delete{record_type.title()}": {"id": record["id"], "type": record_type}}, deleted
        assert (await fresh_client.get(f"/v1/{record_type}s/{record['id']}")).status_code == 410
    absent = refusal(await gql(fresh_client, "mutation { deleteActor(id: \"00000000-0000-0000-0000-000000000009\")"
                                             " { id } }", headers=editor))
    assert absent["code"] == "NOT_FOUND"


async def test_a_mutation_is_seen_at_once_by_the_next_read(fresh_client, keys):
    seeded = str(seed_id("event", "al-qasr-strike"))
    url = f"/v1/events/{seeded}"
    first = await fresh_client.get(url)
    assert (await fresh_client.get(url)).headers["x-cache"] == "hit"
    changed = await gql(fresh_client, UPDATE_EVENT, headers=as_(keys["editor"]), id=seeded,
                        input={"summary": "Changed by a mutation."})
    assert changed["data"]["updateEvent"]["summary"] == "Changed by a mutation.", changed
    after = await fresh_client.get(url)
    assert after.headers["x-cache"] == "miss" and after.json()["summary"] == "Changed by a mutation." != \
        first.json()["summary"]
    assert (await gql(fresh_client, EVENT_ACTORS, id=seeded))["data"]["event"]["summary"] == "Changed by a mutation."


async def test_a_later_mutation_in_the_same_request_sees_an_earlier_ones_write(fresh_client, keys):
    coalition, seeded = str(seed_id("actor", "us-led-coalition")), str(seed_id("event", "al-qasr-strike"))
    aliases_on_the_event = """updateEvent(id: $event, input: {summary: "%s"}) {
        actors { actor { id aliases } } }"""
    answer = await gql(fresh_client, f"""mutation ($actor: ID!, $event: ID!) {{
        a: updateActor(id: $actor, input: {{aliases: ["First alias"]}}) {{ id }}
        b: {aliases_on_the_event % "one"}
        c: updateActor(id: $actor, input: {{aliases: ["Second alias"]}}) {{ id }}
        d: {aliases_on_the_event % "two"} }}""", headers=as_(keys["editor"]), actor=coalition, event=seeded)
    assert "errors" not in answer, answer

    def aliases(key: str) -> list[str]:
        return next(a["actor"]["aliases"] for a in answer["data"][key]["actors"] if a["actor"]["id"] == coalition)

    assert aliases("b") == ["First alias"] and aliases("d") == ["Second alias"]


async def test_refused_mutations_are_not_logged_as_server_errors(fresh_client, keys, caplog):
    editor = as_(keys["editor"])
    with caplog.at_level(logging.INFO):
        assert refusal(await gql(fresh_client, CREATE_EVENT, input=STRIKE))["code"] == "UNAUTHENTICATED"
        assert refusal(await gql(fresh_client, CREATE_EVENT, headers=editor, input={}))["code"] == "BAD_USER_INPUT"
        assert refusal(await gql(fresh_client, DELETE_EVENT, headers=editor,
                                 id="conflictkb-seed:nothing"))["code"] == "NOT_FOUND"
        assert refusal(await gql(fresh_client, "mutation ($id: ID!) { deletePlace(id: $id) { id } }", headers=editor,
                                 id=HASAKAH))["code"] == "CONFLICT"
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_refusal_no_resolver_translated_keeps_its_code():
    """A WriteError reaching the schema untranslated is still the client's error, not a server one."""
    located = GraphQLError("stale", path=["updateEvent"], original_error=StaleRecord('"abc"'))
    assert is_client_error(located)
    assert classify(located).extensions == {"code": "PRECONDITION_FAILED", "currentEtag": '"abc"'}


async def test_many_concurrent_mutations_do_not_exhaust_the_connection_pool(fresh_client, keys):
    """Each request holds one connection at most: more concurrent mutations than the
    pool has connections all succeed (they once each held a read connection and waited
    for a second one, and all failed after 30 s)."""
    mutation = "mutation ($input: ActorInput!) { createActor(input: $input) { id } }"
    answers = await asyncio.gather(*(gql(fresh_client, mutation, headers=as_(keys["editor"]),
                                         input={"name": f"Concurrent Brigade {i}", "kind": "armed_group"})
                                     for i in range(30)))
    assert [a.get("errors") for a in answers] == [None] * 30
    assert len({a["data"]["createActor"]["id"] for a in answers}) == 30


async def test_events_as_of_a_time_in_graphql(fresh_client, keys):
    editor = as_(keys["editor"])
    event = (await fresh_client.post("/v1/events", json={**AIRSTRIKE, "summary": "before"}, headers=editor)).json()
    claim = (await fresh_client.post("/v1/claims", headers=editor, json={
        "event": event["id"], "claimant": "SANA", "predicate": "perpetrator", "stance": "asserts",
        "value": "US-led coalition"})).json()
    then = dt.datetime.now(dt.timezone.utc).isoformat()
    await fresh_client.patch(f"/v1/events/{event['id']}", headers=editor, json={"summary": "after"})
    await fresh_client.delete(f"/v1/claims/{claim['id']}", headers=editor)
    query = """query ($at: DateTime) { events(asOf: $at, where: {admin1: ["Hasakah"]}, first: 100) {
                 totalCount edges { node { id summary claims { id } actors { status } } } } }"""
    past = await gql(fresh_client, query, at=then)
    nodes = {e["node"]["id"]: e["node"] for e in past["data"]["events"]["edges"]}
    assert nodes[event["id"]] == {"id": event["id"], "summary": "before", "claims": [{"id": claim["id"]}],
                                  "actors": [{"status": "ALLEGED"}]}
    assert past["data"]["events"]["totalCount"] == len(nodes)
    refused = await gql(fresh_client, 'query ($at: DateTime) { events(asOf: $at, where: {q: "strike"}) { totalCount } }',
                        at=then)
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_request_with_a_refused_mutation_writes_nothing(fresh_client, fresh_database_url, keys):
    actors = "SELECT count(*) FROM actors"
    before = await count_rows(fresh_database_url, actors)
    both = """mutation { good: createActor(input: {name: "Kept Brigade", kind: "armed_group"}) { id }
                        bad: createActor(input: {name: "Lost Brigade", kind: "planet"}) { id } }"""
    answer = await gql(fresh_client, both, headers=as_(keys["editor"]))
    assert answer["data"] is None
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["BAD_USER_INPUT", "ROLLED_BACK"]
    assert await count_rows(fresh_database_url, actors) == before
    fine = """mutation { one: createActor(input: {name: "First Brigade", kind: "armed_group"}) { id }
                        two: createActor(input: {name: "Second Brigade", kind: "armed_group"}) { id } }"""
    answer = await gql(fresh_client, fine, headers=as_(keys["editor"]))
    assert "errors" not in answer and await count_rows(fresh_database_url, actors) == before + 2
