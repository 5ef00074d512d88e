"""Curation (issue 14): an editor confirms or rejects that two records are one happening.

A verdict links or unlinks the pair at once (and regroups the happenings), survives
re-imports and re-scoring, is in both events' history and the change feed, moves with
a merge, and deleting a record regroups the happening it was in."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import text

from db.engine import make_engine
from db.imports.acled import ACLED_FORMAT
from db.imports.ucdp import UCDP_FORMAT
from tests.conftest import AIRSTRIKE, app_client, as_, event_url, import_into, ucdp_extract_rows, write_csv
from tests.test_graphql import gql
from tests.test_graphql_mutations import refusal
from tests.test_linking import ACLED_COLUMNS, _acled

GED_NEAR = "214797"  # 2016-01-01, Teir Maaleh (Homs), an armed clash, 4 killed
GED_FAR = "218189"   # 2016-03-01, Kobane (Aleppo): nothing of ACLED's file comes near it


def _acled_rows(**notes: str) -> list[dict[str, str]]:
    """ACLED's file: SYR-TRUE is UCDP's 214797 (linked by the rule), SYR-MONTH a
    contender for it (known to the month), SYR-FAR far from everything."""
    rows = [
        _acled("SYR-TRUE", "2016-01-01", "5", "34.8150", "36.7200"),
        _acled("SYR-MONTH", "2016-01-20", "9", "34.8030", "36.7080", time_precision="3"),
        _acled("SYR-FAR", "2016-03-20", "2", "36.2021", "37.1343", admin1="Aleppo", admin2="Jebel Saman",
               location="Aleppo", event_type="Explosions/Remote violence",
               sub_event_type="Shelling/artillery/missile attack"),
    ]
    return [{**row, "notes": notes.get(row["event_id_cnty"], row["notes"])} for row in rows]


async def _import_sources(url: str, tmp_path: Path) -> None:
    columns, rows = ucdp_extract_rows()
    ged = [r for r in rows if r["id"] in (GED_NEAR, GED_FAR)]
    await import_into(url, write_csv(tmp_path / "ged.csv", columns, ged), UCDP_FORMAT)
    await _import_acled(url, tmp_path)


async def _import_acled(url: str, tmp_path: Path, **notes: str) -> None:
    await import_into(url, write_csv(tmp_path / "acled.csv", ACLED_COLUMNS, _acled_rows(**notes)), ACLED_FORMAT)


async def _rows(url: str, sql: str, **params) -> list:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).all()
    finally:
        await engine.dispose()


async def _id(url: str, ref: str) -> str:
    """An event's id from its id or dataset:id."""
    if ":" not in ref:
        return ref
    dataset, external_id = ref.split(":", 1)
    return str((await _rows(url, "SELECT event_id FROM event_external_ids WHERE dataset = :d AND external_id = :x",
                            d=dataset, x=external_id))[0][0])


async def _linked(url: str, a: str, b: str) -> bool:
    """Whether the events `a` and `b` (ids or dataset:id) are linked, checked as
    stored: the pair's status, and then both records are in one happening."""
    a, b = await _id(url, a), await _id(url, b)
    status = await _rows(url, "SELECT m.status FROM (SELECT CAST(:a AS uuid) AS a, CAST(:b AS uuid) AS b) p "
                              "JOIN event_matches m ON (m.event_id, m.other_id) = (least(a, b), greatest(a, b))",
                         a=a, b=b)
    linked = bool(status) and status[0][0] == "linked"
    assert not linked or (await _happening(url, a))[0] == (await _happening(url, b))[0]
    return linked


async def _happening(url: str, ref: str) -> tuple[str, set[str]]:
    """The happening of the event `ref`: its id and its members (as dataset:id, or id)."""
    event_id = await _id(url, ref)
    found = await _rows(url, "SELECT happening_id FROM happening_members WHERE event_id = :e", e=event_id)
    happening = str(found[0][0]) if found else event_id
    members = [str(r[0]) for r in await _rows(
        url, "SELECT event_id FROM happening_members WHERE happening_id = :h", h=happening)] or [event_id]
    refs = set()
    for member in members:
        named = await _rows(url, "SELECT dataset || ':' || external_id FROM event_external_ids WHERE event_id = :e",
                            e=member)
        refs.add(named[0][0] if named else member)
    return happening, refs


@pytest.fixture
async def sources(fresh_database_url, tmp_path) -> str:
    """UCDP's two records and ACLED's three, imported: SYR-TRUE and UCDP's 214797 linked."""
    await _import_sources(fresh_database_url, tmp_path)
    assert await _linked(fresh_database_url, "acled:SYR-TRUE", f"ucdp-ged:{GED_NEAR}")
    return fresh_database_url


async def test_a_rejected_pair_is_unlinked_at_once_and_stays_so_through_a_re_import(sources, redis_url, keys,
                                                                                     tmp_path):
    url = sources
    async with app_client(url, redis_url) as client:
        start = (await client.get("/v1/changes", params={"limit": 10_000})).json()["next_cursor"]
        answer = await client.delete(f"/v1/events/acled:SYR-TRUE/links/ucdp-ged:{GED_NEAR}",
                                     params={"note": "Another clash: SOHR places it in Ter Ma'la's west."},
                                     headers=as_(keys["editor"]))
        assert answer.status_code == 200, answer.text
        pair = answer.json()
        assert pair["verdict"] == "rejected" and pair["status"] != "linked" and pair["happening_id"] is None
        assert pair["note"] == "Another clash: SOHR places it in Ter Ma'la's west."
        assert "test editor" in pair["decided_by"] and pair["score"] >= 0.7  # the rule alone would link it
        assert set(pair["parts"]) == {"time", "place", "type", "actors", "fatalities", "claimants", "text"}
        assert not await _linked(url, "acled:SYR-TRUE", f"ucdp-ged:{GED_NEAR}")
        # one to one: the next best record of ACLED's is linked instead
        assert await _linked(url, "acled:SYR-MONTH", f"ucdp-ged:{GED_NEAR}")
        assert (await _happening(url, "acled:SYR-TRUE"))[1] == {"acled:SYR-TRUE"}

        # in both events' history (who, when, what) and the feed, as one write
        ids = {}
        for ref in ("acled:SYR-TRUE", f"ucdp-ged:{GED_NEAR}"):
            ids[ref] = (await client.get(f"/v1/events/{ref}")).json()["id"]
            history = (await client.get(f"/v1/events/{ref}/history")).json()["data"]
            [link] = [h for h in history if h["record"]["type"] == "link"]
            assert link["op"] == "created" and "test editor" in link["who"]
            assert link["who"] == pair["decided_by"]
            assert dt.datetime.fromisoformat(link["at"]) == dt.datetime.fromisoformat(pair["decided_at"])
            assert link["after"]["verdict"] == "rejected" and link["record"]["key"].startswith(ids[ref])
        changes = (await client.get("/v1/changes", params={"since": start})).json()["data"]
        assert {c["id"] for c in changes} >= set(ids.values())
        assert {(c["op"], c["type"]) for c in changes} == {("updated", "event")}
        assert len({c["at"] for c in changes}) == 1  # one transaction

        # a repeat changes nothing
        again = await client.delete(f"/v1/events/ucdp-ged:{GED_NEAR}/links/acled:SYR-TRUE",
                                    headers=as_(keys["editor"]))
        assert again.status_code == 200 and again.json()["decided_at"] == pair["decided_at"]
        assert again.json()["note"] == pair["note"]  # (no new note given: the old one stays)

    # ACLED's file again, SYR-TRUE's notes revised: re-scored, still not linked
    await _import_acled(url, tmp_path, **{"SYR-TRUE": "Clashes between regime forces and rebels in Teir Maaleh."})
    assert (await _rows(url, "SELECT count(*) FROM events e JOIN event_external_ids x ON x.event_id = e.id "
                             "WHERE x.external_id = 'SYR-TRUE' AND e.summary LIKE '%regime forces%'"))[0][0] == 1
    assert not await _linked(url, "acled:SYR-TRUE", f"ucdp-ged:{GED_NEAR}")
    assert await _linked(url, "acled:SYR-MONTH", f"ucdp-ged:{GED_NEAR}")


async def test_a_candidates_rescoring_is_no_change_of_the_events_a_links_is(sources, redis_url, tmp_path):
    url = sources
    near = f"ucdp-ged:{GED_NEAR}"
    async with app_client(url, redis_url) as client:
        before = (await client.get(f"/v1/events/{near}")).json()
        start = (await client.get("/v1/changes", params={"limit": 10_000})).json()["next_cursor"]
        # SYR-MONTH, a contender for UCDP's record, is revised and re-scored: UCDP's
        # record answers as before, so a mirror has nothing to fetch for it
        await _import_acled(url, tmp_path, **{"SYR-MONTH": "Clashes near Teir Maaleh in January."})
        changed = {c["id"] for c in (await client.get("/v1/changes", params={"since": start})).json()["data"]}
        assert (await client.get(f"/v1/events/{near}")).json() == before
        assert changed == {(await client.get("/v1/events/acled:SYR-MONTH")).json()["id"]}

        # SYR-TRUE, linked to it, is revised: the link's score moves in UCDP's record's answer
        start = (await client.get("/v1/changes", params={"limit": 10_000})).json()["next_cursor"]
        await _import_acled(url, tmp_path, **{"SYR-MONTH": "Clashes near Teir Maaleh in January.",
                                              "SYR-TRUE": "Clashes between regime forces and rebels in Teir Maaleh."})
        after = (await client.get(f"/v1/events/{near}")).json()
        changed = {c["id"] for c in (await client.get("/v1/changes", params={"since": start})).json()["data"]}
        assert after["linked_events"][0]["score"] != before["linked_events"][0]["score"]
        assert before["id"] in changed


async def test_a_record_joining_a_happening_is_a_change_of_every_record_in_it(sources, redis_url, keys):
    url = sources
    near, true = f"ucdp-ged:{GED_NEAR}", "acled:SYR-TRUE"
    async with app_client(url, redis_url) as client:
        written = await client.post("/v1/events", json=AIRSTRIKE, headers=as_(keys["editor"]))
        assert written.status_code == 201, written.text
        start = (await client.get("/v1/changes", params={"limit": 10_000})).json()["next_cursor"]
        # an editor's record (no source: compared with every one) joins UCDP's record:
        # SYR-TRUE's pair is untouched, yet its happening now has three records
        confirmed = await client.post(f"/v1/events/{near}/links", json={"event": written.json()["id"]},
                                      headers=as_(keys["editor"]))
        assert confirmed.status_code == 201, confirmed.text
        joined = (await client.get(f"/v1/events/{true}")).json()
        assert joined["happening"]["record_count"] == 3
        changed = {c["id"] for c in (await client.get("/v1/changes", params={"since": start})).json()["data"]}
        assert joined["id"] in changed  # (a mirror refetches it and sees the happening's new size)


async def test_a_confirmed_pair_far_apart_is_one_happening_and_stays_so_through_a_re_import(sources, redis_url,
                                                                                           keys, tmp_path):
    url = sources
    assert not await _rows(url, "SELECT 1 FROM event_matches m JOIN event_external_ids x "
                                "ON x.event_id IN (m.event_id, m.other_id) WHERE x.external_id = 'SYR-FAR'")
    async with app_client(url, redis_url) as client:
        confirm = {"event": "acled:SYR-FAR", "note": "UCDP's date is the report's; same strike."}
        answer = await client.post(f"/v1/events/ucdp-ged:{GED_FAR}/links", json=confirm, headers=as_(keys["editor"]))
        assert answer.status_code == 201, answer.text
        pair = answer.json()
        assert pair["verdict"] == "confirmed" and pair["status"] == "linked" and pair["score"] < 0.45
        ged_far = (await client.get(f"/v1/events/ucdp-ged:{GED_FAR}")).json()["id"]
        assert pair["event"] == ged_far and pair["happening_id"] == ged_far  # the earliest record's id
        assert pair["days_apart"] == 19 and pair["distance_km"] > 100
        assert await _happening(url, "acled:SYR-FAR") == (ged_far, {f"ucdp-ged:{GED_FAR}", "acled:SYR-FAR"})

        # the same verdict again: 200, nothing written (as from the other side)
        before = (await client.get("/v1/changes", params={"limit": 10_000})).json()["next_cursor"]
        again = await client.post("/v1/events/acled:SYR-FAR/links", json={"event": f"ucdp-ged:{GED_FAR}"},
                                  headers=as_(keys["editor"]))
        assert again.status_code == 200 and again.json()["decided_at"] == pair["decided_at"]
        assert (await client.get("/v1/changes", params={"since": before})).json()["data"] == []

    await _import_acled(url, tmp_path, **{"SYR-FAR": "Shelling on Aleppo's Salah al-Din quarter."})
    assert await _linked(url, "acled:SYR-FAR", f"ucdp-ged:{GED_FAR}")
    assert await _happening(url, "acled:SYR-FAR") == (ged_far, {f"ucdp-ged:{GED_FAR}", "acled:SYR-FAR"})


async def test_who_may_judge_and_what_is_refused(fresh_client, keys):
    strike, afrin = event_url("al-qasr-strike"), event_url("afrin-capture")
    body = {"event": "conflictkb-seed:afrin-capture"}
    assert (await fresh_client.post(f"{strike}/links", json=body)).status_code == 401
    assert (await fresh_client.post(f"{strike}/links", json=body, headers=as_(keys["reader"]))).status_code == 403
    assert (await fresh_client.delete(f"{strike}/links/conflictkb-seed:afrin-capture",
                                      headers=as_(keys["reader"]))).status_code == 403
    editor = as_(keys["editor"])

    def named(answer, status: int) -> list[tuple[str, str]]:
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        return [(e["name"], e["in"]) for e in answer.json().get("errors", [])]

    assert named(await fresh_client.post("/v1/events/acled:NOPE/links", json=body, headers=editor), 404) == []
    assert named(await fresh_client.post(f"{strike}/links", json={"event": "acled:NOPE"}, headers=editor),
                 422) == [("event", "body")]
    assert named(await fresh_client.post(f"{strike}/links", json={"event": "conflictkb-seed:al-qasr-strike"},
                                         headers=editor), 422) == [("event", "body")]
    assert named(await fresh_client.post(f"{strike}/links", json={"other": "x"}, headers=editor),
                 422) == [("event", "body"), ("other", "body")]
    assert named(await fresh_client.delete(f"{strike}/links/acled:NOPE", headers=editor), 404) == []
    assert named(await fresh_client.delete(f"{strike}/links/conflictkb-seed:al-qasr-strike", headers=editor),
                 422) == [("other_id", "path")]

    # a deleted event: 410, in the path; named, in the body
    gone = (await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=editor)).json()["id"]
    assert (await fresh_client.delete(f"/v1/events/{gone}", headers=editor)).status_code == 204
    assert (await fresh_client.post(f"/v1/events/{gone}/links", json=body, headers=editor)).status_code == 410
    refused = await fresh_client.post(f"{strike}/links", json={"event": gone}, headers=editor)
    assert named(refused, 422) == [("event", "body")] and "deleted" in refused.json()["detail"]
    # nothing of it was written
    assert (await fresh_client.get(f"{strike}/history")).json()["data"][-1]["record"]["type"] != "link"


async def test_a_verdict_replaces_the_other_and_an_idempotency_key_replays(fresh_client, keys):
    """Two records of one source (the seed's) may be judged too: the rule never pairs
    them, a verdict does."""
    editor = as_(keys["editor"])
    strike, afrin = event_url("al-qasr-strike"), event_url("afrin-capture")
    repeat = {**editor, "Idempotency-Key": "c0ffee00-link-0001"}
    confirmed = await fresh_client.post(f"{strike}/links", json={"event": "conflictkb-seed:afrin-capture"},
                                        headers=repeat)
    assert confirmed.status_code == 201 and confirmed.json()["status"] == "linked"
    assert confirmed.json()["happening_id"] is not None
    replayed = await fresh_client.post(f"{strike}/links", json={"event": "conflictkb-seed:afrin-capture"},
                                       headers=repeat)
    assert replayed.status_code == 201 and replayed.content == confirmed.content

    rejected = await fresh_client.delete(f"{afrin}/links/conflictkb-seed:al-qasr-strike", headers=editor)
    assert rejected.status_code == 200
    assert rejected.json()["verdict"] == "rejected" and rejected.json()["status"] != "linked"
    assert rejected.json()["happening_id"] is None and rejected.json()["note"] is None

    again = await fresh_client.post(f"{strike}/links", headers=editor,
                                    json={"event": "conflictkb-seed:afrin-capture", "note": "One operation."})
    assert again.status_code == 201 and again.json()["verdict"] == "confirmed"
    noted = await fresh_client.post(f"{strike}/links", headers=editor,
                                    json={"event": "conflictkb-seed:afrin-capture",
                                          "note": "One operation, says SOHR."})
    assert noted.status_code == 200 and noted.json()["note"] == "One operation, says SOHR."
    assert noted.json()["decided_at"] == again.json()["decided_at"]

    history = (await fresh_client.get(f"{afrin}/history")).json()["data"]
    links = [(h["op"], h["changed"], (h["after"] or {}).get("verdict"))
             for h in history if h["record"]["type"] == "link"]
    assert links == [
        ("created", ["decided_at", "decided_by", "event_id", "other_id", "verdict"], "confirmed"),
        ("updated", ["decided_at", "verdict"], "rejected"),
        ("updated", ["decided_at", "note", "verdict"], "confirmed"),
        ("updated", ["note"], "confirmed"),
    ]


async def test_a_deleted_record_leaves_its_happening_to_the_others(sources, redis_url, keys):
    """A happening of three (UCDP's record, ACLED's linked by the rule, an editor's
    record confirmed with UCDP's) is one of two once the editor's is deleted, with the
    same id, its earliest record's; ACLED's deleted, its contender is linked instead."""
    url = sources
    async with app_client(url, redis_url) as client:
        editor = as_(keys["editor"])
        ours = (await client.post("/v1/events", json=AIRSTRIKE, headers=editor)).json()["id"]  # far away: no pair
        ged = (await client.get(f"/v1/events/ucdp-ged:{GED_NEAR}")).json()["id"]
        answer = await client.post(f"/v1/events/{ours}/links", json={"event": ged}, headers=editor)
        assert answer.status_code == 201 and answer.json()["happening_id"] == ged
        assert await _happening(url, ours) == (ged, {f"ucdp-ged:{GED_NEAR}", "acled:SYR-TRUE", ours})

        assert (await client.delete(f"/v1/events/{ours}", headers=editor)).status_code == 204
        assert await _happening(url, ged) == (ged, {f"ucdp-ged:{GED_NEAR}", "acled:SYR-TRUE"})
        # the verdict went with the record, in the other's history
        history = (await client.get(f"/v1/events/{ged}/history")).json()["data"]
        assert [(h["op"], h["record"]["key"]) for h in history if h["record"]["type"] == "link"] == [
            ("created", f"{ged}/{ours}"), ("deleted", f"{ged}/{ours}")]

        # one to one: ACLED's contender for UCDP's record is linked once SYR-TRUE is gone
        assert not await _linked(url, "acled:SYR-MONTH", ged)
        assert (await client.delete("/v1/events/acled:SYR-TRUE", headers=editor)).status_code == 204
        assert await _happening(url, ged) == (ged, {f"ucdp-ged:{GED_NEAR}", "acled:SYR-MONTH"})

        assert (await client.delete(f"/v1/events/{ged}", headers=editor)).status_code == 204
        month = await _id(url, "acled:SYR-MONTH")
        assert await _happening(url, month) == (month, {"acled:SYR-MONTH"})


async def test_a_merged_record_leaves_its_verdicts_to_the_survivor(fresh_client, fresh_database_url, keys):
    """Two records that are one: what was said of one pair of them holds for the survivor."""
    editor = as_(keys["editor"])
    afrin = (await fresh_client.get(event_url("afrin-capture"))).json()["id"]
    duplicate = (await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=editor)).json()["id"]
    survivor = (await fresh_client.post("/v1/events", json={**AIRSTRIKE, "summary": "The same strike."},
                                        headers=editor)).json()["id"]
    strike = (await fresh_client.get(event_url("al-qasr-strike"))).json()["id"]
    await fresh_client.post(f"/v1/events/{duplicate}/links", json={"event": afrin, "note": "(a test)"}, headers=editor)
    await fresh_client.delete(f"/v1/events/{duplicate}/links/{strike}", headers=editor)
    # the survivor's own verdict on a pair stands
    await fresh_client.post(f"/v1/events/{survivor}/links", json={"event": strike}, headers=editor)

    merged = await fresh_client.post(f"/v1/events/{duplicate}/merge", json={"into": survivor}, headers=editor)
    assert merged.status_code == 200, merged.text
    verdicts = await _rows(fresh_database_url, "SELECT event_id, other_id, verdict, note FROM event_links")
    assert {(str(a), str(b), verdict, note) for a, b, verdict, note in verdicts} == {
        (survivor, afrin, "confirmed", "(a test)"), (afrin, survivor, "confirmed", "(a test)"),
        (survivor, strike, "confirmed", None), (strike, survivor, "confirmed", None)}
    assert await _linked(fresh_database_url, survivor, afrin)
    assert (await _happening(fresh_database_url, survivor))[1] == {
        survivor, "conflictkb-seed:afrin-capture", "conflictkb-seed:al-qasr-strike"}
    history = (await fresh_client.get(f"/v1/events/{survivor}/history")).json()["data"]
    assert {h["record"]["key"] for h in history if h["record"]["type"] == "link"} == {
        f"{survivor}/{afrin}", f"{survivor}/{strike}"}


LINK = """mutation ($input: EventPairInput!) { linkEvents(input: $input) {
  event { id externalIds { dataset id } } other { id summary } verdict note decidedBy status score
  parts { time place type actors fatalities claimants text } daysApart distanceKm happeningId } }"""
UNLINK = LINK.replace("linkEvents", "unlinkEvents")


async def test_graphql_links_and_unlinks_by_the_same_rules(fresh_client, fresh_database_url, keys):
    strike, afrin = "conflictkb-seed:al-qasr-strike", "conflictkb-seed:afrin-capture"
    pair = {"event": strike, "other": afrin, "note": "One operation."}
    assert refusal(await gql(fresh_client, LINK, input=pair))["code"] == "UNAUTHENTICATED"
    assert refusal(await gql(fresh_client, LINK, headers=as_(keys["reader"]), input=pair))["code"] == "FORBIDDEN"
    editor = as_(keys["editor"])

    linked = await gql(fresh_client, LINK, headers=editor, input=pair)
    assert "errors" not in linked, linked
    link = linked["data"]["linkEvents"]
    assert link["event"]["externalIds"] == [{"dataset": "conflictkb-seed", "id": "al-qasr-strike"}]
    assert link["verdict"] == "CONFIRMED" and link["status"] == "LINKED" and link["note"] == "One operation."
    assert link["happeningId"] in (link["event"]["id"], link["other"]["id"]) and "test editor" in link["decidedBy"]
    assert await _linked(fresh_database_url, strike, afrin)

    unlinked = await gql(fresh_client, UNLINK, headers=editor, input={"event": afrin, "other": strike})
    link = unlinked["data"]["unlinkEvents"]
    assert link["verdict"] == "REJECTED" and link["status"] != "LINKED" and link["happeningId"] is None
    assert link["note"] is None and link["other"]["summary"] is not None
    assert not await _linked(fresh_database_url, strike, afrin)

    refused = {
        "NOT_FOUND": {"event": "acled:NOPE", "other": afrin},
        "BAD_USER_INPUT input.other": {"event": strike, "other": "acled:NOPE"},
        "BAD_USER_INPUT input.other ": {"event": strike, "other": strike},  # (itself)
        "BAD_USER_INPUT input.event input.other": {},
        "BAD_USER_INPUT input.note": {"event": strike, "other": afrin, "note": "   "},
    }
    for expected, given in refused.items():
        error = refusal(await gql(fresh_client, LINK, headers=editor, input=given))
        assert " ".join([error["code"], *(e["name"] for e in error.get("errors", []))]) == expected.strip(), error
