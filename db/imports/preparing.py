"""An import's batches read, parsed and prepared (db/imports/loader.py's Loader.prepare),
here or in a process of their own, for the import's connection to write.

Preparing a batch is Python's work: parsing ~45 us a row, matching places and actors and
making ids and rows ~100 us an event. Writing it is PostgreSQL's (~280 us an event). In
one process they take turns: a thread does not help, since preparing holds the
interpreter while the writer waits for its next statement's answer. In a second process
(`prepared_apart`), batch N+1 is prepared while batch N is written, on the machine's other
core, and an import's rate is the slower of the two instead of their sum.

The preparing process has a connection of its own. It reads what is committed; what
the batches before have made and not yet committed (new places and actors, the ids seen)
it knows itself, so a batch is prepared the same on either side. Two prepared batches
wait for the writer at most: memory stays flat whatever the file's size.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import queue
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from db.imports.loader import Loader, PreparedBatch
from db.imports.records import Format, ImportedEvent, ImportReport, RowError
from db.imports.source_file import CsvSource

# Files smaller than this are prepared in the import's own process: starting a second
# one (~0.5 s: a fresh interpreter importing the database modules) costs more than it
# saves below a few batches.
PREPARE_APART_FROM_BYTES = 1 << 20
# Prepared batches waiting for the writer, at most.
BATCHES_AHEAD = 2


@dataclass
class PreparedStep:
    """One batch as it comes to the writer."""
    prepared: PreparedBatch | None           # None: no row of the batch is left to write
    rejects: list[tuple[int, str]]           # (line, reason), in the order they were found
    created: Counter = field(default_factory=Counter)   # places and actors the batch makes
    position: int = 0                        # the file's bytes read so far
    last: bool = False


def parsed_batches(source: CsvSource, file_format: Format, batch_size: int
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


async def prepared_here(conn: AsyncConnection, path: Path, file_format: Format, batch_size: int
                        ) -> AsyncIterator[PreparedStep]:
    """The file's batches prepared on `conn` (the writer's, or the preparing process's).
    Batch N+1 is read and parsed in a thread while batch N is prepared and written: the
    parsing has the interpreter while this waits for PostgreSQL."""
    loader = Loader()
    source = CsvSource(path)
    parsed = parsed_batches(source, file_format, batch_size)
    upcoming = asyncio.ensure_future(asyncio.to_thread(next, parsed))
    try:
        while True:
            batch, rejects, last = await upcoming
            position = source.position
            if not last:
                upcoming = asyncio.ensure_future(asyncio.to_thread(next, parsed))
            found = list(rejects)
            report = ImportReport(on_reject=lambda rejected: found.append((rejected.line, rejected.reason)))
            prepared = await loader.prepare(conn, batch, report)
            yield PreparedStep(prepared, found, report.created, position, last)
            if last:
                break
    finally:
        if not upcoming.done():  # (left early: the thread ends its batch before the file closes)
            with suppress(Exception):
                await upcoming
        source.close()


class PreparingFailed(RuntimeError):
    """The preparing process stopped without an exception to show (killed, out of memory)."""


async def prepared_apart(database_url: str, path: Path, file_format: Format, batch_size: int
                         ) -> AsyncIterator[PreparedStep]:
    """The file's batches prepared in a process of its own (spawned: a fork would copy
    this process's event loop and connections). Its exception, if it fails, is raised
    here; leaving the iteration early stops it."""
    context = multiprocessing.get_context("spawn")
    steps = context.Queue(maxsize=BATCHES_AHEAD)
    process = context.Process(target=_prepare_in_child, name="conflictkb-prepare", daemon=True,
                              args=(database_url, path, file_format, batch_size, steps))
    process.start()
    try:
        while True:
            step = await asyncio.to_thread(_next_step, steps, process)
            if isinstance(step, BaseException):
                raise step
            yield step
            if step.last:
                break
    finally:
        if process.is_alive():
            process.terminate()
        await asyncio.to_thread(process.join)
        steps.close()


def _next_step(steps: multiprocessing.Queue, process: multiprocessing.Process) -> PreparedStep | BaseException:
    while True:
        try:
            return steps.get(timeout=0.5)
        except queue.Empty:
            if not process.is_alive() and steps.empty():
                return PreparingFailed(f"the process preparing the import's batches stopped (exit code "
                                       f"{process.exitcode})")


def _prepare_in_child(database_url: str, path: Path, file_format: Format, batch_size: int,
                      steps: multiprocessing.Queue) -> None:
    try:
        asyncio.run(_prepare_all(database_url, path, file_format, batch_size, steps))
    except BaseException as error:  # noqa: BLE001 (shown by the writer, which stops the import)
        _handed_over(steps, _picklable(error))


async def _prepare_all(database_url: str, path: Path, file_format: Format, batch_size: int,
                       steps: multiprocessing.Queue) -> None:
    from db.engine import make_engine

    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            async for step in prepared_here(conn, path, file_format, batch_size):
                await conn.commit()  # the session's tables kept; no snapshot held while the writer works
                if not _handed_over(steps, step):
                    return
    finally:
        with suppress(Exception):
            await engine.dispose()


def _handed_over(steps: multiprocessing.Queue, step: PreparedStep | BaseException) -> bool:
    """Put `step` in the queue, waiting while BATCHES_AHEAD wait there (nothing else runs
    on this process's loop meanwhile); False if the importer has gone (killed: a process
    killed outright takes none of its children with it), which ends this one."""
    while True:
        try:
            steps.put(step, timeout=1)
            return True
        except queue.Full:
            if not multiprocessing.parent_process().is_alive():
                # (the batches in the pipe will never be read: exit without flushing them)
                steps.cancel_join_thread()
                return False


def _picklable(error: BaseException) -> BaseException:
    """The error itself when it survives pickling (a database error names its statement
    and cause), else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(error).__name__}: {error}")
