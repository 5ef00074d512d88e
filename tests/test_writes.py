"""Writes over REST: keys and roles, validation, one transaction per request,
Idempotency-Key, If-Match, claims driving the event, history, as_of, tombstones."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from sqlalchemy import text

from db.engine import make_engine
from db.seed import seed_id
from tests.conftest import AIRSTRIKE, as_, count_rows


async def test_writes_need_an_editor_key(fresh_client, fresh_database_url, keys):
    before = await count_rows(fresh_database_url, "SELECT count(*) FROM events")
    missing = await fresh_client.post("/v1/events", json=AIRSTRIKE)
    assert missing.status_code == 401 and missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    bad = await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=as_("ckb_not-a-key"))
    assert bad.status_code == 401
    reader = await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=as_(keys["reader"]))
    assert reader.status_code == 403 and "editor" in reader.json()["detail"]
    for method in ("PATCH", "DELETE"):
        refused = await fresh_client.request(method, f"/v1/events/{seed_id('event', 'al-qasr-strike')}",
                                             json={}, headers=as_(keys["reader"]))
        assert refused.status_code == 403
    assert await count_rows(fresh_database_url, "SELECT count(*) FROM events") == before
    admin = await fresh_client.post("/v1/events", json=AIRSTRIKE, headers={"X-API-Key": keys["admin"]})
    assert admin.status_code == 201, admin.text


async def test_a_created_event_is_answered_with_its_location_and_etag(fresh_client, keys):
    created = await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=as_(keys["editor"]))
    assert created.status_code == 201, created.text
    event = created.json()
    assert created.headers["location"] == f"/v1/events/{event['id']}"
    assert event["place"]["name"] == "Al-Qasr" and event["geo_precision"] == "exact"
    assert event["date_end"] == "2018-05-01" and event["claims"] == []
    again = await fresh_client.get(created.headers["location"])
    assert again.json() == event and again.headers["etag"] == created.headers["etag"]


async def test_every_bad_field_is_named_and_nothing_is_written(fresh_client, fresh_database_url, keys):
    before = await count_rows(fresh_database_url, "SELECT count(*) FROM events")
    shapeless = await fresh_client.post("/v1/events", json={"sub_event_type": "Air/drone strike", "colour": "red",
                                                            "latitude": 91}, headers=as_(keys["editor"]))
    assert shapeless.status_code == 422
    names = {e["name"] for e in shapeless.json()["errors"]}
    assert {"event_type", "date_start", "place", "colour", "latitude"} <= names
    unknowable = await fresh_client.post("/v1/events", headers=as_(keys["editor"]), json={
        **AIRSTRIKE, "sub_event_type": "Shelling", "date_precision": "fortnight",
        "place": {"name": "New Village", "kind": "locality", "parent": "00000000-0000-0000-0000-000000000001"}})
    assert unknowable.status_code == 422
    problems = {e["name"]: e["reason"] for e in unknowable.json()["errors"]}
    assert set(problems) == {"sub_event_type", "date_precision", "place.parent"}, problems
    assert "Air/drone strike" not in problems["sub_event_type"] and "Shelling" in problems["sub_event_type"]
    assert await count_rows(fresh_database_url, "SELECT count(*) FROM events") == before
    assert await count_rows(fresh_database_url, "SELECT count(*) FROM places WHERE name = 'New Village'") == 0


async def test_a_new_place_is_made_once_and_then_found(fresh_client, keys):
    body = {**AIRSTRIKE, "place": {"name": "Tal Tamr East", "kind": "locality",
                                   "parent": str(seed_id("place", "al-hasakah-governorate")), "latitude": 36.65, "longitude": 40.37}}
    first = (await fresh_client.post("/v1/events", json=body, headers=as_(keys["editor"]))).json()
    second = (await fresh_client.post("/v1/events", json=body, headers=as_(keys["editor"]))).json()
    assert first["place"]["id"] == second["place"]["id"]
    assert [a["name"] for a in first["place"]["ancestors"]] == ["Syria", "Al Hasakah Governorate"]


async def test_a_repeated_idempotency_key_creates_nothing_new(fresh_client, fresh_database_url, keys):
    headers = {**as_(keys["editor"]), "Idempotency-Key": "5b0c7f0e-2f7d-4a55-9a2e-2d1c3c1f0a11"}
    before = await count_rows(fresh_database_url, "SELECT count(*) FROM events")
    answers = await asyncio.gather(*(fresh_client.post("/v1/events", json=AIRSTRIKE, headers=headers)
                                     for _ in range(4)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len({a.headers["location"] for a in answers}) == 1
    assert await count_rows(fresh_database_url, "SELECT count(*) FROM events") == before + 1
    other = await fresh_client.post("/v1/events", json={**AIRSTRIKE, "summary": "another"}, headers=headers)
    assert other.status_code == 422 and other.json()["errors"][0]["name"] == "Idempotency-Key"
    assert await count_rows(fresh_database_url, "SELECT count(*) FROM events") == before + 1


async def test_a_stale_if_match_is_refused(fresh_client, keys):
    url = (await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=as_(keys["editor"]))).headers["location"]
    etag = (await fresh_client.get(url)).headers["etag"]
    changed = await fresh_client.patch(url, json={"summary": "First edit."},
                                       headers={**as_(keys["editor"]), "If-Match": etag})
    assert changed.status_code == 200 and changed.json()["summary"] == "First edit."
    assert changed.headers["etag"] != etag
    stale = await fresh_client.patch(url, json={"summary": "Second edit."},
                                     headers={**as_(keys["editor"]), "If-Match": etag})
    assert stale.status_code == 412 and stale.headers["etag"] == changed.headers["etag"]
    assert (await fresh_client.get(url)).json()["summary"] == "First edit."
    gone = await fresh_client.delete(url, headers={**as_(keys["editor"]), "If-Match": etag})
    assert gone.status_code == 412


async def test_parallel_patches_under_if_match_never_lose_an_update(fresh_client, keys):
    """Ten writers read the same version and each appends a word: one wins each round,
    the others get 412, read again and retry, until every word is in."""
    url = (await fresh_client.post("/v1/events", json={**AIRSTRIKE, "summary": "words:"},
                                   headers=as_(keys["editor"]))).headers["location"]

    async def append(word: str) -> int:
        refused = 0
        while True:
            current = await fresh_client.get(url, headers={"Cache-Control": "no-cache"})
            answer = await fresh_client.patch(url, json={"summary": current.json()["summary"] + " " + word},
                                              headers={**as_(keys["editor"]), "If-Match": current.headers["etag"]})
            if answer.status_code == 200:
                return refused
            assert answer.status_code == 412, answer.text
            refused += 1

    words = [f"w{i}" for i in range(10)]
    refusals = await asyncio.gather(*(append(w) for w in words))
    final = (await fresh_client.get(url)).json()["summary"].split()
    assert sorted(final[1:]) == sorted(words)
    assert sum(refusals) > 0  # they did collide


async def test_assert_then_deny_moves_alleged_to_contested_and_as_of_sees_the_past(fresh_client, keys):
    editor = as_(keys["editor"])
    event = (await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=editor)).json()
    asserted = await fresh_client.post("/v1/claims", headers=editor, json={
        "event": event["id"], "claimant": "SANA", "predicate": "perpetrator", "stance": "asserts",
        "value": "US-led coalition", "quote": "The US-led coalition targeted the village.",
        "document": {"publisher": "SANA", "title": "Coalition strike kills civilians", "published_at": "2018-05-01"}})
    assert asserted.status_code == 201, asserted.text
    attribution_url = f"/v1/events/{event['id']}/attribution"
    (coalition,) = (await fresh_client.get(attribution_url)).json()
    assert (coalition["actor"]["name"], coalition["role"], coalition["status"]) == \
        ("US-led coalition", "perpetrator", "alleged")
    assert coalition["claim_ids"] == [asserted.json()["id"]]
    assert coalition["claims"][0]["quote"] == "The US-led coalition targeted the village."
    between = dt.datetime.now(dt.timezone.utc)
    await asyncio.sleep(0.01)
    denied = await fresh_client.post("/v1/claims", headers=editor, json={
        "event": event["id"], "claimant": "US-led coalition", "via": "Associated Press", "predicate": "perpetrator",
        "stance": "denies", "value": "US-led coalition", "quote": "We did not strike there."})
    assert denied.status_code == 201, denied.text
    (coalition,) = (await fresh_client.get(attribution_url)).json()
    assert coalition["status"] == "contested"
    assert sorted(coalition["claim_ids"]) == sorted([asserted.json()["id"], denied.json()["id"]])
    (then,) = (await fresh_client.get(attribution_url, params={"as_of": between.isoformat()})).json()
    assert then["status"] == "alleged" and then["claim_ids"] == [asserted.json()["id"]]
    event_then = (await fresh_client.get(f"/v1/events/{event['id']}", params={"as_of": between.isoformat()})).json()
    assert [c["id"] for c in event_then["claims"]] == [asserted.json()["id"]]
    assert [a["status"] for a in event_then["actors"]] == ["alleged"]
    before_it = (event_then["created_at"][:19])
    missing = await fresh_client.get(f"/v1/events/{event['id']}", params={"as_of": "2001-01-01T00:00:00Z"})
    assert missing.status_code == 404 and before_it


async def test_claims_drive_the_event_figures(fresh_client, keys):
    editor = as_(keys["editor"])
    event = (await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=editor)).json()
    claim = {"event": event["id"], "predicate": "fatalities", "stance": "asserts"}
    sohr = (await fresh_client.post("/v1/claims", headers=editor,
                                    json={**claim, "claimant": "SOHR", "value": {"low": 25}})).json()
    sana = (await fresh_client.post("/v1/claims", headers=editor,
                                    json={**claim, "claimant": "SANA", "value": 30})).json()
    figures = (await fresh_client.get(f"/v1/events/{event['id']}")).json()["fatalities"]
    assert (figures["low"], figures["best"], figures["high"]) == (25, 25, None)  # SOHR's "over 25" leaves it open
    assert sorted(figures["claim_ids"]) == sorted([sohr["id"], sana["id"]])
    patched = await fresh_client.patch(f"/v1/claims/{sohr['id']}", headers=editor,
                                       json={"value": {"low": 25, "best": 27, "high": 28}})
    assert patched.status_code == 200, patched.text
    figures = (await fresh_client.get(f"/v1/events/{event['id']}")).json()["fatalities"]
    assert (figures["low"], figures["best"], figures["high"]) == (25, 27, 30)
    assert (await fresh_client.delete(f"/v1/claims/{sana['id']}", headers=editor)).status_code == 204
    figures = (await fresh_client.get(f"/v1/events/{event['id']}")).json()["fatalities"]
    assert (figures["low"], figures["best"], figures["high"]) == (25, 27, 28)


async def test_a_claim_names_its_bad_fields(fresh_client, keys):
    answer = await fresh_client.post("/v1/claims", headers=as_(keys["editor"]), json={
        "event": "conflictkb-seed:no-such-event", "claimant": "Nobody At All", "predicate": "perpetrator",
        "stance": "claims", "value": {"low": 3}})
    assert answer.status_code == 422
    names = {e["name"] for e in answer.json()["errors"]}
    assert names == {"event", "claimant", "stance", "value"}, answer.json()


async def test_history_says_who_changed_what(fresh_client, keys):
    editor = as_(keys["editor"])
    url = (await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=editor)).headers["location"]
    await fresh_client.patch(url, json={"summary": "Edited."}, headers=editor)
    history = (await fresh_client.get(url + "/history")).json()["data"]
    events = [h for h in history if h["record"]["type"] == "event"]
    assert events[0]["op"] == "created" and events[0]["before"] is None
    edit = next(h for h in events if h["op"] == "updated")
    assert edit["changed"] == ["summary"]
    assert edit["before"]["summary"] == AIRSTRIKE["summary"] and edit["after"]["summary"] == "Edited."
    assert "test editor" in edit["who"]
    assert edit["at"] >= events[0]["at"]


async def test_a_deleted_event_answers_410_with_a_tombstone(fresh_client, keys):
    editor = as_(keys["editor"])
    event = (await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=editor)).json()
    claim = (await fresh_client.post("/v1/claims", headers=editor, json={
        "event": event["id"], "claimant": "SOHR", "predicate": "occurred", "stance": "asserts"})).json()
    assert (await fresh_client.delete(f"/v1/events/{event['id']}", headers=editor)).status_code == 204
    gone = await fresh_client.get(f"/v1/events/{event['id']}")
    assert gone.status_code == 410 and gone.headers["content-type"] == "application/problem+json"
    assert gone.json()["tombstone"]["id"] == event["id"] and gone.json()["tombstone"]["type"] == "event"
    assert (await fresh_client.get(f"/v1/claims/{claim['id']}")).status_code == 410
    assert (await fresh_client.patch(f"/v1/events/{event['id']}", json={"summary": "x"},
                                     headers=editor)).status_code == 410
    history = (await fresh_client.get(f"/v1/events/{event['id']}/history")).json()["data"]
    assert history[-1]["op"] == "deleted"


async def test_referenced_records_cannot_be_deleted(fresh_client, keys):
    answer = await fresh_client.delete(f"/v1/actors/{seed_id('actor', 'sana')}", headers=as_(keys["editor"]))
    assert answer.status_code == 409 and "claims" in answer.json()["detail"]


async def test_actors_places_and_documents_are_written_too(fresh_client, keys):
    editor = as_(keys["editor"])
    actor = await fresh_client.post("/v1/actors", headers=editor, json={
        "name": "Hasakah Monitoring Group", "kind": "monitor", "aliases": ["HMG"]})
    assert actor.status_code == 201, actor.text
    found = (await fresh_client.get("/v1/actors", params={"q": "HMG"})).json()["data"]
    assert [a["id"] for a in found] == [actor.json()["id"]]
    renamed = await fresh_client.patch(actor.headers["location"], headers=editor, json={"name": "Hasakah Monitors"})
    assert renamed.json()["name"] == "Hasakah Monitors"
    place = await fresh_client.post("/v1/places", headers=editor, json={
        "name": "Tell Brak", "kind": "locality", "parent": str(seed_id("place", "al-hasakah-governorate")),
        "latitude": 36.67, "longitude": 41.06})
    assert place.status_code == 201, place.text
    bad_place = await fresh_client.post("/v1/places", headers=editor, json={
        "name": "Nowhere", "kind": "admin1", "parent": place.json()["id"], "iso3": "XXX"})
    assert {e["name"] for e in bad_place.json()["errors"]} == {"parent", "iso3"}
    # a country's code is one country's (found by fuzzing: a second "SYR" was a 500)
    second_syria = await fresh_client.post("/v1/places", headers=editor, json={
        "name": "Syrian Arab Republic", "kind": "country", "iso3": "SYR"})
    assert second_syria.status_code == 422, second_syria.text
    assert second_syria.json()["errors"] == [
        {"name": "iso3", "in": "body", "reason": "SYR is already the code of 'Syria'"}]
    assert (await fresh_client.patch(f"/v1/places/{seed_id('place', 'syria')}", headers=editor,
                                     json={"iso3": "SYR"})).status_code == 200  # its own code
    document = await fresh_client.post("/v1/documents", headers=editor, json={
        "publisher_actor": actor.json()["id"], "title": "Weekly report", "url": "https://example.org/r/1"})
    assert document.status_code == 201 and document.json()["publisher"] == "Hasakah Monitors"
    assert (await fresh_client.delete(document.headers["location"], headers=editor)).status_code == 204
    assert (await fresh_client.get(document.headers["location"])).status_code == 410


async def test_a_write_moves_the_cache_generation(fresh_client, keys):
    url = f"/v1/events/{seed_id('event', 'al-qasr-strike')}"
    first = await fresh_client.get(url)
    assert (await fresh_client.get(url)).headers["x-cache"] == "hit"
    patched = await fresh_client.patch(url, json={"summary": "Changed."}, headers=as_(keys["editor"]))
    assert patched.status_code == 200
    after = await fresh_client.get(url)
    assert after.headers["x-cache"] == "miss" and after.json()["summary"] == "Changed." != first.json()["summary"]


async def _event_and_duplicate_with_a_claim(client, editor: dict) -> tuple[dict, dict, dict]:
    """An air strike, the same strike entered again, and a claim on the second."""
    survivor = (await client.post("/v1/events", json=AIRSTRIKE, headers=editor)).json()
    duplicate = (await client.post("/v1/events", json={**AIRSTRIKE, "summary": "The same strike."},
                                   headers=editor)).json()
    claim = (await client.post("/v1/claims", headers=editor, json={
        "event": duplicate["id"], "claimant": "SOHR", "predicate": "fatalities", "stance": "asserts",
        "value": 12})).json()
    return survivor, duplicate, claim


async def test_merged_events_and_actors_point_to_the_survivor(fresh_client, keys):
    editor = as_(keys["editor"])
    survivor, duplicate, claim = await _event_and_duplicate_with_a_claim(fresh_client, editor)
    merged = await fresh_client.post(f"/v1/events/{duplicate['id']}/merge", json={"into": survivor["id"]},
                                     headers=editor)
    assert merged.status_code == 200, merged.text
    assert [c["id"] for c in merged.json()["claims"]] == [claim["id"]] and merged.json()["fatalities"]["best"] == 12
    moved = await fresh_client.get(f"/v1/events/{duplicate['id']}")
    assert moved.status_code == 308 and moved.headers["location"] == f"/v1/events/{survivor['id']}"
    assert moved.json()["tombstone"]["merged_into"] == survivor["id"]
    its_attribution = await fresh_client.get(f"/v1/events/{duplicate['id']}/attribution")
    assert its_attribution.headers["location"] == f"/v1/events/{survivor['id']}/attribution"
    refused = await fresh_client.delete(f"/v1/events/{duplicate['id']}", headers=editor)
    assert refused.status_code == 410  # never redirected: a DELETE must not reach the survivor

    brigade = (await fresh_client.post("/v1/actors", headers=editor, json={
        "name": "Daesh Syria Province", "kind": "armed_group"})).json()
    await fresh_client.post("/v1/claims", headers=editor, json={
        "event": survivor["id"], "claimant": "SANA", "predicate": "perpetrator", "stance": "asserts",
        "value": brigade["id"]})
    islamic_state = str(seed_id("actor", "islamic-state"))
    into = await fresh_client.post(f"/v1/actors/{brigade['id']}/merge", json={"into": islamic_state},
                                   headers=editor)
    assert into.status_code == 200, into.text
    event = (await fresh_client.get(f"/v1/events/{survivor['id']}")).json()
    assert [(a["actor"]["id"], a["role"], a["status"]) for a in event["actors"]] == \
        [(islamic_state, "perpetrator", "alleged")]
    found = (await fresh_client.get("/v1/actors", params={"q": "Daesh Syria Province"})).json()["data"]
    assert [a["id"] for a in found] == [islamic_state]  # the merged name is an alias now
    self_merge = await fresh_client.post(f"/v1/actors/{islamic_state}/merge", json={"into": islamic_state},
                                         headers=editor)
    assert self_merge.status_code == 422 and self_merge.json()["errors"][0]["name"] == "into"


async def test_the_past_of_a_merge_is_each_event_as_it_was(fresh_client, keys):
    """A merge moves the duplicate's claims to the survivor: as of before it, each event
    has its own claims; the survivor's history lists the move, from the duplicate, with
    the claim as the move left it (not as a later edit did)."""
    editor = as_(keys["editor"])
    survivor, duplicate, claim = await _event_and_duplicate_with_a_claim(fresh_client, editor)
    before_merge = dt.datetime.now(dt.timezone.utc)
    await asyncio.sleep(0.01)
    merged = await fresh_client.post(f"/v1/events/{duplicate['id']}/merge", json={"into": survivor["id"]},
                                     headers=editor)
    assert merged.status_code == 200, merged.text
    edited = await fresh_client.patch(f"/v1/claims/{claim['id']}", headers=editor, json={"value": 14})
    assert edited.status_code == 200, edited.text

    then = {"as_of": before_merge.isoformat()}
    survivor_then = (await fresh_client.get(f"/v1/events/{survivor['id']}", params=then)).json()
    assert survivor_then["claims"] == [] and survivor_then["fatalities"]["best"] is None
    duplicate_then = (await fresh_client.get(f"/v1/events/{duplicate['id']}", params=then)).json()
    assert [(c["id"], c["value"]["best"]) for c in duplicate_then["claims"]] == [(claim["id"], 12)]
    assert duplicate_then["summary"] == "The same strike."
    survivor_now = (await fresh_client.get(f"/v1/events/{survivor['id']}")).json()
    assert [(c["id"], c["value"]["best"]) for c in survivor_now["claims"]] == [(claim["id"], 14)]

    history = (await fresh_client.get(f"/v1/events/{survivor['id']}/history")).json()["data"]
    claim_changes = [h for h in history if h["record"] == {"type": "claim", "key": claim["id"]}]
    move, edit = [h for h in claim_changes if h["op"] == "updated"]
    assert move["changed"] == ["event_id"]
    assert (move["before"]["event_id"], move["after"]["event_id"]) == (duplicate["id"], survivor["id"])
    assert move["after"]["value_best"] == 12 and edit["after"]["value_best"] == 14
    duplicate_history = (await fresh_client.get(f"/v1/events/{duplicate['id']}/history")).json()["data"]
    ops = [h["op"] for h in duplicate_history if h["record"]["type"] == "event"]
    assert (ops[0], ops[-1]) == ("created", "deleted")  # (updated between: its figures, by the claim)
    assert next(h for h in duplicate_history if h["op"] == "deleted")["after"] is None


async def test_a_field_of_two_forms_is_named_by_the_form_given(fresh_client, keys):
    """`place` takes an id or a new place: a bad new place names its own fields, not
    pydantic's names for the forms."""
    answer = await fresh_client.post("/v1/events", headers=as_(keys["editor"]), json={
        **AIRSTRIKE, "place": {"name": "", "kind": "locality", "latitude": 95, "longitude": 40}})
    assert answer.status_code == 422
    assert sorted(e["name"] for e in answer.json()["errors"]) == ["place.latitude", "place.name"]
    answer = await fresh_client.post("/v1/claims", headers=as_(keys["editor"]), json={
        "event": "x", "claimant": "SANA", "predicate": "fatalities", "stance": "asserts", "value": -3})
    assert [e["name"] for e in answer.json()["errors"]] == ["value"]


async def test_a_list_as_of_a_time_shows_the_events_that_matched_then(fresh_client, keys):
    editor = as_(keys["editor"])
    kept = (await fresh_client.post("/v1/events", json={**AIRSTRIKE, "summary": "kept"}, headers=editor)).json()
    dropped = (await fresh_client.post("/v1/events", json={**AIRSTRIKE, "summary": "dropped"}, headers=editor)).json()
    await fresh_client.post("/v1/claims", headers=editor, json={
        "event": kept["id"], "claimant": "SOHR", "predicate": "fatalities", "stance": "asserts", "value": 9})
    then = dt.datetime.now(dt.timezone.utc).isoformat()
    await asyncio.sleep(0.01)
    await fresh_client.delete(f"/v1/events/{dropped['id']}", headers=editor)
    await fresh_client.patch(f"/v1/events/{kept['id']}", json={"summary": "edited later"}, headers=editor)
    await fresh_client.post("/v1/claims", headers=editor, json={
        "event": kept["id"], "claimant": "SANA", "predicate": "fatalities", "stance": "asserts", "value": 40})
    params = {"admin1": "Hasakah", "date_from": "2018-05-01", "date_to": "2018-05-01", "count": "true"}
    now = (await fresh_client.get("/v1/events", params=params)).json()
    past = (await fresh_client.get("/v1/events", params={**params, "as_of": then})).json()
    ours = {kept["id"], dropped["id"]}
    assert [(e["id"], e["summary"], e["fatalities"]["best"]) for e in now["data"] if e["id"] in ours] == \
        [(kept["id"], "edited later", 9)]  # the median of 9 and 40: the lower middle
    assert sorted((e["summary"], e["fatalities"]["best"]) for e in past["data"] if e["id"] in ours) == \
        [("dropped", None), ("kept", 9)]
    assert past["total"] == now["total"] + 1
    heavier = (await fresh_client.get("/v1/events", params={**params, "as_of": then, "min_fatalities": 9})).json()
    assert [e["id"] for e in heavier["data"] if e["id"] in ours] == [kept["id"]]
    refused = await fresh_client.get("/v1/events", params={"q": "strike", "as_of": then})
    assert refused.status_code == 422 and refused.json()["errors"][0]["name"] == "q"


async def test_a_write_that_waited_for_its_turn_is_dated_when_it_was_made(fresh_client, fresh_database_url, keys):
    """A write queued behind another (an import batch) is not shown by as_of at times
    before it could have committed."""
    url = (await fresh_client.post("/v1/events", json={**AIRSTRIKE, "summary": "old"},
                                   headers=as_(keys["editor"]))).headers["location"]
    engine = make_engine(fresh_database_url, pool_size=1)
    try:
        async with engine.connect() as holder:
            await holder.execute(text("UPDATE data_generation SET generation = generation + 1"))  # another writer's turn
            patch = asyncio.create_task(fresh_client.patch(url, json={"summary": "new"}, headers=as_(keys["editor"])))
            await asyncio.sleep(0.5)
            while_waiting = dt.datetime.now(dt.timezone.utc).isoformat()
            assert (await fresh_client.get(url, headers={"Cache-Control": "no-cache"})).json()["summary"] == "old"
            await holder.commit()
            assert (await patch).status_code == 200
    finally:
        await engine.dispose()
    assert (await fresh_client.get(url)).json()["summary"] == "new"
    assert (await fresh_client.get(url, params={"as_of": while_waiting})).json()["summary"] == "old"


async def test_as_of_shows_an_event_whose_place_and_actor_were_deleted_since(fresh_client, keys):
    editor = as_(keys["editor"])
    place = (await fresh_client.post("/v1/places", headers=editor, json={
        "name": "Ephemeral Farm", "kind": "locality", "parent": str(seed_id("place", "al-hasakah-governorate")),
        "latitude": 36.4, "longitude": 40.9})).json()
    actor = (await fresh_client.post("/v1/actors", headers=editor, json={"name": "Ephemeral Brigade",
                                                                         "kind": "armed_group"})).json()
    event = (await fresh_client.post("/v1/events", headers=editor, json={**AIRSTRIKE, "place": place["id"]})).json()
    claim = (await fresh_client.post("/v1/claims", headers=editor, json={
        "event": event["id"], "claimant": "SANA", "predicate": "perpetrator", "stance": "asserts",
        "value": actor["id"]})).json()
    then = dt.datetime.now(dt.timezone.utc).isoformat()
    await fresh_client.patch(f"/v1/events/{event['id']}", headers=editor, json={"place": AIRSTRIKE["place"]})
    await fresh_client.delete(f"/v1/claims/{claim['id']}", headers=editor)
    assert (await fresh_client.delete(f"/v1/actors/{actor['id']}", headers=editor)).status_code == 204
    assert (await fresh_client.delete(f"/v1/places/{place['id']}", headers=editor)).status_code == 204
    past = await fresh_client.get(f"/v1/events/{event['id']}", params={"as_of": then})
    assert past.status_code == 200, past.text
    assert past.json()["place"] is None  # deleted since: its id is in the history, its name is gone
    assert [(a["actor"]["id"], a["status"]) for a in past.json()["actors"]] == [(actor["id"], "alleged")]
    attribution = (await fresh_client.get(f"/v1/events/{event['id']}/attribution", params={"as_of": then})).json()
    assert [a["status"] for a in attribution] == ["alleged"]


@pytest.mark.parametrize(("body", "field"), [
    ({**AIRSTRIKE, "date_start": "0001-01-01"}, "date_start"),          # stored as -infinity, once
    ({**AIRSTRIKE, "date_start": "2018-05-02", "date_end": "2018-05-01", "date_precision": "week"}, "date_end"),
    ({**AIRSTRIKE, "date_end": "9999-12-31", "date_precision": "year"}, "date_end"),
])
async def test_dates_that_cannot_be_are_refused_by_name(fresh_client, keys, body, field):
    answer = await fresh_client.post("/v1/events", json=body, headers=as_(keys["editor"]))
    assert answer.status_code == 422 and [e["name"] for e in answer.json()["errors"]] == [field], answer.text


async def test_values_of_the_wrong_kind_are_refused(fresh_client, keys):
    editor = as_(keys["editor"])
    event = (await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=editor)).json()
    claim = {"event": event["id"], "claimant": "SOHR", "stance": "asserts"}
    truth = await fresh_client.post("/v1/claims", headers=editor, json={**claim, "predicate": "fatalities", "value": True})
    assert truth.status_code == 422 and [e["name"] for e in truth.json()["errors"]] == ["value"]
    far = await fresh_client.post("/v1/claims", headers=editor, json={**claim, "predicate": "date", "value": "9999-12-31"})
    assert far.status_code == 422
    perpetrator = (await fresh_client.post("/v1/claims", headers=editor, json={
        **claim, "predicate": "perpetrator", "value": "Islamic State"})).json()
    weapon = await fresh_client.patch(f"/v1/claims/{perpetrator['id']}", headers=editor, json={"predicate": "weapon"})
    assert weapon.status_code == 422 and "needs a value" in weapon.json()["errors"][0]["reason"]
    cleared = await fresh_client.patch(f"/v1/places/{seed_id('place', 'al-qasr')}", headers=editor, json={"kind": None})
    assert cleared.status_code == 422 and cleared.json()["errors"][0]["name"] == "kind"
    bad_time = await fresh_client.get(f"/v1/events/{event['id']}", params={"as_of": "9999-12-31T23:59:59-14:00"})
    assert bad_time.status_code == 422 and bad_time.json()["errors"][0]["name"] == "as_of"
    member = await fresh_client.delete(f"/v1/actors/{seed_id('actor', 'raf')}", headers=editor)
    assert member.status_code == 409


async def test_an_empty_idempotency_key_is_refused(fresh_client, keys):
    answer = await fresh_client.post("/v1/events", json=AIRSTRIKE, headers={**as_(keys["editor"]), "Idempotency-Key": ""})
    assert answer.status_code == 422 and answer.json()["errors"][0]["name"] == "Idempotency-Key"


async def test_changes_to_actors_places_and_places_of_events_re_derive_the_events(fresh_client, keys):
    editor = as_(keys["editor"])
    event = (await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=editor)).json()
    monitors = [(await fresh_client.post("/v1/actors", headers=editor, json={
        "name": f"Monitor {i}", "kind": "monitor"})).json() for i in (1, 2)]
    for monitor in monitors:
        await fresh_client.post("/v1/claims", headers=editor, json={
            "event": event["id"], "claimant": monitor["id"], "predicate": "perpetrator", "stance": "asserts",
            "value": "Islamic State"})
    status = lambda: fresh_client.get(f"/v1/events/{event['id']}/attribution")  # noqa: E731
    assert [a["status"] for a in (await status()).json()] == ["confirmed"]  # two independent sources
    await fresh_client.patch(f"/v1/actors/{monitors[0]['id']}", headers=editor, json={"kind": "armed_group"})
    assert [a["status"] for a in (await status()).json()] == ["alleged"]  # one of them is a party now
    await fresh_client.patch(f"/v1/places/{seed_id('place', 'al-qasr')}", headers=editor, json={"name": "Qasrville"})
    found = (await fresh_client.get("/v1/events", params={"q": "Qasrville"})).json()["data"]
    assert event["id"] in [e["id"] for e in found]
    moved = (await fresh_client.patch(f"/v1/events/{event['id']}", headers=editor,
                                      json={"place": str(seed_id("place", "syria"))})).json()
    assert moved["geo_precision"] == "country"
