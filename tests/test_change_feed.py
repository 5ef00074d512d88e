"""The change feed (GET /v1/changes): commit order, cursors, and a mirror kept only from
it that ends up equal to a full download after hundreds of concurrent writes."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from db.seed import seed_id
from db.imports.ucdp import UCDP_FORMAT
from tests.conftest import AIRSTRIKE, app_client, as_, generated_database, import_into, ucdp_extract_rows, write_csv

TYPES = ("event", "claim", "actor", "place", "document")


async def _feed(client, since: str | None, limit: int = 1000) -> dict:
    params: dict[str, Any] = {"limit": limit}
    if since:
        params["since"] = since
    answer = await client.get("/v1/changes", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _drain(client, since: str | None) -> tuple[list[dict], str]:
    entries: list[dict] = []
    while True:
        page = await _feed(client, since, limit=200)
        entries += page["data"]
        since = page["next_cursor"]
        if not page["has_more"]:
            return entries, since


async def test_the_feed_lists_each_write_in_commit_order(fresh_client, keys):
    _, start = await _drain(fresh_client, None)
    editor = as_(keys["editor"])
    event = (await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=editor)).json()
    claim = (await fresh_client.post("/v1/claims", headers=editor, json={
        "event": event["id"], "claimant": "SOHR", "predicate": "fatalities", "stance": "asserts", "value": 3})).json()
    await fresh_client.patch(f"/v1/events/{event['id']}", json={"summary": "Edited."}, headers=editor)
    await fresh_client.delete(f"/v1/events/{event['id']}", headers=editor)
    entries, end = await _drain(fresh_client, start)
    # the new event may match seed events (same place, near in time): their answers
    # change too (linked_events), so they are listed as updated
    ours = {event["id"], claim["id"]}
    assert {(e["op"], e["type"]) for e in entries if e["id"] not in ours} <= {("updated", "event")}
    entries = [e for e in entries if e["id"] in ours]
    listed = [(e["op"], e["type"], e["id"]) for e in entries]
    # write by write; the records one write changed in the order it first touched them
    assert listed[:4] == [
        ("created", "event", event["id"]),
        ("created", "claim", claim["id"]), ("updated", "event", event["id"]),  # its figures and claims
        ("updated", "event", event["id"]),
    ]
    assert sorted(listed[4:]) == [("deleted", "claim", claim["id"]), ("deleted", "event", event["id"])]
    assert entries == sorted(entries, key=lambda e: e["at"])
    nothing_new = await _feed(fresh_client, end)
    assert nothing_new["data"] == [] and nothing_new["next_cursor"] == end and not nothing_new["has_more"]


async def test_the_feed_starts_with_everything_there_is(fresh_client):
    entries, _ = await _drain(fresh_client, None)
    created = {(e["type"], e["id"]) for e in entries if e["op"] == "created"}
    assert ("event", str(seed_id("event", "al-qasr-strike"))) in created
    assert ("actor", str(seed_id("actor", "sohr"))) in created


async def test_a_cursor_that_is_not_ours_is_refused(fresh_client):
    answer = await fresh_client.get("/v1/changes", params={"since": "abc.def"})
    assert answer.status_code == 400 and answer.json()["errors"][0]["name"] == "since"


_GRAPHQL_FEED = "query($since: String, $first: Int!) { changes(since: $since, first: $first) { " \
                "data { op type id at mergedInto } nextCursor hasMore } }"


async def test_graphql_lists_the_same_feed_with_the_same_cursors(fresh_client, keys):
    editor = as_(keys["editor"])
    _, start = await _drain(fresh_client, None)
    event = (await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=editor)).json()
    await fresh_client.delete(f"/v1/events/{event['id']}", headers=editor)
    rest = await _feed(fresh_client, start, limit=3)

    async def graphql(variables: dict) -> dict:
        return (await fresh_client.post("/graphql", json={"query": _GRAPHQL_FEED, "variables": variables})).json()

    answer = (await graphql({"since": start, "first": 3}))["data"]["changes"]
    assert [{"op": e["op"].lower(), "type": e["type"].lower(), "id": e["id"]} for e in answer["data"]] == \
        [{k: e[k] for k in ("op", "type", "id")} for e in rest["data"]]
    assert (answer["nextCursor"], answer["hasMore"]) == (rest["next_cursor"], rest["has_more"])  # one cursor

    refused = (await graphql({"since": "abc.def", "first": 3}))["errors"][0]
    assert refused["extensions"] == {"code": "BAD_USER_INPUT", "argument": "since"}
    too_few = (await graphql({"since": start, "first": 0}))["errors"][0]
    assert too_few["extensions"]["argument"] == "first"


def _by_reference(value: Any, top: bool = True) -> Any:
    """A record as a mirror keeps it: what it embeds of other records (an event's place,
    actors and claims; a claim's document) by id only, since those change on their own."""
    if isinstance(value, dict):
        if not top and "id" in value:
            return value["id"]
        return {k: _by_reference(v, top=False) for k, v in value.items()}
    if isinstance(value, list):
        return [_by_reference(v, top=False) for v in value]
    return value


async def _record(client, record_type: str, record_id: str) -> dict | None:
    answer = await client.get(f"/v1/{record_type}s/{record_id}")
    if answer.status_code == 410:
        return None
    assert answer.status_code == 200, answer.text
    return _by_reference(answer.json())


async def _everything(client) -> dict[tuple[str, str], dict]:
    """A full download: every record of every type, by paging the lists."""
    found: dict[tuple[str, str], dict] = {}
    for record_type in TYPES:
        cursor = None
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = (await client.get(f"/v1/{record_type}s", params=params)).json()
            for item in page["data"]:
                found[(record_type, item["id"])] = await _record(client, record_type, item["id"])
            cursor = page["next_cursor"]
            if not cursor:
                break
    return found


async def _random_writes(client, token: str, rng: random.Random, count: int) -> int:
    """`count` writes of every kind, on records this writer made or the seed's; a
    write that lost a race with another writer (deleted, changed since) counts too."""
    editor = as_(token)
    places = [str(seed_id("place", k)) for k in ("al-qasr", "afrin", "dumayr", "mosul")]
    claimants = ["SOHR", "SANA", "BBC", "Associated Press"]
    events: list[str] = [str(seed_id("event", "al-qasr-strike"))]
    claims: list[str] = []
    actors: list[str] = []
    done = 0
    while done < count:
        what = rng.choice(["event", "event", "patch event", "claim", "claim", "patch claim", "delete claim",
                           "actor", "patch actor", "document", "delete event"])
        if what == "event":
            answer = await client.post("/v1/events", headers=editor, json={
                **AIRSTRIKE, "place": rng.choice(places), "summary": f"event {rng.random():.6f}",
                "date_start": f"2018-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"})
            events.append(answer.json()["id"])
        elif what == "patch event" and events:
            answer = await client.patch(f"/v1/events/{rng.choice(events)}", headers=editor,
                                        json={"summary": f"edited {rng.random():.6f}"})
        elif what == "delete event" and len(events) > 2:
            victim = events.pop(rng.randrange(1, len(events)))
            answer = await client.delete(f"/v1/events/{victim}", headers=editor)
        elif what == "claim" and events:
            predicate = rng.choice(["fatalities", "perpetrator", "occurred", "civilian_fatalities"])
            value = {"fatalities": rng.randint(0, 40), "civilian_fatalities": {"low": rng.randint(0, 9)},
                     "perpetrator": rng.choice(["US-led coalition", "Islamic State", "Iraqi forces"]),
                     "occurred": None}[predicate]
            answer = await client.post("/v1/claims", headers=editor, json={
                "event": rng.choice(events), "claimant": rng.choice(claimants), "predicate": predicate,
                "stance": rng.choice(["asserts", "asserts", "denies"]) if predicate == "perpetrator" else "asserts",
                "value": value, "quote": f"quote {rng.random():.6f}"})
            if answer.status_code == 201:
                claims.append(answer.json()["id"])
        elif what == "patch claim" and claims:
            answer = await client.patch(f"/v1/claims/{rng.choice(claims)}", headers=editor,
                                        json={"quote": f"requoted {rng.random():.6f}"})
        elif what == "delete claim" and claims:
            answer = await client.delete(f"/v1/claims/{claims.pop(rng.randrange(len(claims)))}", headers=editor)
        elif what == "actor":
            answer = await client.post("/v1/actors", headers=editor, json={
                "name": f"Brigade {rng.randint(0, 10**9)}", "kind": "armed_group"})
            actors.append(answer.json()["id"])
        elif what == "patch actor" and actors:
            answer = await client.patch(f"/v1/actors/{rng.choice(actors)}", headers=editor,
                                        json={"description": f"described {rng.random():.6f}"})
        elif what == "document":
            answer = await client.post("/v1/documents", headers=editor, json={
                "publisher": rng.choice(claimants), "title": f"report {rng.random():.6f}"})
        else:
            continue
        # another writer's delete of the same event may win the race (404/410); never a 5xx
        assert answer.status_code in (200, 201, 204, 404, 410, 422), answer.text
        done += 1
    return done


async def test_a_mirror_kept_from_the_feed_equals_a_full_download(fresh_client, keys):
    mirror: dict[tuple[str, str], dict] = {}
    since = None
    writing = True

    async def follow() -> None:
        """Poll the feed while the writers write, as a mirror script would."""
        nonlocal since
        while True:
            still_writing = writing
            page = await _feed(fresh_client, since, limit=50)
            for entry in page["data"]:
                key = (entry["type"], entry["id"])
                body = None if entry["op"] == "deleted" else await _record(fresh_client, *key)
                if body is None:
                    mirror.pop(key, None)
                else:
                    mirror[key] = body
            since = page["next_cursor"]
            if not page["has_more"]:
                if not still_writing:
                    return
                await asyncio.sleep(0.01)

    follower = asyncio.create_task(follow())
    writes = await asyncio.gather(*(_random_writes(fresh_client, keys["editor"], random.Random(seed), 55)
                                    for seed in range(4)))
    writing = False
    await follower
    assert sum(writes) >= 200
    everything = await _everything(fresh_client)
    assert len(everything) > 150  # the seed's ~90 records and what the writers left
    assert mirror.keys() == everything.keys()
    assert [k for k in everything if mirror[k] != everything[k]] == []


async def test_a_merge_is_listed_with_its_survivor(fresh_client, keys):
    editor = as_(keys["editor"])
    _, start = await _drain(fresh_client, None)
    one = (await fresh_client.post("/v1/actors", headers=editor, json={"name": "Ansar Unit", "kind": "armed_group"})).json()
    two = (await fresh_client.post("/v1/actors", headers=editor, json={"name": "Ansar Brigade", "kind": "armed_group"})).json()
    await fresh_client.post(f"/v1/actors/{one['id']}/merge", headers=editor, json={"into": two["id"]})
    entries, _ = await _drain(fresh_client, start)
    merge = {(e["op"], e["type"], e["id"], e.get("merged_into")) for e in entries[-2:]}
    assert merge == {("merged", "actor", one["id"], two["id"]),
                     ("updated", "actor", two["id"], None)}  # the survivor's new alias


async def test_a_bulk_load_is_in_the_feed(databases, redis_url):
    async with generated_database(databases, events=40, seed=5) as url, app_client(url, redis_url) as client:
        entries, _ = await _drain(client, None)
    created_events = {e["id"] for e in entries if e["type"] == "event" and e["op"] == "created"}
    assert len(created_events) == 40 + 14  # the generated ones and the seed's


async def test_the_history_names_the_seed_and_imports(fresh_client, fresh_database_url, tmp_path):
    history = (await fresh_client.get(f"/v1/events/{seed_id('event', 'al-qasr-strike')}/history")).json()["data"]
    assert {h["who"] for h in history} == {"seed"}
    columns, rows = ucdp_extract_rows()
    await import_into(fresh_database_url, write_csv(tmp_path / "slice.csv", columns, rows[:3]), UCDP_FORMAT)
    imported = (await fresh_client.get(f"/v1/events/ucdp-ged:{rows[0]['id']}/history")).json()["data"]
    assert {h["who"] for h in imported} == {"import UCDP GED slice.csv"}


async def test_records_whose_answers_another_write_changed_are_listed(fresh_client, keys):
    editor = as_(keys["editor"])
    _, start = await _drain(fresh_client, None)
    document = (await fresh_client.post("/v1/documents", headers=editor, json={"publisher": "SOHR", "title": "Daily"})).json()
    event = (await fresh_client.post("/v1/events", headers=editor, json=AIRSTRIKE)).json()
    _, start = await _drain(fresh_client, start)
    await fresh_client.post("/v1/claims", headers=editor, json={
        "event": event["id"], "claimant": "SOHR", "predicate": "occurred", "stance": "asserts",
        "document": document["id"]})
    entries, start = await _drain(fresh_client, start)
    assert ("updated", "document", document["id"]) in {(e["op"], e["type"], e["id"]) for e in entries}  # its claim_count
    # a province moved under another country: every place inside it has new ancestors
    await fresh_client.patch(f"/v1/places/{seed_id('place', 'al-hasakah-governorate')}", headers=editor,
                             json={"parent": str(seed_id("place", "iraq"))})
    entries, start = await _drain(fresh_client, start)
    assert ("place", str(seed_id("place", "al-qasr"))) in {(e["type"], e["id"]) for e in entries}
    # a member merged away: the coalition's member list changed
    brigade = (await fresh_client.post("/v1/actors", headers=editor, json={"name": "Royal Air Force (UK)",
                                                                           "kind": "armed_forces"})).json()
    await fresh_client.post(f"/v1/actors/{seed_id('actor', 'raf')}/merge", headers=editor, json={"into": brigade["id"]})
    entries, _ = await _drain(fresh_client, start)
    assert ("actor", str(seed_id("actor", "us-led-coalition"))) in {(e["type"], e["id"]) for e in entries}
