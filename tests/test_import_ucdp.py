"""`conflictkb import ucdp`: slices of the real UCDP GED Syria extract, in its own layout
and in the full release's, re-imported, changed, broken and dry-run."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from api.cli import main as cli
from db.engine import make_engine
from db.imports.loader import IMPORT_NAMESPACE
from db.imports.source_file import ImportFileError
from db.imports.ucdp import UCDP_FORMAT
from db.seed import load_seed_dir
from tests.conftest import app_client, import_into, ucdp_extract_rows, write_csv

COUNTED = ("events", "claims", "documents", "places", "actors", "event_actors", "event_external_ids")


@pytest.fixture(scope="module")
def extract_slice() -> tuple[list[str], list[dict[str, str]]]:
    """The extract's first 150 rows plus rows of each kind worth checking."""
    columns, rows = ucdp_extract_rows()
    wanted = rows[:150]
    picks = [
        lambda r: r["adm_1"] == "Al Hasakah Governorate",       # the seed's governorate
        lambda r: r["type_of_violence"] == "3",                 # one-sided: perpetrator and target
        lambda r: r["source_office"].count(";") >= 2,           # three sources or more
        lambda r: r["id"] == "219459",                          # best (142) outside low..high (177..177)
        lambda r: r["date_prec"] == "4" and r["date_start"] != r["date_end"],
        lambda r: r["where_prec"] == "6",                       # only the country is known
        lambda r: r["where_prec"] == "5" and r["adm_1"],        # a region within a governorate
    ]
    for pick in picks:
        wanted.append(next(r for r in rows if pick(r) and r not in wanted))
    return columns, wanted


async def _import(url: str, path: Path, **options):
    return await import_into(url, path, UCDP_FORMAT, **options)


async def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return {table: await conn.scalar(text(f"SELECT count(*) FROM {table}")) for table in COUNTED}
    finally:
        await engine.dispose()


async def test_a_slice_imports_and_every_figure_traces_to_its_claims(fresh_database_url, redis_url, extract_slice,
                                                                     tmp_path):
    columns, rows = extract_slice
    before = await _counts(fresh_database_url)
    report = await _import(fresh_database_url, write_csv(tmp_path / "slice.csv", columns, rows))
    assert (report.inserted, report.updated, report.unchanged, report.rejected_count) == (len(rows), 0, 0, 0)
    after = await _counts(fresh_database_url)
    assert after["events"] - before["events"] == len(rows)
    assert after["event_external_ids"] - before["event_external_ids"] == len(rows)

    by_id = {r["id"]: r for r in rows}
    async with app_client(fresh_database_url, redis_url) as client:
        # resolvable by the GED id, with UCDP's figures as a claim and each source as one
        multi = next(r for r in rows if r["source_office"].count(";") >= 2)
        event = (await client.get(f"/v1/events/ucdp-ged:{multi['id']}")).json()
        assert {"dataset": "ucdp-ged", "id": multi["id"]} in event["external_ids"]
        assert event["fatalities"]["best"] == int(multi["best"])
        occurred = [c for c in event["claims"] if c["predicate"] == "occurred"]
        assert len(occurred) == multi["source_office"].count(";") + 1
        # SOHR is the seed's monitor, found by its alias, not a new actor
        seeded = {"SOHR": "Syrian Observatory for Human Rights"}
        assert {c["claimant"]["name"] for c in occurred} == {seeded.get(o, o) for o in multi["source_office"].split(";")}
        figures = next(c for c in event["claims"] if c["predicate"] == "fatalities")
        assert figures["claimant"]["name"] == "Uppsala Conflict Data Program"
        assert event["fatalities"]["low"] == int(multi["low"])
        assert event["fatalities"]["high"] == int(multi["high"])

        # a best outside low..high: bounds widened to hold it, the claim quotes the row
        odd = (await client.get("/v1/events/ucdp-ged:219459")).json()
        assert (odd["fatalities"]["low"], odd["fatalities"]["best"], odd["fatalities"]["high"]) == (142, 142, 177)
        assert any("low 177, best 142, high 177" in (c["quote"] or "") for c in odd["claims"])

        # one-sided violence: UCDP asserts the perpetrator (alleged: one source, no denial)
        one_sided = next(r for r in rows if r["type_of_violence"] == "3")
        event = (await client.get(f"/v1/events/ucdp-ged:{one_sided['id']}")).json()
        by_role = {a["role"]: a for a in event["actors"]}
        assert by_role["perpetrator"]["status"] == "alleged"
        for role, side in (("perpetrator", "side_a"), ("target", "side_b")):  # (by name or alias: IS, SDF...)
            named = (await client.get("/v1/actors", params={"q": one_sided[side]})).json()["data"]
            assert by_role[role]["actor"]["id"] in {a["id"] for a in named}
        assert event["event_type"] == "Violence against civilians"

        # the seed's governorate is reused, not created again under another id
        hasakah = next(r for r in rows if r["adm_1"] == "Al Hasakah Governorate")
        listed = (await client.get("/v1/events", params={"admin1": "Hasakah", "external_id": f"ucdp-ged:{hasakah['id']}"})).json()
        assert len(listed["data"]) == 1
        places = (await client.get("/v1/places", params={"q": "Al Hasakah Governorate", "kind": "admin1"})).json()
        assert len(places["data"]) == 1

        # only the country known: the event is placed at the country
        country_only = next(r for r in rows if r["where_prec"] == "6")
        event = (await client.get(f"/v1/events/ucdp-ged:{country_only['id']}")).json()
        assert event["geo_precision"] == "country" and event["place"]["kind"] == "country"

        # a region UCDP places in a governorate ("Northern Hamah Governorate") is in it:
        # found by that admin1 (and compared at it when linking)
        region = next(r for r in rows if r["where_prec"] == "5" and r["adm_1"])
        event = (await client.get(f"/v1/events/ucdp-ged:{region['id']}")).json()
        assert event["geo_precision"] == "region" and event["place"]["name"] == region["where_coordinates"]
        listed = (await client.get("/v1/events", params={"admin1": region["adm_1"],
                                                         "external_id": f"ucdp-ged:{region['id']}"})).json()
        assert [e["id"] for e in listed["data"]] == [event["id"]]

        # a date known to the month keeps its interval
        monthly = next(r for r in rows if r["date_prec"] == "4" and r["date_start"] != r["date_end"])
        event = (await client.get(f"/v1/events/ucdp-ged:{monthly['id']}")).json()
        assert (event["date_start"], event["date_end"]) == (monthly["date_start"], monthly["date_end"])
        assert event["date_precision"] in ("month", "year")

        # the external_id filter, and the seeded article untouched
        some = [rows[0]["id"], rows[1]["id"]]
        listed = (await client.get("/v1/events", params=[("external_id", f"ucdp-ged:{i}") for i in some])).json()
        assert sorted(e["id"] for e in listed["data"]) == sorted(
            [(await client.get(f"/v1/events/ucdp-ged:{i}")).json()["id"] for i in some])
        assert (await client.get("/v1/events/conflictkb-seed:al-qasr-strike")).status_code == 200
    assert by_id  # (used above)


async def test_reimport_adds_nothing_and_the_full_release_layout_is_the_same_data(fresh_database_url, extract_slice,
                                                                                   tmp_path):
    columns, rows = extract_slice
    # prepared in a process of its own (as a large file is), then here: the same rows
    first = await _import(fresh_database_url, write_csv(tmp_path / "slice.csv", columns, rows), prepare_apart=True,
                          batch_size=50)
    counts = await _counts(fresh_database_url)
    again = await _import(fresh_database_url, write_csv(tmp_path / "again.csv", columns, rows))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, first.inserted)
    assert await _counts(fresh_database_url) == counts

    # The full release: more columns, another order, datetimes, gzipped.
    extra = ["relid", "code_status", "where_description", "side_a_dset_id", "side_b_dset_id", "gwnoa"]
    full_columns = list(reversed(columns)) + extra
    full_rows = [{**r, "relid": f"SYR-{r['id']}", "code_status": "Clear", "where_description": "",
                  "side_a_dset_id": "", "side_b_dset_id": "", "gwnoa": "652",
                  "date_start": r["date_start"] + " 00:00:00.000", "date_end": r["date_end"] + " 00:00:00.000"}
                 for r in rows]
    release = await _import(fresh_database_url, write_csv(tmp_path / "release.csv.gz", full_columns, full_rows, gz=True))
    assert (release.inserted, release.updated, release.unchanged, release.rejected_count) == (0, 0, len(rows), 0)
    assert await _counts(fresh_database_url) == counts

    # Seeding again leaves what the import added to seeded records (UCDP's id of IS) alone.
    engine = make_engine(fresh_database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            # the ids are the UUIDv5s an import has always made (anywhere, by any version)
            event_id, claim_ids = (await conn.execute(text("""
                SELECT x.event_id, array_agg(c.id) FROM event_external_ids x JOIN claims c USING (event_id)
                 WHERE x.dataset = 'ucdp-ged' AND x.external_id = :id GROUP BY x.event_id"""),
                {"id": rows[0]["id"]})).one()
            assert event_id == uuid.uuid5(IMPORT_NAMESPACE, f"event:ucdp-ged:{rows[0]['id']}")
            assert uuid.uuid5(IMPORT_NAMESPACE, f"claim:ucdp-ged:{rows[0]['id']}:fatalities") in claim_ids
            ucdp_ids = "SELECT count(*) FROM actor_external_ids WHERE dataset = 'ucdp-actor'"
            before = await conn.scalar(text(ucdp_ids))
            await load_seed_dir(conn)
            assert await conn.scalar(text(ucdp_ids)) == before > 0
    finally:
        await engine.dispose()


async def test_a_changed_row_updates_its_event_in_place(fresh_database_url, redis_url, extract_slice, tmp_path):
    columns, rows = extract_slice
    await _import(fresh_database_url, write_csv(tmp_path / "slice.csv", columns, rows))
    counts = await _counts(fresh_database_url)
    multi = next(r for r in rows if r["source_office"].count(";") >= 2)
    changed = dict(multi, best=str(int(multi["best"]) + 1), high=str(int(multi["high"]) + 1),
                   source_office=multi["source_office"].rsplit(";", 1)[0],
                   source_date=multi["source_date"].rsplit(";", 1)[0],
                   source_headline=multi["source_headline"].rsplit(";", 1)[0],
                   source_article=multi["source_article"].rsplit(";", 1)[0])
    report = await _import(fresh_database_url, write_csv(tmp_path / "changed.csv", columns,
                                                      [changed if r is multi else r for r in rows]))
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, len(rows) - 1)
    after = await _counts(fresh_database_url)
    assert after["claims"] == counts["claims"] - 1      # the dropped source's claim, and only it
    assert after["events"] == counts["events"]
    async with app_client(fresh_database_url, redis_url) as client:
        event = (await client.get(f"/v1/events/ucdp-ged:{multi['id']}")).json()
    assert event["fatalities"]["best"] == int(multi["best"]) + 1
    assert len([c for c in event["claims"] if c["predicate"] == "occurred"]) == multi["source_office"].count(";")


@pytest.mark.parametrize("apart", [False, True], ids=["prepared here", "prepared apart"])
async def test_broken_rows_are_reported_by_line_and_the_rest_imports(fresh_database_url, extract_slice, tmp_path, apart):
    columns, rows = extract_slice
    good = rows[:20]
    broken = [
        (dict(rows[20], best="many"), "best 'many' is not a whole number"),
        (dict(rows[21], low="-3"), "low -3 is below 0"),
        (dict(rows[22], date_start="2018-02-30", date_end="2018-02-30"), "date_start '2018-02-30' is not a date that exists"),
        (dict(rows[23], latitude="", longitude=""), "latitude is missing"),
        (dict(rows[24], date_end="2015-01-01"), "is before date_start"),
        (dict(rows[25], type_of_violence="9"), "type_of_violence 9 is not 1, 2 or 3"),
        (dict(rows[26], latitude="95.5"), "latitude 95.5 is outside -90..90"),
    ]
    mixed = good[:10] + [row for row, _ in broken] + good[10:]
    path = write_csv(tmp_path / "broken.csv", columns, mixed)
    with path.open("a") as file:
        file.write("1234567,2018,oops\n")  # a row cut short
    report = await _import(fresh_database_url, path, prepare_apart=apart, batch_size=8)
    assert report.inserted == len(good)
    assert report.rejected_count == len(broken) + 1
    # line 1 is the header: the first broken row is on line 12
    expected = [(12 + i, reason) for i, (_, reason) in enumerate(broken)]
    got = [(r.line, r.reason) for r in report.rejected]
    for (line, reason), (got_line, got_reason) in zip(expected, got):
        assert got_line == line and reason in got_reason, (got_line, got_reason)
    assert got[-1] == (len(mixed) + 2, f"has 3 fields, the header has {len(columns)}")


@pytest.mark.parametrize("apart", [False, True], ids=["prepared here", "prepared apart"])
async def test_dry_run_counts_and_writes_nothing(fresh_database_url, extract_slice, tmp_path, apart):
    columns, rows = extract_slice
    counts = await _counts(fresh_database_url)
    report = await _import(fresh_database_url, write_csv(tmp_path / "slice.csv", columns, rows[:40]), dry_run=True,
                           batch_size=15, prepare_apart=apart)
    assert (report.inserted, report.rejected_count) == (40, 0)
    assert await _counts(fresh_database_url) == counts


async def test_a_file_without_ucdp_columns_is_refused_by_name(fresh_database_url, tmp_path):
    path = tmp_path / "acled.csv"
    path.write_text("event_id_cnty,event_date,actor1\nSYR1,2020-01-01,X\n")
    with pytest.raises(ImportFileError, match="no column id, type_of_violence"):
        await _import(fresh_database_url, path)


def test_the_command_reports_rejected_lines_and_a_summary(fresh_database_url, extract_slice, tmp_path,
                                                          monkeypatch):
    columns, rows = extract_slice
    path = write_csv(tmp_path / "cli.csv", columns, [rows[0], dict(rows[1], best="x"), rows[2]])
    monkeypatch.setenv("DATABASE_URL", fresh_database_url)
    result = CliRunner().invoke(cli, ["import", "ucdp", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}:3: rejected: best 'x' is not a whole number" in result.output
    assert "import ucdp: 2 inserted, 0 updated, 0 unchanged, 1 rejected" in result.output
    result = CliRunner().invoke(cli, ["import", "ucdp", str(path), "--dry-run"])
    assert "import ucdp (dry run, nothing written): 0 inserted, 0 updated, 2 unchanged, 1 rejected" in result.output
