"""Bulk loads (db/bulk.py): what a killed load leaves is finished by the next start; a
load still running is not finished under its feet; its batches are in the feed as
they commit."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from db.bulk import (BULK_LOAD_LOCK, BulkLoadRunning, _drop_secondary_indexes, bulk_load, finish_batch_at_end,
                     finish_interrupted_bulk_load, start_batch_finished_at_end, start_bulk_load, take_generation)
from db.engine import make_engine
from db.imports.run import ImportRefused
from db.imports.ucdp import UCDP_FORMAT
from db.migrate import upgrade
from tests.conftest import app_client, as_, run_conflictkb, import_into, ucdp_extract_rows, write_csv

_EVENT_INDEXES = text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events' ORDER BY 1")
_THREE_EVENTS = text("""
    INSERT INTO events (id, event_type, sub_event_type, date_start, date_end, date_precision, place_id, geo_precision)
    SELECT gen_random_uuid(), 'Battles', 'Armed clash', '2031-02-01', '2031-02-01', 'day',
           (SELECT id FROM places WHERE iso3 = 'IRQ'), 'country' FROM generate_series(1, 3)""")


async def test_a_load_killed_without_its_indexes_gets_them_back_at_the_next_start(fresh_engine):
    async with fresh_engine.connect() as conn:
        indexes = (await conn.execute(_EVENT_INDEXES)).all()
    async with fresh_engine.begin() as conn:  # what bulk_load does first; then the process is killed
        await conn.execute(text("UPDATE data_generation SET rollup_stale = true"))
        await _drop_secondary_indexes(conn, {"events": ("ix_events_date",)})
    async with fresh_engine.connect() as conn:
        left = {name for name, _ in (await conn.execute(_EVENT_INDEXES)).all()}
    assert left == {"events_pkey", "ix_events_date"}
    async with fresh_engine.begin() as conn:
        assert await finish_interrupted_bulk_load(conn)
    async with fresh_engine.connect() as conn:
        assert (await conn.execute(_EVENT_INDEXES)).all() == indexes
        assert await conn.scalar(text("SELECT count(*) FROM indexes_to_rebuild")) == 0
    async with fresh_engine.begin() as conn:
        assert not await finish_interrupted_bulk_load(conn)


async def test_a_start_beside_a_running_load_refuses_to_finish_it(fresh_engine):
    async with bulk_load(fresh_engine):
        async with fresh_engine.begin() as conn:
            with pytest.raises(BulkLoadRunning, match="is running on this database"):
                await finish_interrupted_bulk_load(conn)
        with pytest.raises(BulkLoadRunning):  # nor does a second load start
            async with bulk_load(fresh_engine):
                pass
    async with fresh_engine.begin() as conn:
        assert not await finish_interrupted_bulk_load(conn)  # the load finished itself


async def test_seed_beside_a_running_load_says_so(fresh_engine, fresh_database_url):
    async with fresh_engine.connect() as holder:
        await holder.execute(text("UPDATE data_generation SET rollup_stale = true"))
        await holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": BULK_LOAD_LOCK})
        await holder.commit()
        seeded = await asyncio.to_thread(run_conflictkb, fresh_database_url, "seed")
        assert seeded.returncode == 1
        assert "a bulk load (conflictkb generate) is running on this database" in seeded.stderr
        assert "Traceback" not in seeded.stderr


async def test_a_batch_is_in_the_feed_when_it_commits(fresh_engine, fresh_database_url, redis_url):
    async with app_client(fresh_database_url, redis_url) as client:
        before = (await client.get("/v1/changes", params={"limit": 1000})).json()
        async with bulk_load(fresh_engine):
            async with fresh_engine.begin() as conn:
                await start_bulk_load(conn)
                await conn.execute(_THREE_EVENTS)
                await take_generation(conn)
            # the load has not finished: its committed batch is listed already
            after = (await client.get("/v1/changes", params={"since": before["next_cursor"]})).json()
            assert [(e["type"], e["op"]) for e in after["data"]] == [("event", "created")] * 3


async def test_a_first_load_builds_the_events_indexes_once_at_its_end(databases, tmp_path):
    name = "t_first_load"
    databases.pg._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    databases.pg._psql(f'CREATE DATABASE "{name}"')
    url = databases.pg.url(name)
    try:
        await asyncio.to_thread(upgrade, url)  # migrated, nothing seeded: no event
        index_oids = text("SELECT indexrelid::regclass::text, indexrelid::int FROM pg_index "
                          "WHERE indrelid = 'events'::regclass ORDER BY 1")
        engine = make_engine(url, pool_size=1)
        try:
            async with engine.connect() as conn:
                before = dict((await conn.execute(index_oids)).all())
            columns, rows = ucdp_extract_rows()
            report = await import_into(url, write_csv(tmp_path / "first.csv", columns, rows[:40]), UCDP_FORMAT)
            assert report.inserted == 40
            async with engine.connect() as conn:
                after = dict((await conn.execute(index_oids)).all())
                left = await conn.scalar(text("SELECT rollup_stale OR EXISTS (SELECT 1 FROM indexes_to_rebuild) "
                                              "FROM data_generation"))
            assert after.keys() == before.keys() and not left
            # each secondary index built anew (a new oid), the primary key kept
            assert {n for n in before if before[n] != after[n]} == set(before) - {"events_pkey"}
        finally:
            await engine.dispose()
    finally:
        databases.drop(name)


async def test_into_empty_is_refused_where_there_are_events(fresh_database_url, tmp_path):
    columns, rows = ucdp_extract_rows()
    with pytest.raises(ImportRefused, match="--into-empty is for a first load"):
        await import_into(fresh_database_url, write_csv(tmp_path / "more.csv", columns, rows[:3]), UCDP_FORMAT,
                          into_empty=True)


# What a load leaves in the knowledge base, record by record: rows of the loaded tables
# (their derived columns included), the monthly rollup, and the change feed's entries.
_LOADED = {
    "events": "SELECT id, fatalities_best, fatality_claim_ids, search_vector::text, country_id, admin1_id, "
              "location::text FROM events",
    "claims": "SELECT id, event_id, document_id, value_best FROM claims",
    "event_actors": "SELECT event_id, actor_id, role, status, date_start FROM event_actors",
    "documents": "SELECT id FROM documents",
    "places": "SELECT id, parent_id FROM places",
    "place_lineage": "SELECT ancestor_id, descendant_id FROM place_lineage",
    "actors": "SELECT id FROM actors",
    "event_external_ids": "SELECT dataset, external_id, event_id FROM event_external_ids",
    "event_month_counts": "SELECT level, start_month, country_id, admin1_id, admin2_id, sub_event_type, events, "
                          "fatalities_best FROM event_month_counts",
    "changes": "SELECT record_type, record_id, op FROM changes",
}
# ... and what its linking leaves
_LINKED = {
    "event_matches": "SELECT event_id, other_id, status, linked FROM event_matches",
    "happening_members": "SELECT event_id, happening_id FROM happening_members",
}
# The history's order by time is the commit order (0 when it is)
_DATED_OUT_OF_ORDER = text("""
    SELECT count(*) FROM (SELECT at < lag(at) OVER (ORDER BY generation, id) AS early FROM change_sets) AS s
     WHERE early""")


async def test_a_first_load_on_two_connections_leaves_what_one_connection_would(databases, tmp_path):
    columns, rows = ucdp_extract_rows()
    path = write_csv(tmp_path / "first.csv", columns, rows[:150])
    loaded = {}
    for name, into_empty in (("t_two_writers", True), ("t_one_writer", False)):
        databases.pg._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        databases.pg._psql(f'CREATE DATABASE "{name}"')
        url = databases.pg.url(name)
        try:
            await asyncio.to_thread(upgrade, url)  # migrated, nothing seeded: no event
            # 8 batches: a first load writes them two at a time; the other, one by one
            report = await import_into(url, path, UCDP_FORMAT, batch_size=20, into_empty=into_empty)
            assert report.inserted == 150
            engine = make_engine(url, pool_size=1)
            try:
                async with engine.connect() as conn:
                    loaded[name] = {table: sorted(map(tuple, (await conn.execute(text(sql))).all()), key=str)
                                    for table, sql in _LOADED.items()}
                    # each transaction has a generation of its own, in commit order
                    taken = (await conn.execute(text("SELECT generation FROM write_generations"))).scalars().all()
                    assert len(taken) == len(set(taken))
            finally:
                await engine.dispose()
        finally:
            databases.drop(name)
    two, one = loaded["t_two_writers"], loaded["t_one_writer"]
    assert len(two["events"]) == 150 and len(two["changes"]) > 150
    for table in _LOADED:
        assert two[table] == one[table], table


async def test_an_import_into_a_serving_knowledge_base_on_two_connections_leaves_what_one_would(databases, tmp_path):
    """Batches prepared apart are written two at a time into a knowledge base that holds
    events: new ones, changed ones and unchanged ones, matched with the seed's events."""
    columns, rows = ucdp_extract_rows()
    # the seed's events are of April and May 2018: UCDP's of those months are their candidates
    chosen = [dict(r) for r in rows if r["date_start"][:7] in ("2018-04", "2018-05")][:160]
    before = write_csv(tmp_path / "before.csv", columns, chosen[:60])
    for row in chosen[:10]:  # changed since
        row["best"] = str(int(row["best"]) + 1)
        row["high"] = str(max(int(row["high"]), int(row["best"])))
    path = write_csv(tmp_path / "now.csv", columns, chosen)
    loaded = {}
    for name, apart in (("t_serving_two_writers", True), ("t_serving_one_writer", False)):
        url = databases.create(name)  # the seeded knowledge base
        try:
            await import_into(url, before, UCDP_FORMAT)
            # 8 batches: prepared apart, written two at a time; else one by one
            report = await import_into(url, path, UCDP_FORMAT, batch_size=20, prepare_apart=apart)
            assert (report.inserted, report.updated, report.unchanged) == (100, 10, 50)
            engine = make_engine(url, pool_size=1)
            try:
                async with engine.connect() as conn:
                    loaded[name] = {table: sorted(map(tuple, (await conn.execute(text(sql))).all()), key=str)
                                    for table, sql in {**_LOADED, **_LINKED}.items()}
                    assert await conn.scalar(_DATED_OUT_OF_ORDER) == 0
                    # the rollup kept batch by batch is what it is rebuilt to
                    await conn.execute(text("SELECT rebuild_event_month_counts()"))
                    rebuilt = sorted(map(tuple, (await conn.execute(text(_LOADED["event_month_counts"]))).all()),
                                     key=str)
                    assert rebuilt == loaded[name]["event_month_counts"]
                    await conn.rollback()
            finally:
                await engine.dispose()
        finally:
            databases.drop(name)
    two, one = loaded["t_serving_two_writers"], loaded["t_serving_one_writer"]
    assert len(two["event_matches"]) > 10  # the seed's events' candidates among them
    for table in {**_LOADED, **_LINKED}:
        assert two[table] == one[table], table


async def test_a_batch_finished_at_its_end_keeps_no_write_waiting_and_is_dated_when_it_takes_its_turn(
        fresh_engine):
    async with fresh_engine.connect() as batch, fresh_engine.connect() as other:
        await start_batch_finished_at_end(batch)
        await batch.execute(_THREE_EVENTS)
        # a write meanwhile (one taking the generation at its first statement, as the API's
        # do) neither waits for the batch's generation nor for its rows of the rollup
        await other.execute(text("SET LOCAL lock_timeout = '2s'"))
        await other.execute(_THREE_EVENTS)
        other_generation = await take_generation(other)
        await other.commit()
        assert await finish_batch_at_end(batch) == other_generation + 1
        await batch.commit()
    async with fresh_engine.connect() as conn:
        assert await conn.scalar(_DATED_OUT_OF_ORDER) == 0
        # the batch's events are in the rollup, once
        counted = await conn.scalar(text("SELECT events FROM event_month_counts WHERE level = 0 "
                                         "AND start_month = '2031-02-01' AND sub_event_type = 'Armed clash'"))
        assert counted == 6


async def _until_waiting_on_locks(conn, backends: int) -> None:
    """Until `backends` sessions of this database wait for a lock."""
    for _ in range(200):
        waiting = await conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                         "AND wait_event_type = 'Lock'"))
        await conn.rollback()
        if waiting >= backends:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{backends} sessions never waited for a lock together")


async def test_an_api_write_to_an_event_an_import_batch_is_changing_waits_for_the_batch(
        fresh_database_url, fresh_client, keys, fresh_engine, tmp_path):
    """An API write takes the generation first, then locks its record; a batch taking its
    place at its end must take it before it changes a stored record, or the two would
    wait for each other (the write for the record, the batch for the generation)."""
    columns, rows = ucdp_extract_rows()
    row = dict(rows[0])
    await import_into(fresh_database_url, write_csv(tmp_path / "before.csv", columns, [row]), UCDP_FORMAT)
    row["best"] = str(int(row["best"]) + 1)
    row["high"] = str(max(int(row["high"]), int(row["best"])))
    row["latitude"] = f"{float(row['latitude']) + 0.001:.6f}"  # a column of the event's own row
    url = f"/v1/events/ucdp-ged:{row['id']}"
    async with fresh_engine.connect() as blocker, fresh_engine.connect() as watcher:
        # the batch held up after it changed the event (at its roles), before its end
        await blocker.execute(text("LOCK TABLE event_actors IN SHARE ROW EXCLUSIVE MODE"))
        importing = asyncio.ensure_future(
            import_into(fresh_database_url, write_csv(tmp_path / "changed.csv", columns, [row]), UCDP_FORMAT))
        await _until_waiting_on_locks(watcher, 1)
        writing = asyncio.ensure_future(fresh_client.patch(url, json={"summary": "Edited."},
                                                           headers=as_(keys["editor"])))
        await _until_waiting_on_locks(watcher, 2)
        await blocker.rollback()
        report = await importing
        answer = await writing
    assert report.updated == 1
    assert answer.status_code == 200, answer.text
    event = (await fresh_client.get(url)).json()
    assert event["summary"] == "Edited." and event["fatalities"]["best"] == int(row["best"])
    assert event["latitude"] == float(row["latitude"])
