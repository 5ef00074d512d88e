"""Cross-source linking: a UCDP record and an ACLED record of one happening are linked;
a near miss (same place, a week apart, other figures) is listed for review, not linked."""

from __future__ import annotations

from sqlalchemy import text

from db.engine import make_engine
from db.imports.acled import ACLED_FORMAT
from db.imports.ucdp import UCDP_FORMAT
from db.linking import CANDIDATE_THRESHOLD, LINK_THRESHOLD, match_events
from tests.conftest import app_client, import_into, ucdp_extract_rows, write_csv

ACLED_COLUMNS = ["event_id_cnty", "event_date", "time_precision", "event_type", "sub_event_type", "actor1", "actor2",
                 "country", "admin1", "admin2", "location", "latitude", "longitude", "geo_precision", "source",
                 "notes", "fatalities"]


def _ged_rows(ids: set[str]) -> tuple[list[str], list[dict[str, str]]]:
    columns, rows = ucdp_extract_rows()
    return columns, [r for r in rows if r["id"] in ids]


def _acled(event_id: str, date: str, fatalities: str, latitude: str, longitude: str, **more) -> dict[str, str]:
    # Teir Maaleh, Homs: where UCDP's event 214797 (2016-01-01, best 4, an armed clash) is
    return {"event_id_cnty": event_id, "event_date": date, "time_precision": "1", "event_type": "Battles",
            "sub_event_type": "Armed clash", "actor1": "Military Forces of Syria (2000-)",
            "actor2": "Opposition Rebels (Syria)", "country": "Syria", "admin1": "Homs", "admin2": "Ar-Rastan",
            "location": "Teir Maaleh", "latitude": latitude, "longitude": longitude, "geo_precision": "1",
            "source": "SOHR", "notes": "Clashes.", "fatalities": fatalities, **more}


async def test_a_true_pair_is_linked_and_a_near_miss_is_only_listed(fresh_database_url, redis_url, tmp_path):
    columns, rows = _ged_rows({"214797"})
    assert rows and rows[0]["best"] == "4" and rows[0]["date_start"] == "2016-01-01"
    await import_into(fresh_database_url, write_csv(tmp_path / "ged.csv", columns, rows), UCDP_FORMAT)
    report = await import_into(fresh_database_url, write_csv(tmp_path / "acled.csv", ACLED_COLUMNS, [
        _acled("SYR-TRUE", "2016-01-01", "5", "34.8150", "36.7200"),     # same day, ~1.8 km, 5 killed
        _acled("SYR-MISS", "2016-01-08", "40", "34.802462", "36.707602"),  # same place, a week on, 40 killed
        _acled("SYR-MONTH", "2016-01-20", "9", "34.8030", "36.7080", time_precision="3"),  # known to the month
    ]), ACLED_FORMAT)
    assert report.inserted == 3

    async with app_client(fresh_database_url, redis_url) as client:
        async def matches(ref: str) -> dict[str, dict]:
            response = await client.get(f"/v1/events/{ref}/matches", params={"limit": 500})
            assert response.status_code == 200, response.text
            assert response.json()["next_cursor"] is None
            return {x["dataset"] + ":" + x["id"]: m for m in response.json()["data"]
                    for x in m["event"]["external_ids"]}

        true_pair = (await matches("acled:SYR-TRUE"))["ucdp-ged:214797"]
        assert true_pair["linked"] and true_pair["status"] == "linked" and true_pair["score"] >= LINK_THRESHOLD
        assert true_pair["verdict"] is None
        assert true_pair["days_apart"] == 0 and 1 < true_pair["distance_km"] < 3
        assert true_pair["parts"]["time"] == 1 and true_pair["parts"]["type"] == 1

        near_miss = (await matches("acled:SYR-MISS"))["ucdp-ged:214797"]
        assert not near_miss["linked"] and CANDIDATE_THRESHOLD <= near_miss["score"] < LINK_THRESHOLD
        assert near_miss["status"] == "candidate"
        assert near_miss["days_apart"] == 7 and near_miss["distance_km"] == 0

        # a date known only to the month matches anywhere inside it, but one record of a
        # source is linked to at most one of another's: the monthly one is a contender
        monthly = (await matches("acled:SYR-MONTH"))["ucdp-ged:214797"]
        assert monthly["days_apart"] == 0 and not monthly["linked"] and monthly["status"] != "linked"

        # UCDP's record: its linked event is the true pair; every record stays
        # addressable by its own id
        ged = (await client.get("/v1/events/ucdp-ged:214797")).json()
        linked = {x["id"] for e in ged["linked_events"] for x in e["external_ids"]}
        assert linked == {"SYR-TRUE"}
        assert set(await matches("ucdp-ged:214797")) == {"acled:SYR-TRUE", "acled:SYR-MISS", "acled:SYR-MONTH"}
        assert (await client.get("/v1/events/acled:SYR-TRUE")).json()["id"] != ged["id"]

        # records of one source are never matched with each other
        assert "acled:SYR-MISS" not in await matches("acled:SYR-TRUE")

        # and GraphQL
        response = await client.post("/graphql", json={"query": """
            query ($id: ID!) { event(id: $id) { matches { edges { node {
                score status linked daysApart externalIds { dataset id } parts { time place claimants text } } } } } }""",
                                                      "variables": {"id": ged["id"]}})
        found = {m["node"]["externalIds"][0]["id"]: m["node"] for m in response.json()["data"]["event"]["matches"]["edges"]}
        assert found["SYR-TRUE"]["linked"] and not found["SYR-MISS"]["linked"] and not found["SYR-MONTH"]["linked"]
        assert found["SYR-MISS"]["daysApart"] == 7 and found["SYR-TRUE"]["status"] == "LINKED"

        assert (await client.get("/v1/events/acled:NOPE/matches")).status_code == 404

    # The same rule for a single event matched among all events (as a write will be),
    # not among an import's snapshot of other sources: the same pairs and scores.
    engine = make_engine(fresh_database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            before = (await conn.execute(text("SELECT * FROM event_matches ORDER BY 1, 2"))).all()
            acled_ids = [r[0] for r in await conn.execute(text(
                "SELECT event_id FROM event_external_ids WHERE dataset = 'acled'"))]
            await match_events(conn, acled_ids, ["acled"])
            assert (await conn.execute(text("SELECT * FROM event_matches ORDER BY 1, 2"))).all() == before
    finally:
        await engine.dispose()
