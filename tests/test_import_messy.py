"""Imports of messy and changing files: damaged bytes and archives, names without
letters, repeated ids across batches, rows that change their type, sides or place,
roles added by others, linking in either order, and exports an importer can read."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import os
import subprocess
import time

import psutil

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from db.engine import make_engine
from db.imports.acled import ACLED_FORMAT
from db.imports.ucdp import UCDP_FORMAT
from db.linking import TOP_K
from tests.conftest import (CONFLICTKB, UCDP_EXTRACT, app_client, import_into, run_conflictkb, ucdp_extract_rows,
                            write_csv)

ACLED = ["event_id_cnty", "event_date", "time_precision", "event_type", "sub_event_type", "actor1", "actor2",
         "country", "admin1", "location", "latitude", "longitude", "source", "fatalities"]


def _ged(count: int = 30) -> tuple[list[str], list[dict[str, str]]]:
    columns, rows = ucdp_extract_rows()
    return columns, rows[:count]


def _acled(event_id: str, location: str, latitude: float, **more) -> dict:
    return {"event_id_cnty": event_id, "event_date": "2022-01-05", "time_precision": "1", "event_type": "Battles",
            "sub_event_type": "Armed clash", "actor1": "Brigade A", "actor2": "Brigade B", "country": "Syria",
            "admin1": "Homs", "location": location, "latitude": str(latitude), "longitude": "36.7", "source": "AFP",
            "fatalities": "1", **more}


async def _sql(url: str, statement: str, **params):
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return result.all() if result.returns_rows else None
    finally:
        await engine.dispose()


async def test_a_stray_byte_rejects_its_row_and_a_cut_archive_keeps_what_came_before(fresh_database_url, tmp_path):
    columns, rows = _ged(40)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    lines = buffer.getvalue().encode().split(b"\n")
    lines[17] = lines[17].replace(b"SOHR", b"SOHR caf\xe9", 1)     # file line 18: Latin-1, not UTF-8
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(b"\n".join(lines))
    report = await import_into(fresh_database_url, latin1, UCDP_FORMAT)
    assert (report.inserted, report.rejected_count) == (39, 1)
    assert (report.rejected[0].line, report.rejected[0].reason) == (18, "holds bytes that are not UTF-8")

    # a gzip cut off part-way: the rows before the damage import, the damage is reported
    cut = tmp_path / "cut.csv.gz"
    whole = gzip.compress(buffer.getvalue().encode() * 1)
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    report = await import_into(fresh_database_url, cut, UCDP_FORMAT, batch_size=10)
    assert report.rejected_count == 1 and "damaged from here on" in report.rejected[0].reason
    assert 0 < report.unchanged < 40  # (all already imported above)


async def test_names_without_letters_are_rejected_and_other_scripts_import(fresh_database_url, tmp_path):
    rows = [_acled("M1", "حلب", 36.2), _acled("M2", "Tell", 36.3, actor2="?"), _acled("M3", "Tell", 36.3)]
    report = await import_into(fresh_database_url, write_csv(tmp_path / "names.csv", ACLED, rows), ACLED_FORMAT)
    assert report.inserted == 2
    assert [(r.line, r.reason) for r in report.rejected] == [(3, "actor '?' has no letter or digit to match it by")]
    assert await _sql(fresh_database_url, "SELECT name FROM places WHERE name = 'حلب'") == [("حلب",)]


async def test_an_id_repeated_across_batches_is_rejected_and_reimports_settle(fresh_database_url, tmp_path):
    rows = [_acled(f"D{i}", f"Town {i}", 34 + i / 10) for i in range(5)] + [_acled("D1", "Town 1", 34.1,
                                                                                      fatalities="9")]
    path = write_csv(tmp_path / "dup.csv", ACLED, rows)
    # (prepared in a process of its own, as a large file's batches are: it keeps the ids seen)
    first = await import_into(fresh_database_url, path, ACLED_FORMAT, batch_size=2, prepare_apart=True)
    assert (first.inserted, first.rejected_count) == (5, 1)
    assert (first.rejected[0].line, first.rejected[0].reason) == (7, "id D1 was already on line 3; the first row is "
                                                                     "imported")
    again = await import_into(fresh_database_url, path, ACLED_FORMAT, batch_size=2)
    assert (again.inserted, again.updated, again.unchanged, again.rejected_count) == (0, 0, 5, 1)


async def test_localities_settle_whatever_the_row_order(fresh_database_url, tmp_path):
    # three places of one name, 0, 8 and 15 km apart along a meridian: the first row's
    # place is made before the third's, which is nearer to the second row
    rows = [_acled("N1", "Samename", 34.0), _acled("N2", "Samename", 34.072), _acled("N3", "Samename", 34.135)]
    path = write_csv(tmp_path / "near.csv", ACLED, rows)
    assert (await import_into(fresh_database_url, path, ACLED_FORMAT)).inserted == 3
    again = await import_into(fresh_database_url, path, ACLED_FORMAT)
    assert (again.updated, again.unchanged) == (0, 3)


async def test_a_row_that_changes_its_sides_keeps_no_stale_role_and_others_roles_stay(fresh_database_url,
                                                                                       redis_url, tmp_path):
    columns, rows = _ged(400)
    row = next(r for r in rows if r["type_of_violence"] == "3")
    await import_into(fresh_database_url, write_csv(tmp_path / "v3.csv", columns, [row]), UCDP_FORMAT)
    # an editor's participant on the imported event
    await _sql(fresh_database_url, """
        INSERT INTO event_actors (event_id, actor_id, role)
        SELECT x.event_id, a.id, 'participant' FROM event_external_ids x, actors a
         WHERE x.dataset = 'ucdp-ged' AND x.external_id = :id AND a.name = 'Syrian Democratic Forces'""",
               id=row["id"])
    report = await import_into(fresh_database_url, write_csv(tmp_path / "v1.csv", columns,
                                                             [dict(row, type_of_violence="1")]), UCDP_FORMAT)
    assert report.updated == 1
    async with app_client(fresh_database_url, redis_url) as client:
        event = (await client.get(f"/v1/events/ucdp-ged:{row['id']}")).json()
    assert event["event_type"] == "Battles"
    roles = {(a["role"], a["actor"]["name"]) for a in event["actors"]}
    assert {role for role, _ in roles} == {"participant"}      # no perpetrator or target left behind
    assert ("participant", "Syrian Democratic Forces") in roles  # the editor's stays


async def test_matches_do_not_depend_on_which_source_came_first(databases, tmp_path):
    columns, ged = _ged(1)  # UCDP 214797: Teir Maaleh, 2016-01-01, best 4
    ged_year = [dict(ged[0], id="999001", date_start="2016-01-01", date_end="2016-12-31", date_prec="5")]
    acled = [_acled(f"L{i}", "Teir Maaleh", 34.8025 + i / 1000, event_date=f"2016-01-0{1 + i % 3}",
                    longitude="36.7076", fatalities=str(3 + i)) for i in range(25)]
    ged_path = write_csv(tmp_path / "ged.csv", columns, ged + ged_year)
    acled_path = write_csv(tmp_path / "acled.csv", ACLED, acled)
    answers = []
    for order in ((ged_path, UCDP_FORMAT, acled_path, ACLED_FORMAT), (acled_path, ACLED_FORMAT, ged_path, UCDP_FORMAT)):
        name = f"t_order_{len(answers)}_{tmp_path.name[-8:]}"
        url = databases.create(name)
        try:
            await import_into(url, order[0], order[1])
            await import_into(url, order[2], order[3])
            answers.append(await _sql(url, """
                SELECT xa.external_id, xb.external_id, m.score, m.linked FROM event_matches m
                  JOIN event_external_ids xa ON xa.event_id = m.event_id
                  JOIN event_external_ids xb ON xb.event_id = m.other_id
                 ORDER BY 1, 2"""))
        finally:
            databases.drop(name)
    assert answers[0] == answers[1]
    pairs = {tuple(sorted(p[:2])) for p in answers[0]}
    assert len([p for p in pairs if "214797" in p]) == 25     # every clash, not a top 20
    # the year-long record matches inside its year, its list bounded (db/linking.py: the
    # TOP_K best per source, plus the pairs in which it is among the other record's best)
    assert TOP_K <= len([p for p in pairs if "999001" in p]) < 25


async def test_an_export_of_battles_reads_back_as_acled(fresh_database_url, redis_url, tmp_path):
    columns, rows = _ged(20)
    await import_into(fresh_database_url, write_csv(tmp_path / "ged.csv", columns, rows), UCDP_FORMAT)
    async with app_client(fresh_database_url, redis_url) as client:
        exported = (await client.get("/v1/events.csv", params={"country": "SYR"})).text
    path = tmp_path / "export.csv"
    path.write_text(exported)
    report = await import_into(fresh_database_url, path, ACLED_FORMAT, dry_run=True)
    exported_rows = list(csv.DictReader(io.StringIO(exported)))
    located = [r for r in exported_rows if r["latitude"]]
    assert report.inserted == len(located) > len(rows)  # every battle's sides read back as actor1 / actor2
    # (the article's events without coordinates are refused, as in any ACLED file)
    assert {r.reason for r in report.rejected} <= {"latitude is missing"}
    assert report.rejected_count == len(exported_rows) - len(located)


async def test_batches_prepared_apart_stop_the_import_with_the_preparing_error(fresh_database_url, tmp_path):
    columns, rows = ucdp_extract_rows()
    path = write_csv(tmp_path / "slice.csv", columns, rows[:30])
    await import_into(fresh_database_url, path, UCDP_FORMAT, batch_size=10, prepare_apart=True)
    # the preparing process reads the taxonomy; the writer does not: only the preparing fails
    await _sql(fresh_database_url, "ALTER TABLE sub_event_types RENAME TO sub_event_types_gone")
    with pytest.raises(DBAPIError, match='relation "sub_event_types" does not exist'):
        await import_into(fresh_database_url, write_csv(tmp_path / "more.csv", columns, rows[30:60]), UCDP_FORMAT,
                          batch_size=10, prepare_apart=True)
    await _sql(fresh_database_url, "ALTER TABLE sub_event_types_gone RENAME TO sub_event_types")
    assert await _sql(fresh_database_url, "SELECT count(*) FROM event_external_ids WHERE dataset = 'ucdp-ged'") == [(30,)]


def test_an_import_killed_outright_takes_its_preparing_process_with_it(fresh_database_url):
    # the extract (1.2 MB) is prepared in a process of its own; in small batches, that
    # process soon waits for the writer with its queue full
    env = {**os.environ, "DATABASE_URL": fresh_database_url}
    env.pop("REDIS_URL", None)
    importer = subprocess.Popen([str(CONFLICTKB), "import", "ucdp", str(UCDP_EXTRACT), "--batch", "200"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        preparing = None
        for _ in range(200):
            preparing = next((p for p in psutil.Process(importer.pid).children(recursive=True)
                              if "spawn_main" in " ".join(p.cmdline())), None)
            if preparing:
                break
            time.sleep(0.1)
        assert preparing is not None, "the batches are prepared in a process of their own"
        time.sleep(2)
    finally:
        importer.kill()
        importer.wait()
    preparing.wait(timeout=15)  # (psutil.TimeoutExpired if it were still there)


async def test_an_import_that_fails_on_the_database_says_so_in_one_line(fresh_database_url, tmp_path):
    columns, rows = ucdp_extract_rows()
    path = write_csv(tmp_path / "slice.csv", columns, rows[:3])
    await _sql(fresh_database_url, """
        CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'events are refused here'; END $$""")
    await _sql(fresh_database_url, "CREATE TRIGGER tr_refuse BEFORE INSERT ON events FOR EACH STATEMENT "
                                   "EXECUTE FUNCTION refuse()")
    ran = await asyncio.to_thread(run_conflictkb, fresh_database_url, "import", "ucdp", str(path))
    assert ran.returncode == 1
    assert "import slice.csv failed on the database: " in ran.stderr
    assert "events are refused here; the batches committed stay" in ran.stderr
    assert "Traceback" not in ran.stderr
