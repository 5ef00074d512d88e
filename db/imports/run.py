"""An import of one file: read, map, load in batches, report."""

from __future__ import annotations

import asyncio
import hashlib
from contextlib import suppress
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.bulk import EVENT_TABLES_WITHOUT_INDEXES, bulk_load, start_bulk_load, take_generation
from db.imports.formats import seed_dataset_files
from db.imports.loader import IMPORT_LOCK, Loader
from db.imports.records import Format, ImportedEvent, ImportReport, Rejected, RowError
from db.imports.source_file import CsvSource
from db.metrics import IMPORT_ROWS
from db.seed import apply_seed_links


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


def _parsed_batches(source: CsvSource, file_format: Format, batch_size: int
                    ) -> Iterator[tuple[list[ImportedEvent], list[tuple[int, str]], bool]]:
    """The file's rows parsed, `batch_size` events at a time, each batch with the rows
    rejected on the way (line, reason) and whether it is the last (maybe empty)."""
    batch: list[ImportedEvent] = []
    rejects: list[tuple[int, str]] = []
    for row in source.rows():
        if row.width_error:
            rejects.append((row.line, row.width_error))
            continue
        try:
            batch.append(file_format.parse(row.values, row.line))
        except RowError as error:
            rejects.append((row.line, str(error)))
            continue
        if len(batch) >= batch_size:
            yield batch, rejects, False
            batch, rejects = [], []
    yield batch, rejects, True


async def import_file(engine: AsyncEngine, path: Path, file_format: Format, *, dry_run: bool = False,
                      batch_size: int = 5000, progress: Callable[[int, int, int], None] | None = None,
                      on_reject: Callable[[Rejected], None] | None = None, sha256: str | None = None,
                      into_empty: bool | None = None) -> ImportReport:
    """Import `path`; with `dry_run`, everything is done and counted but rolled back.

    Each batch commits on its own (a reader sees the import progress; after a failure a
    second run picks up where it stopped, writing nothing for what is already in).
    `progress(bytes read, file size, rows read)` is called after each batch.

    `into_empty` (a first load; by default, when the knowledge base holds no event): the
    events' secondary indexes are taken down for the import and built once at its end
    (db/bulk.py: a killed import leaves them to the next start); True refuses a
    knowledge base that holds events."""
    async with engine.connect() as conn:
        holds_events = await conn.scalar(text("SELECT EXISTS (SELECT 1 FROM events)"))
    if into_empty and holds_events:
        raise ImportRefused("--into-empty is for a first load, and the knowledge base holds events already")
    if into_empty is False or holds_events or dry_run:
        return await _import_file(engine, path, file_format, dry_run, batch_size, progress, on_reject, sha256)
    async with bulk_load(engine, without_indexes=EVENT_TABLES_WITHOUT_INDEXES):
        return await _import_file(engine, path, file_format, dry_run, batch_size, progress, on_reject, sha256,
                                  bulk=True)


async def _import_file(engine: AsyncEngine, path: Path, file_format: Format, dry_run: bool, batch_size: int,
                       progress: Callable[[int, int, int], None] | None,
                       on_reject: Callable[[Rejected], None] | None, sha256: str | None,
                       bulk: bool = False) -> ImportReport:
    """(`bulk`: each batch is a bulk load's, db/bulk.py: the rollup is built once at the
    end, and the batch takes its generation last.)"""
    source = CsvSource(path)
    try:
        source.require(file_format.required_columns, file_format.name)
        sha256 = sha256 or file_sha256(path)
        report = ImportReport(on_reject=on_reject)
        committed = _CommittedRows(file_format.dataset)
        loader = Loader()
        async with engine.connect() as conn:
            # for the whole import, across its transactions (released below, or when the session ends)
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": IMPORT_LOCK})
            # who the history names for everything this import writes (for the session: reset below)
            await conn.execute(text("SELECT set_config('conflictkb.actor', :who, false)"),
                               {"who": f"import {file_format.name} {path.name}"})
            upcoming: asyncio.Future | None = None
            try:
                batches = 0
                # Batch N+1 is read and parsed in a thread while batch N loads: the loading
                # is PostgreSQL's work, and the parsing has the interpreter to itself meanwhile.
                parsed = _parsed_batches(source, file_format, batch_size)
                upcoming = asyncio.ensure_future(asyncio.to_thread(next, parsed))
                while True:
                    batch, rejects, last = await upcoming
                    if not last:
                        upcoming = asyncio.ensure_future(asyncio.to_thread(next, parsed))
                    for line, reason in rejects:
                        report.reject(line, reason)
                    if bulk:
                        await start_bulk_load(conn)
                    await loader.load(conn, batch, report)
                    if last:
                        break
                    batches += 1
                    if batches & (batches - 1) == 0:  # 1, 2, 4, 8...: as the tables grow
                        await analyze_loaded_tables(conn)
                    if not dry_run:
                        if bulk:
                            await take_generation(conn)
                        await conn.commit()
                        committed(report)
                    if progress:
                        progress(source.position, source.size, report.rows_read)
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
                    committed(report)
                if progress:
                    progress(source.size, source.size, report.rows_read)
            finally:
                if upcoming is not None and not upcoming.done():  # (a failed load: the thread ends its batch)
                    with suppress(Exception):
                        await upcoming
                if conn.in_transaction():
                    await conn.rollback()
                await conn.execute(text("SELECT pg_advisory_unlock(:key), set_config('conflictkb.actor', '', false)"),
                                   {"key": IMPORT_LOCK})
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
