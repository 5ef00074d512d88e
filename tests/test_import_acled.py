"""`conflictkb import acled`: ACLED exports in each header and date variant, optional
columns missing, broken rows, re-imports."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from db.engine import make_engine
from db.imports.acled import ACLED_FORMAT
from tests.conftest import app_client, import_into, write_csv

API_COLUMNS = ["event_id_cnty", "event_date", "year", "time_precision", "disorder_type", "event_type",
               "sub_event_type", "actor1", "assoc_actor_1", "inter1", "actor2", "assoc_actor_2", "inter2",
               "interaction", "civilian_targeting", "iso", "region", "country", "admin1", "admin2", "admin3",
               "location", "latitude", "longitude", "geo_precision", "source", "source_scale", "notes", "fatalities",
               "tags", "timestamp"]
API_ROWS = [
    {"event_id_cnty": "SYR90001", "event_date": "2022-01-05", "year": "2022", "time_precision": "1",
     "disorder_type": "Political violence", "event_type": "Explosions/Remote violence",
     "sub_event_type": "Air/drone strike", "actor1": "Military Forces of Russia (2000-)", "assoc_actor_1": "",
     "inter1": "8", "actor2": "Civilians (Syria)", "assoc_actor_2": "", "inter2": "7", "interaction": "87",
     "civilian_targeting": "Civilian targeting", "iso": "760", "region": "Middle East", "country": "Syria",
     "admin1": "Idleb", "admin2": "Ariha", "admin3": "Ariha", "location": "Ariha", "latitude": "35.8126",
     "longitude": "36.6105", "geo_precision": "1", "source": "SOHR; Step News Agency", "source_scale": "National",
     "notes": "On 5 January 2022, Russian warplanes struck Ariha, killing 3 civilians, including a child.",
     "fatalities": "3", "tags": "", "timestamp": "1642000000"},
    {"event_id_cnty": "SYR90002", "event_date": "2022-01-07", "year": "2022", "time_precision": "2",
     "disorder_type": "Political violence", "event_type": "Battles", "sub_event_type": "Armed clash",
     "actor1": "SDF: Syrian Democratic Forces", "assoc_actor_1": "YPG: People's Protection Units", "inter1": "2",
     "actor2": "Islamic State (Syria)", "assoc_actor_2": "", "inter2": "2", "interaction": "22",
     "civilian_targeting": "", "iso": "760", "region": "Middle East", "country": "Syria", "admin1": "Al Hasakah",
     "admin2": "Al Hasakah", "admin3": "", "location": "Al Hasakah", "latitude": "36.5024", "longitude": "40.7477",
     "geo_precision": "2", "source": "Rudaw", "source_scale": "Regional",
     "notes": "Clashes between SDF and IS near Ghwayran prison.", "fatalities": "11", "tags": "",
     "timestamp": "1642000001"},
    {"event_id_cnty": "SYR90003", "event_date": "2022-01-15", "year": "2022", "time_precision": "3",
     "disorder_type": "Demonstrations", "event_type": "Protests", "sub_event_type": "Peaceful protest",
     "actor1": "Protesters (Syria)", "assoc_actor_1": "", "inter1": "Protesters", "actor2": "",
     "assoc_actor_2": "", "inter2": "", "interaction": "60", "civilian_targeting": "", "iso": "760",
     "region": "Middle East", "country": "Syria", "admin1": "As-Sweida", "admin2": "As-Sweida", "admin3": "",
     "location": "As-Sweida", "latitude": "32.7094", "longitude": "36.5695", "geo_precision": "1",
     "source": "Suwayda 24", "source_scale": "Subnational", "notes": "Residents protested over fuel prices.",
     "fatalities": "0", "tags": "crowd size=dozens", "timestamp": "1642000002"},
]


async def _import(url: str, path: Path, **options):
    return await import_into(url, path, ACLED_FORMAT, **options)


async def _query(url: str, sql: str) -> list[tuple]:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(text(sql))]
    finally:
        await engine.dispose()


async def _event_count(url: str) -> int:
    [(count,)] = await _query(url, "SELECT count(*) FROM events")
    return count


async def _acled_records(url: str) -> list[tuple[str, int, str]]:
    """The ACLED events' external ids, with the fatalities their record claims and its title."""
    return await _query(url, """
        SELECT x.external_id, c.value_best, d.title FROM event_external_ids x
          JOIN claims c ON c.event_id = x.event_id AND c.predicate = 'fatalities' AND c.dataset = 'acled'
          JOIN documents d ON d.id = c.document_id
         WHERE x.dataset = 'acled' ORDER BY 1""")


async def _written(url: str) -> list[tuple]:
    """What the knowledge base holds and has recorded: events, change feed entries, row versions."""
    return await _query(url, "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM changes), "
                             "(SELECT count(*) FROM change_sets)")


async def test_an_api_export_imports_with_its_actors_sources_and_figures(fresh_database_url, redis_url, tmp_path):
    report = await _import(fresh_database_url, write_csv(tmp_path / "api.csv", API_COLUMNS, API_ROWS))
    assert (report.inserted, report.rejected_count) == (3, 0)
    async with app_client(fresh_database_url, redis_url) as client:
        strike = (await client.get("/v1/events/acled:SYR90001")).json()
        assert (strike["event_type"], strike["sub_event_type"]) == ("Explosions/Remote violence", "Air/drone strike")
        assert strike["date_start"] == strike["date_end"] == "2022-01-05" and strike["date_precision"] == "day"
        assert strike["fatalities"]["best"] == 3
        assert strike["summary"].startswith("On 5 January 2022, Russian warplanes")
        roles = {a["role"]: a for a in strike["actors"]}
        assert roles["perpetrator"]["actor"]["name"] == "Military Forces of Russia (2000-)"
        assert roles["perpetrator"]["status"] == "alleged"
        assert roles["target"]["actor"]["name"] == "Civilians (Syria)"
        sources = sorted(c["claimant"]["name"] for c in strike["claims"] if c["predicate"] == "occurred")
        assert sources == ["Step News Agency", "Syrian Observatory for Human Rights"]  # SOHR: the seed's, by alias

        clash = (await client.get("/v1/events/acled:SYR90002")).json()
        assert (clash["date_start"], clash["date_end"], clash["date_precision"]) == ("2022-01-04", "2022-01-10", "week")
        assert {a["role"] for a in clash["actors"]} == {"participant"}
        assert len(clash["actors"]) == 3  # actor1, actor2 and the associated YPG
        # the seed's governorate, found through its spelling "Al Hasakah"
        assert (await client.get("/v1/events", params={"admin1": "Hasakeh", "external_id": "acled:SYR90002"})
                ).json()["data"]

        protest = (await client.get("/v1/events/acled:SYR90003")).json()
        assert (protest["date_start"], protest["date_end"]) == ("2022-01-01", "2022-01-31")
        assert protest["fatalities"]["best"] == 0
    again = await _import(fresh_database_url, write_csv(tmp_path / "api.csv", API_COLUMNS, API_ROWS))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)


async def test_an_old_uppercase_export_with_written_dates_and_old_types(fresh_database_url, redis_url, tmp_path):
    columns = ["EVENT_ID_CNTY", "EVENT_DATE", "YEAR", "TIME_PRECISION", "EVENT_TYPE", "ACTOR1", "ALLY_ACTOR_1",
               "INTER1", "ACTOR2", "ALLY_ACTOR_2", "INTER2", "INTERACTION", "COUNTRY", "ADMIN1", "ADMIN2", "ADMIN3",
               "LOCATION", "LATITUDE", "LONGITUDE", "GEO_PRECISION", "SOURCE", "NOTES", "FATALITIES"]
    rows = [
        {"EVENT_ID_CNTY": "SYR1001", "EVENT_DATE": "05 January 2016", "YEAR": "2016", "TIME_PRECISION": "1",
         "EVENT_TYPE": "Remote violence", "ACTOR1": "Military Forces of Syria (2000-)",
         "ALLY_ACTOR_1": "Military Forces of Russia (2000-)", "INTER1": "1", "ACTOR2": "Civilians (Syria)",
         "INTER2": "7", "COUNTRY": "Syria", "ADMIN1": "Aleppo", "LOCATION": "Aleppo", "LATITUDE": "36.2021",
         "LONGITUDE": "37.1343", "GEO_PRECISION": "1", "SOURCE": "SANA", "NOTES": "Shelling of Aleppo.",
         "FATALITIES": "4"},
        {"EVENT_ID_CNTY": "SYR1002", "EVENT_DATE": "6 February 2016", "YEAR": "2016", "TIME_PRECISION": "1",
         "EVENT_TYPE": "Battle-Government regains territory", "ACTOR1": "Military Forces of Syria (2000-)",
         "INTER1": "1", "ACTOR2": "Syrian insurgents", "INTER2": "2", "COUNTRY": "Syria", "ADMIN1": "Aleppo",
         "LOCATION": "Nubl", "LATITUDE": "36.3753", "LONGITUDE": "36.9928", "GEO_PRECISION": "1",
         "SOURCE": "AFP", "NOTES": "", "FATALITIES": "20"},
    ]
    report = await _import(fresh_database_url, write_csv(tmp_path / "old.csv", columns, rows))
    assert (report.inserted, report.rejected_count) == (2, 0), report.rejected
    async with app_client(fresh_database_url, redis_url) as client:
        shelling = (await client.get("/v1/events/acled:SYR1001")).json()
        assert (shelling["event_type"], shelling["sub_event_type"]) == ("Explosions/Remote violence",
                                                                         "Shelling/artillery/missile attack")
        assert shelling["date_start"] == "2016-01-05"
        # the ally is a participant; actor1 the perpetrator
        assert {(a["role"], a["actor"]["name"]) for a in shelling["actors"]} >= {
            ("perpetrator", "Military Forces of Syria (2000-)"), ("participant", "Military Forces of Russia (2000-)")}
        regained = (await client.get("/v1/events/acled:SYR1002")).json()
        assert regained["sub_event_type"] == "Government regains territory"
        assert regained["date_start"] == "2016-02-06"
        assert regained["summary"]  # no notes: a summary is made from the type and actor


async def test_short_dates_and_no_optional_columns_get_stable_ids(fresh_database_url, tmp_path):
    columns = ["event_date", "event_type", "sub_event_type", "actor1", "actor2", "country", "location", "latitude",
               "longitude", "source", "fatalities"]
    rows = [{"event_date": "05-Jan-22", "event_type": "Violence against civilians", "sub_event_type": "Attack",
             "actor1": "Unidentified Armed Group (Syria)", "actor2": "Civilians (Syria)", "country": "Syria",
             "location": "Dael", "latitude": "32.7563", "longitude": "36.1317", "source": "Horan Free League",
             "fatalities": "1"},
            {"event_date": "09-Jan-22", "event_type": "Violence against civilians", "sub_event_type": "Attack",
             "actor1": "Unidentified Armed Group (Syria)", "actor2": "Civilians (Syria)", "country": "Syria",
             "location": "Tafas", "latitude": "32.7367", "longitude": "35.9731", "source": "Horan Free League",
             "fatalities": "2"}]
    before = await _event_count(fresh_database_url)
    first = await _import(fresh_database_url, write_csv(tmp_path / "short.csv", columns, rows))
    assert (first.inserted, first.rejected_count) == (2, 0), first.rejected
    again = await _import(fresh_database_url, write_csv(tmp_path / "short.csv", columns, rows))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    # without ACLED's ids a row with another figure is another event, not a revision
    rows[1]["fatalities"] = "3"
    revised = await _import(fresh_database_url, write_csv(tmp_path / "short.csv", columns, rows))
    assert (revised.inserted, revised.updated, revised.unchanged) == (1, 0, 1)
    assert await _event_count(fresh_database_url) == before + 3


async def test_broken_rows_are_reported_with_their_lines(fresh_database_url, tmp_path):
    good = API_ROWS[0]
    broken = [
        ({**good, "event_id_cnty": "B1", "fatalities": "ten"}, "fatalities 'ten' is not a whole number"),
        ({**good, "event_id_cnty": "B2", "event_date": "2022-02-30"}, "event_date '2022-02-30' is not a date that exists"),
        ({**good, "event_id_cnty": "B3", "event_date": "31 February 2022"}, "is not a date that exists"),
        ({**good, "event_id_cnty": "B4", "event_date": "30-Feb-22"}, "is not a date that exists"),
        ({**good, "event_id_cnty": "B5", "event_date": "next week"}, "is not a date (2022-01-05"),
        ({**good, "event_id_cnty": "B6", "latitude": ""}, "latitude is missing"),
        ({**good, "event_id_cnty": "B7", "sub_event_type": "Drone swarm"}, "is not a pair of the ACLED taxonomy"),
        ({**good, "event_id_cnty": "B8", "fatalities": "-1"}, "fatalities -1 is below 0"),
    ]
    rows = [good, *(row for row, _ in broken), API_ROWS[1]]
    report = await _import(fresh_database_url, write_csv(tmp_path / "broken.csv", API_COLUMNS, rows))
    assert report.inserted == 2
    got = sorted((r.line, r.reason) for r in report.rejected)
    assert [line for line, _ in got] == list(range(3, 3 + len(broken)))  # header on line 1, `good` on 2
    for (_, reason), (_, expected) in zip(got, broken):
        assert expected in reason, (reason, expected)


NO_ID = {**API_ROWS[0], "event_id_cnty": ""}


async def test_rows_without_ids_that_differ_in_any_column_are_events_of_their_own(fresh_database_url, tmp_path):
    rows = [NO_ID, {**NO_ID, "fatalities": "5"}, {**NO_ID, "tags": "local administrators"}]
    report = await _import(fresh_database_url, write_csv(tmp_path / "no_ids.csv", API_COLUMNS, rows))
    assert (report.inserted, report.rejected_count) == (3, 0), report.rejected
    records = await _acled_records(fresh_database_url)
    assert sorted(best for _, best, _ in records) == [3, 3, 5]  # each with its own fatalities claim
    assert len({external_id for external_id, _, _ in records}) == 3
    assert all(external_id.startswith("row-") for external_id, _, _ in records)


async def test_rows_identical_in_every_column_are_numbered_and_a_reimport_writes_nothing(fresh_database_url,
                                                                                         tmp_path):
    rows = [NO_ID, {**NO_ID, "fatalities": "5"}, NO_ID, NO_ID]
    path = write_csv(tmp_path / "repeats.csv", API_COLUMNS, rows)
    first = await _import(fresh_database_url, path, batch_size=2)  # the repeats in both batches
    assert (first.inserted, first.rejected_count) == (4, 0), first.rejected
    records = await _acled_records(fresh_database_url)
    repeated = sorted((r for r in records if r[1] == 3), key=lambda r: len(r[0]))
    row_id = repeated[0][0]
    assert [(external_id, title) for external_id, _, title in repeated] == [
        (row_id, f"ACLED event {row_id}"), (f"{row_id}-2", f"ACLED event {row_id}-2"),
        (f"{row_id}-3", f"ACLED event {row_id}-3")]

    written = await _written(fresh_database_url)
    for batch_size in (2, 3, 5000):  # numbered by file order, whatever the batches
        again = await _import(fresh_database_url, path, batch_size=batch_size)
        assert (again.inserted, again.updated, again.unchanged, again.rejected_count) == (0, 0, 4, 0)
    assert await _written(fresh_database_url) == written
    assert await _acled_records(fresh_database_url) == records


async def test_a_derived_id_stays_in_the_old_header_spelling_and_with_an_empty_column_added(fresh_database_url,
                                                                                            tmp_path):
    row = {**NO_ID, "assoc_actor_1": "Military Forces of Syria (2000-)"}
    first = await _import(fresh_database_url, write_csv(tmp_path / "new.csv", API_COLUMNS, [row, row]))
    assert (first.inserted, first.rejected_count) == (2, 0), first.rejected
    records = await _acled_records(fresh_database_url)
    old_names = {"assoc_actor_1": "ALLY_ACTOR_1", "assoc_actor_2": "ALLY_ACTOR_2"}
    spelling = {column: old_names.get(column, column.upper()) for column in API_COLUMNS}
    old = write_csv(tmp_path / "old.csv", [*spelling.values(), "ADMIN4"],  # (ADMIN4 left empty)
                    [{spelling[column]: value for column, value in row.items()}] * 2)
    again = await _import(fresh_database_url, old)
    assert (again.inserted, again.updated, again.unchanged, again.rejected_count) == (0, 0, 2, 0)
    assert await _acled_records(fresh_database_url) == records
