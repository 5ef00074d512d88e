"""New events derived in staging (db/derive.py's derive_staged_events) come out as
recompute_events and the rows' triggers make them once stored: every derived column of
the events (figures, search text, place context), every role (with those named in
claims added) with its status, claims and dates."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.derive import derive_staged_events, empty_staging, recompute_events
from db.engine import copy_rows, make_engine
from db.generate import CLAIM_COLUMNS, EVENT_COLUMNS, ROLE_COLUMNS, Generator, stage_batch
from db.seed import seed_id

_DERIVED = ("fatalities_low, fatalities_best, fatalities_high, civilian_fatalities_low, civilian_fatalities_best, "
            "civilian_fatalities_high, fatality_claim_ids, search_vector::text, country_id, admin1_id, admin2_id, "
            "location::text")


async def _derived(conn: AsyncConnection, events: str = "events", event_actors: str = "event_actors",
                   ids: str = "(SELECT id FROM new_events)") -> tuple[dict, dict]:
    """The derived values in `events` and `event_actors` of the events `ids` (a relation):
    event id -> its derived columns; (event, actor, role) -> (status, status claim ids,
    dates)."""
    figures = await conn.execute(text(f"SELECT id, {_DERIVED} FROM {events} WHERE id IN {ids}"))
    roles = await conn.execute(text(f"""
        SELECT event_id, actor_id, role, status, status_claim_ids, date_start, date_end
          FROM {event_actors} WHERE event_id IN {ids}"""))
    return ({row[0]: tuple(row[1:]) for row in figures},
            {(r.event_id, r.actor_id, r.role): (r.status, r.status_claim_ids, r.date_start, r.date_end)
             for r in roles})


def _assert_same(staged: tuple[dict, dict], stored: tuple[dict, dict]) -> None:
    (staged_events, staged_roles), (stored_events, stored_roles) = staged, stored
    assert staged_events.keys() == stored_events.keys()
    assert {k: v for k, v in staged_events.items() if v != stored_events[k]} == {}
    assert staged_roles.keys() == stored_roles.keys()
    assert {k: v for k, v in staged_roles.items() if v != stored_roles[k]} == {}


async def test_the_stored_events_staged_again_derive_as_stored(database_url):
    # The seed's events (stored by recompute_events) copied into staging with nothing
    # derived, and without the roles that only claims name.
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            await empty_staging(conn)
            await conn.execute(text("INSERT INTO new_events SELECT * FROM events"))
            await conn.execute(text("""
                UPDATE new_events SET fatalities_low = NULL, fatalities_best = NULL, fatalities_high = NULL,
                       civilian_fatalities_low = NULL, civilian_fatalities_best = NULL,
                       civilian_fatalities_high = NULL, fatality_claim_ids = '{}', search_vector = NULL,
                       country_id = NULL, admin1_id = NULL, admin2_id = NULL, location = NULL"""))
            await conn.execute(text("INSERT INTO new_claims SELECT * FROM claims"))
            await conn.execute(text("""
                INSERT INTO new_event_actors SELECT * FROM event_actors ea
                 WHERE NOT EXISTS (SELECT 1 FROM claims c WHERE c.event_id = ea.event_id AND c.predicate = ea.role
                                                            AND c.value_actor_id = ea.actor_id)"""))
            await conn.execute(text("UPDATE new_event_actors SET status = NULL, status_claim_ids = '{}', "
                                    "date_start = NULL, date_end = NULL"))

            await derive_staged_events(conn)
            staged = await _derived(conn, "new_events", "new_event_actors")
            _assert_same(staged, await _derived(conn))

            statuses = {role[0] for role in staged[1].values()}
            assert {"confirmed", "contested", "alleged", "unknown"} <= statuses
            al_qasr = staged[1][(seed_id("event", "al-qasr-strike"), seed_id("actor", "us-led-coalition"),
                                 "perpetrator")]
            assert al_qasr[0] == "contested" and len(al_qasr[1]) == 2
            assert staged[0][seed_id("event", "al-qasr-strike")][7]  # a search text
            await conn.rollback()
    finally:
        await engine.dispose()


async def test_a_generated_batch_derives_in_staging_as_stored(fresh_database_url):
    # The same batch twice: staged and derived there, and inserted and recomputed.
    generator = Generator(seed=11)
    engine = make_engine(fresh_database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await generator.build_world(conn)
            batch = list(generator.events(600))
            await stage_batch(conn, batch)
            await derive_staged_events(conn)

            await copy_rows(conn, "events", EVENT_COLUMNS, [e for e, _, _ in batch])
            await copy_rows(conn, "event_actors", ROLE_COLUMNS, [r for _, roles, _ in batch for r in roles])
            await copy_rows(conn, "claims", CLAIM_COLUMNS, [c for _, _, claims in batch for c in claims])
            await recompute_events(conn, [e["id"] for e, _, _ in batch])

            staged = await _derived(conn, "new_events", "new_event_actors")
            _assert_same(staged, await _derived(conn))
            assert len(staged[0]) == 600
            assert {"alleged", "contested", "unknown"} <= {role[0] for role in staged[1].values()}
            assert any(figures[1] for figures in staged[0].values())  # some deaths
    finally:
        await engine.dispose()


async def test_imported_events_are_stored_as_recompute_events_makes_them(shipped_database_url):
    # The shipped datasets' 16,580 events went in derived in staging (the importer's write):
    # recomputing them changes nothing, nor does the rows' triggers' work done again.
    engine = make_engine(shipped_database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            imported = "(SELECT event_id FROM event_external_ids)"
            as_imported = await _derived(conn, ids=imported)
            await recompute_events(conn, list(as_imported[0]))
            await conn.execute(text(f"UPDATE events SET place_id = place_id WHERE id IN {imported}"))
            await conn.execute(text(f"UPDATE event_actors SET event_id = event_id WHERE event_id IN {imported}"))
            _assert_same(as_imported, await _derived(conn, ids=imported))
            assert len(as_imported[0]) > 16_000
            assert {"alleged"} <= {role[0] for role in as_imported[1].values()}
            assert all(figures[8] for figures in as_imported[0].values())  # every one in a country
            await conn.rollback()
    finally:
        await engine.dispose()
