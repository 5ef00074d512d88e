"""Bulk loads: many batches in parallel transactions, finished once at the end; and
batches that take their place in commit order at their end.

A write takes the data generation (its place in commit order: a row lock held until it
commits) at its first statement. Batches written in parallel would queue on that lock
for their whole length, so they take it as their last step instead: an import's batch
into a knowledge base that holds events (start_batch_finished_at_end, migration 0023)
stashes its rollup changes meanwhile and adds them after taking the generation
(finish_batch_at_end); a bulk load's batch (`conflictkb generate`, a first import: with
BULK_LOAD_SETTING) skips the rollup, rebuilt once at the load's end, and takes its
generation last (take_generation). Either way its rows are in the feed, the history
and the answer cache's keys as it commits, dated when it took its turn. A large load
also takes the events' secondary indexes down and builds them once at the end.

What a load leaves to do is written down as it goes (the rollup marked stale, the
indexes it dropped in `indexes_to_rebuild`, migration 0019), so a load that is killed
at any point is finished by the next start (finish_interrupted_bulk_load, which serve,
seed and generate call): indexes built, rollup rebuilt. A load still running holds
BULK_LOAD_LOCK, and a start that finds it refuses with a message instead of finishing
a load under its feet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

BULK_LOAD_SETTING = "conflictkb.bulk_load"
# The tables whose secondary indexes a large load takes down (maintained row by row they
# cost more than one build at the end), with those it keeps: the derivation reads claims
# by event.
EVENT_TABLES_WITHOUT_INDEXES = {"events": (), "event_actors": (), "claims": ("ix_claims_event",)}
# Held (session level) by the process running a bulk load, for its whole length.
BULK_LOAD_LOCK = 727004


class BulkLoadRunning(RuntimeError):
    """Another process is running a bulk load on this database."""

    def __init__(self) -> None:
        super().__init__("a bulk load (conflictkb generate) is running on this database: start again when it "
                         "has finished (its indexes and monthly rollup are built at its end)")


async def start_bulk_load(conn: AsyncConnection) -> None:
    """This transaction is a batch of a bulk load (see the module's docstring): it must
    call take_generation last."""
    await conn.execute(text(f"SET LOCAL {BULK_LOAD_SETTING} = 'on'"))


GENERATION_AT_END_SETTING = "conflictkb.generation_at_end"


async def start_batch_finished_at_end(conn: AsyncConnection) -> None:
    """This transaction takes its place in commit order at its end (migration 0023): its
    statements neither take the generation nor add to the monthly rollup as they go, so
    a second connection writing another batch, or the API, is not kept waiting by it;
    it must call finish_batch_at_end last (before what it links)."""
    await conn.execute(text(f"SET LOCAL {GENERATION_AT_END_SETTING} = 'on'"))


async def finish_batch_at_end(conn: AsyncConnection) -> int:
    """A batch of start_batch_finished_at_end's: its generation taken (its history dated
    now), then its events added to the monthly rollup; the generation. (In that order:
    every write takes the generation before the rollup's rows, so none waits for the
    other in a circle.)"""
    generation = await take_generation(conn)
    await conn.execute(text("SELECT add_stashed_month_counts()"))
    return generation


async def take_generation(conn: AsyncConnection) -> int:
    """Move the data generation for this transaction (once; migration 0018's
    take_generation()): a bulk load's batch calls it as its last step, so its history
    and feed entries are in commit order with every other write's, as it commits."""
    return await conn.scalar(text("SELECT take_generation()"))


async def _drop_secondary_indexes(conn: AsyncConnection, keep: Mapping[str, Sequence[str]]) -> None:
    """Drop the secondary indexes of the tables of `keep` (but the ones it names, and
    unique ones), writing each definition down in the same transaction."""
    for table, kept in keep.items():
        rows = (await conn.execute(text("""
            SELECT i.relname AS name, pg_get_indexdef(ix.indexrelid) AS definition
              FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid
             WHERE ix.indrelid = CAST(:table AS regclass) AND NOT ix.indisprimary AND NOT ix.indisunique
             ORDER BY i.relname"""), {"table": table})).all()
        for row in rows:
            if row.name in kept:
                continue
            await conn.execute(text("INSERT INTO indexes_to_rebuild (name, definition) VALUES (:name, :definition) "
                                    "ON CONFLICT (name) DO NOTHING"), {"name": row.name, "definition": row.definition})
            await conn.execute(text(f'DROP INDEX "{row.name}"'))


async def _rebuild_dropped_indexes(conn: AsyncConnection) -> None:
    """Build the indexes a load dropped (one built before a kill is not built twice)."""
    rows = (await conn.execute(text("SELECT name, definition FROM indexes_to_rebuild ORDER BY name"))).all()
    for row in rows:
        if not await conn.scalar(text("SELECT to_regclass(quote_ident(:name)) IS NOT NULL"), {"name": row.name}):
            await conn.execute(text(row.definition))
        await conn.execute(text("DELETE FROM indexes_to_rebuild WHERE name = :name"), {"name": row.name})


async def finish_bulk_load(conn: AsyncConnection) -> None:
    """After bulk loads: the indexes they dropped built again, the monthly rollup
    rebuilt (migration 0006), and the generation moved for it (the batches moved it for
    their own rows, see take_generation; one that did not gets this one). Maintenance:
    no statement budget."""
    await conn.execute(text("SET LOCAL statement_timeout = 0"))
    await _rebuild_dropped_indexes(conn)
    await conn.execute(text("SELECT rebuild_event_month_counts()"))
    generation = await take_generation(conn)
    await conn.execute(text("UPDATE data_generation SET rollup_stale = false"))
    # A batch that committed without taking one (a loader that forgot) is in the feed and
    # the history from here: its entries would have no place in commit order otherwise.
    await conn.execute(text("""
        INSERT INTO write_generations (txid, generation)
        SELECT DISTINCT c.txid, CAST(:generation AS bigint) FROM changes c
         WHERE NOT EXISTS (SELECT 1 FROM write_generations w WHERE w.txid = c.txid)"""), {"generation": generation})
    await conn.execute(text("UPDATE change_sets SET generation = :generation WHERE generation IS NULL"),
                       {"generation": generation})


async def finish_interrupted_bulk_load(conn: AsyncConnection) -> bool:
    """Finish a bulk load that died before its end (in `conn`'s transaction); whether
    there was one. Raises BulkLoadRunning if the load is still running."""
    left = await conn.scalar(text(
        "SELECT rollup_stale OR EXISTS (SELECT 1 FROM indexes_to_rebuild) FROM data_generation"))
    if not left:
        return False
    if not await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": BULK_LOAD_LOCK}):
        raise BulkLoadRunning()
    await finish_bulk_load(conn)
    return True


@asynccontextmanager
async def bulk_load(engine: AsyncEngine, *, without_indexes: Mapping[str, Sequence[str]] | None = None
                    ) -> AsyncIterator[None]:
    """A bulk load's length: its lock held, the rollup marked stale and (with
    `without_indexes`: {table: indexes kept}) those tables' secondary indexes dropped
    before; everything finished after, also when the load fails."""
    async with engine.connect() as holder:
        if not await holder.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": BULK_LOAD_LOCK}):
            raise BulkLoadRunning()
        await holder.commit()
        try:
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE data_generation SET rollup_stale = true"))
                if without_indexes:
                    await _drop_secondary_indexes(conn, without_indexes)
            try:
                yield
            finally:
                async with engine.begin() as conn:
                    await finish_bulk_load(conn)
        finally:
            await holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": BULK_LOAD_LOCK})
            await holder.commit()
