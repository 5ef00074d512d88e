"""An import of one file: read, map, load in batches, report."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from contextlib import AsyncExitStack, suppress
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.bulk import (EVENT_TABLES_WITHOUT_INDEXES, bulk_load, finish_batch_at_end, start_batch_finished_at_end,
                     start_bulk_load, take_generation)
from db.imports.formats import seed_dataset_files
from db.imports.loader import IMPORT_LOCK, Loader, PreparedBatch
from db.imports.preparing import PREPARE_APART_FROM_BYTES, prepared_apart, prepared_here
from db.imports.records import Format, ImportReport, Rejected
from db.imports.source_file import CsvSource
from db.metrics import IMPORT_ROWS
from db.seed import apply_seed_links


# What an import's engine must be able to open at once: a first load holds the bulk load's
# lock on one connection and writes on two (make_engine(url, pool_size=IMPORT_CONNECTIONS)).
IMPORT_CONNECTIONS = 3


class ImportRefused(RuntimeError):
    """The import was asked for what the knowledge base is not in a state for."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def already_imported(conn: AsyncConnection, sha256: str) -> bool:
    return bool(await conn.scalar(text("SELECT true FROM dataset_files WHERE sha256 = :sha"), {"sha": sha256}))


async def analyze_loaded_tables(conn: AsyncConnection) -> None:
    """Fresh planner statistics for the tables an import fills: a first import into an
    empty knowledge base otherwise runs its later batches with plans made for empty
    tables (the derived figures of a batch took 4x longer)."""
    await conn.execute(text("ANALYZE events, claims, event_actors, documents, places, place_names, place_lineage, "
                            "actors, actor_names, event_external_ids, event_matches, happening_members"))


class _CommittedRows:
    """An import's rows in /metrics (db/metrics.py) as their batches commit."""

    def __init__(self, dataset: str):
        self.dataset = dataset
        self.counted = {"inserted": 0, "updated": 0, "unchanged": 0, "rejected": 0}

    def __call__(self, report: ImportReport) -> None:
        for outcome, counted in self.counted.items():
            now = report.rejected_count if outcome == "rejected" else getattr(report, outcome)
            IMPORT_ROWS.labels(self.dataset, outcome).inc(now - counted)
            self.counted[outcome] = now


async def import_file(engine: AsyncEngine, path: Path, file_format: Format, *, dry_run: bool = False,
                      batch_size: int = 5000, progress: Callable[[int, int, int], None] | None = None,
                      on_reject: Callable[[Rejected], None] | None = None, sha256: str | None = None,
                      into_empty: bool | None = None, prepare_apart: bool | None = None) -> ImportReport:
    """Import `path`; with `dry_run`, everything is done and counted but rolled back.

    Each batch commits on its own (a reader sees the import progress; after a failure a
    second run picks up where it stopped, writing nothing for what is already in).
    `progress(bytes read, file size, rows read)` is called after each batch.

    `into_empty` (a first load; by default, when the knowledge base holds no event): the
    events' secondary indexes are taken down for the import and built once at its end
    (db/bulk.py: a killed import leaves them to the next start); True refuses a
    knowledge base that holds events.

    `prepare_apart`: the batches are prepared in a process of their own while this one
    writes (db/imports/preparing.py); by default for files of a megabyte or more, and
    always for a first load (written by two connections at once)."""
    async with engine.connect() as conn:
        holds_events = await conn.scalar(text("SELECT EXISTS (SELECT 1 FROM events)"))
    if into_empty and holds_events:
        raise ImportRefused("--into-empty is for a first load, and the knowledge base holds events already")
    options = {"dry_run": dry_run, "batch_size": batch_size, "progress": progress, "on_reject": on_reject,
               "sha256": sha256, "prepare_apart": prepare_apart}
    if into_empty is False or holds_events or dry_run:
        return await _import_file(engine, path, file_format, **options)
    async with bulk_load(engine, without_indexes=EVENT_TABLES_WITHOUT_INDEXES):
        return await _import_file(engine, path, file_format, **options, bulk=True)


class _Writer:
    """A connection writing an import's batches, with a Loader of its own for the
    writing (the batches are prepared by another); one batch of its own at a time."""

    def __init__(self, conn: AsyncConnection):
        self.conn = conn
        self.loader = Loader()
        self.task: asyncio.Task | None = None

    async def finished(self) -> None:
        """Its batch in flight written (or its error raised)."""
        if self.task is not None:
            task, self.task = self.task, None
            await task


async def _import_file(engine: AsyncEngine, path: Path, file_format: Format, *, dry_run: bool, batch_size: int,
                       progress: Callable[[int, int, int], None] | None,
                       on_reject: Callable[[Rejected], None] | None, sha256: str | None,
                       prepare_apart: bool | None, bulk: bool = False) -> ImportReport:
    """(`bulk`: each batch is a bulk load's, db/bulk.py: the rollup is built once at the
    end. Every batch takes its place in commit order at its end (db/bulk.py,
    start_batch_finished_at_end), so that while it is written neither the API's writes
    nor another batch wait for it, or before it first changes a stored row (see write);
    a dry run never takes one.

    Batches prepared apart (and a first load's, always) are written by two connections
    at once, PostgreSQL's work on two cores: each batch's new places and actors (which
    later batches refer to) committed first, in file order, then its documents and events
    while the other connection writes the batch before or after it. Nothing else of two
    batches meets before their ends: their events, claims and roles are their own, a
    shared document is only inserted or changed, never locked unchanged, and their keys'
    checks share locks; at its end a batch takes the generation, which orders what
    follows (its rollup, its links with other sources' events) after the batch before.)"""
    source = CsvSource(path)
    try:
        source.require(file_format.required_columns, file_format.name)
        sha256 = sha256 or file_sha256(path)
        report = ImportReport(on_reject=on_reject)
        committed = _CommittedRows(file_format.dataset)
        # (a bulk load's batches always: both of its connections write, none is free to prepare)
        apart = bulk or (prepare_apart if prepare_apart is not None else source.size >= PREPARE_APART_FROM_BYTES)
        parallel = apart and not dry_run
        who = f"import {file_format.name} {path.name}"

        async def write(writer: _Writer, prepared: PreparedBatch, number: int) -> None:
            """Batch `number` (1, 2...), in one transaction (with `parallel`, its places
            and actors committed already, by write_references)."""
            await (start_bulk_load if bulk else start_batch_finished_at_end)(writer.conn)
            if not parallel:
                await writer.loader.write_references(writer.conn, prepared, report)
            # Its turn taken before it changes a stored row, which an API write, holding the
            # generation (db/writes/__init__.py's writing_on), may then wait for (a dry
            # run never waits for the generation: it need not take it).
            linked = await writer.loader.write_events(
                writer.conn, prepared, report, take_turn=None if dry_run else lambda: take_generation(writer.conn))
            if number & (number - 1) == 0:  # 1, 2, 4, 8...: as the tables grow
                await analyze_loaded_tables(writer.conn)
            if not dry_run:
                await finish_batch_at_end(writer.conn)
            await writer.loader.link(writer.conn, prepared.dataset, linked, report)
            if not dry_run:
                await writer.conn.commit()
                committed(report)

        async def write_references(writer: _Writer, prepared: PreparedBatch) -> None:
            """A batch's new places and actors, committed (a write of its own, short):
            the next batch, written meanwhile by the other writer, may refer to them."""
            if bulk:
                await start_bulk_load(writer.conn)
            await writer.loader.write_references(writer.conn, prepared, report)
            if bulk:
                await take_generation(writer.conn)
            await writer.conn.commit()

        async with AsyncExitStack() as connections:
            conn = await connections.enter_async_context(engine.connect())
            writers = [_Writer(conn)]
            if parallel:
                writers.append(_Writer(await connections.enter_async_context(engine.connect())))
            # for the whole import, across its transactions (released below, or when the session ends)
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": IMPORT_LOCK})
            for writer in writers:
                # who the history names for everything this import writes (for the session: reset below)
                await writer.conn.execute(text("SELECT set_config('conflictkb.actor', :who, false)"), {"who": who})
                await writer.conn.commit()
            steps = (prepared_apart(engine.url.render_as_string(hide_password=False), path, file_format, batch_size)
                     if apart else prepared_here(conn, path, file_format, batch_size))
            try:
                number = 0
                async for step in steps:
                    for line, reason in step.rejects:
                        report.reject(line, reason)
                    report.created.update(step.created)
                    if step.prepared is not None:
                        number += 1
                        writer = writers[number % len(writers)]
                        await writer.finished()
                        if parallel:  # its references now, its events while the next batch comes
                            await write_references(writer, step.prepared)
                            writer.task = asyncio.ensure_future(write(writer, step.prepared, number))
                        else:
                            await write(writer, step.prepared, number)
                    if progress:
                        progress(step.position, source.size, report.rows_read)
                    if step.last:
                        break
                for writer in writers:
                    await writer.finished()
                if dry_run:
                    await conn.rollback()
                else:
                    await conn.execute(text("""
                        INSERT INTO dataset_files (sha256, dataset, file_name, summary)
                        VALUES (:sha, :dataset, :name, :summary)
                        ON CONFLICT (sha256) DO UPDATE SET imported_at = now(), summary = excluded.summary"""),
                        {"sha": sha256, "dataset": file_format.dataset, "name": path.name,
                         "summary": report.summary()})
                    if bulk:
                        await take_generation(conn)
                    await conn.commit()
                if progress:
                    progress(source.size, source.size, report.rows_read)
            finally:
                await steps.aclose()
                for writer in writers:  # (a failed import: the other writer's batch ends first)
                    with suppress(Exception):
                        await writer.finished()
                for writer in writers:
                    if writer.conn.in_transaction():
                        await writer.conn.rollback()
                    await writer.conn.execute(text("SELECT set_config('conflictkb.actor', '', false)"))
                    await writer.conn.commit()
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": IMPORT_LOCK})
                await conn.commit()
        return report
    finally:
        source.close()


async def import_seed_datasets(engine: AsyncEngine, seeds_dir: Path) -> list[str]:
    """The dataset files of seeds/ (UCDP's Syria extract), each imported unless this
    very file (by content) was imported before: `serve` seeds at every start."""
    done = []
    for path, file_format in seed_dataset_files(seeds_dir):
        sha256 = file_sha256(path)
        async with engine.connect() as conn:
            skip = await already_imported(conn, sha256)
        if skip:
            done.append(f"{path.name}: imported before")
            continue
        report = await import_file(engine, path, file_format, sha256=sha256)
        done.append(f"{path.name}: {report.summary()}")
    async with engine.begin() as conn:  # the seeds' verdicts on records these files brought
        if linked := await apply_seed_links(conn, seeds_dir):
            done.append(f"{linked} seeded verdict(s) applied")
    return done
