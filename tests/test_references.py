"""A staged batch's foreign keys checked once per table (db/references.py): a missing
row is named, the rows referred to are locked as the keys' triggers lock them, and the
batch path is only taken where every trigger still fires."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from db.derive import TRIGGERS_DONE_IN_STAGING, insert_staged_events
from db.generate import Generator, stage_batch
from db.references import MissingReference, can_skip_row_checks


async def _staged_batch(conn, seed: int = 3, size: int = 30) -> None:
    generator = Generator(seed)
    await generator.build_world(conn)
    await stage_batch(conn, list(generator.events(size)))


async def test_a_batch_goes_in_with_its_keys_checked_once(fresh_engine):
    async with fresh_engine.begin() as conn:
        assert await can_skip_row_checks(conn, ("events", "event_actors", "claims"), TRIGGERS_DONE_IN_STAGING)
        # (not without the triggers whose work staging does named: they would not fire)
        assert not await can_skip_row_checks(conn, ("events", "event_actors", "claims"))
        await _staged_batch(conn)
        await insert_staged_events(conn)
        # the session is back to checking keys row by row for what follows
        assert await conn.scalar(text("SHOW session_replication_role")) == "origin"
        stored = await conn.scalar(text("SELECT count(*) FROM claims WHERE id IN (SELECT id FROM new_claims)"))
        assert stored == await conn.scalar(text("SELECT count(*) FROM new_claims")) > 0


async def test_a_claim_by_nobody_is_refused_by_name(fresh_engine):
    nobody = uuid.uuid4()
    async with fresh_engine.begin() as conn:
        await _staged_batch(conn)
        await conn.execute(text("UPDATE new_claims SET claimant_id = :nobody "
                                "WHERE id = (SELECT id FROM new_claims ORDER BY id LIMIT 1)"), {"nobody": nobody})
        with pytest.raises(MissingReference, match=rf"claims.claimant_id = \({nobody}\): no such row in actors"):
            await insert_staged_events(conn)
        await conn.rollback()


async def test_the_rows_a_batch_refers_to_cannot_be_deleted_under_it(fresh_engine):
    async with fresh_engine.connect() as loader, fresh_engine.connect() as other:
        await _staged_batch(loader)
        await loader.commit()  # (the world in; the batch staged in the session)
        await insert_staged_events(loader)  # not committed: its claimants are locked
        claimant = await loader.scalar(text("SELECT claimant_id FROM new_claims LIMIT 1"))
        # (a delete would wait on the data generation first, whatever the keys: the
        # lock a delete needs on the row is asked for directly)
        with pytest.raises(Exception, match="could not obtain lock on row"):
            await other.execute(text("SELECT 1 FROM actors WHERE id = :id FOR UPDATE NOWAIT"), {"id": claimant})
        await other.rollback()
        await loader.rollback()


async def test_a_trigger_that_would_not_fire_keeps_the_row_by_row_checks(fresh_engine):
    async with fresh_engine.begin() as conn:
        await conn.execute(text("CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$"))
        await conn.execute(text("CREATE TRIGGER tr_claims_later AFTER INSERT ON claims "
                                "FOR EACH STATEMENT EXECUTE FUNCTION noop()"))
        assert not await can_skip_row_checks(conn, ("events", "event_actors", "claims"), TRIGGERS_DONE_IN_STAGING)
        await _staged_batch(conn)
        await insert_staged_events(conn)  # row by row: still goes in
        await conn.rollback()
