"""The floor under any importer on this machine: how fast PostgreSQL takes the rows an
imported event becomes, with their indexes, when nothing else happens (no parsing, no
foreign keys, no triggers, nothing derived).

    .venv/bin/python bench/import_rate.py --acled-rows 50000   # an imported database in var/bench-import
    .venv/bin/python bench/insert_floor.py                     # its import_acled database

For each table, N existing rows are copied into a temporary table, and from there with
one INSERT ... SELECT into an empty copy of the table with all its indexes (CREATE TABLE
... LIKE ... INCLUDING ALL), and into one with its primary key alone (what a first load
into an empty database writes before it builds the other indexes); the copies are
dropped. Prints rows/s per table and what one event costs at the database's average
rows per event; and, with --file, what reading and parsing the file's rows costs one
core (the importer's own first step), and so what 2 cores could do at the very best.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db.embedded import EmbeddedPostgres  # noqa: E402
from db.imports.formats import BY_NAME  # noqa: E402
from db.imports.preparing import parsed_batches  # noqa: E402
from db.imports.source_file import CsvSource  # noqa: E402

TABLES = ("events", "claims", "event_actors", "event_external_ids", "documents")


async def _insert_seconds(conn: asyncpg.Connection, table: str, rows: int, all_indexes: bool) -> tuple[int, float]:
    """(rows, seconds) of one INSERT ... SELECT of `rows` of `table` into an empty copy."""
    async with conn.transaction():
        await conn.execute(f"CREATE TEMP TABLE floor_source AS SELECT * FROM {table} LIMIT {rows}")
        copied = await conn.fetchval("SELECT count(*) FROM floor_source")
        await conn.execute(f"CREATE TABLE floor_{table} (LIKE {table} INCLUDING ALL)" if all_indexes else
                           f"CREATE TABLE floor_{table} (LIKE {table} INCLUDING DEFAULTS INCLUDING GENERATED); "
                           f"ALTER TABLE floor_{table} ADD PRIMARY KEY "
                           f"({', '.join(await _primary_key(conn, table))})")
        started = time.perf_counter()
        await conn.execute(f"INSERT INTO floor_{table} SELECT * FROM floor_source")
        seconds = time.perf_counter() - started
        await conn.execute(f"DROP TABLE floor_{table}; DROP TABLE floor_source")
    return copied, seconds


async def _primary_key(conn: asyncpg.Connection, table: str) -> list[str]:
    return [r["attname"] for r in await conn.fetch("""
        SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)""", table)]


async def measure(url: str, rows: int) -> tuple[float, float]:
    """Prints the table; returns one event's microseconds with all indexes and with
    primary keys alone."""
    conn = await asyncpg.connect(url)
    try:
        events = await conn.fetchval("SELECT count(*) FROM events")
        print(f"{events:,} events in the database; {rows:,} rows per table\n")
        print("| table | indexes | rows per event | rows/s | us per row | us per event | "
              "primary key alone: rows/s | us per event |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        total = bare_total = 0.0
        for table in TABLES:
            per_event = await conn.fetchval(f"SELECT count(*) FROM {table}") / events
            indexes = await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE tablename = $1", table)
            copied, seconds = await _insert_seconds(conn, table, rows, all_indexes=True)
            _, bare_seconds = await _insert_seconds(conn, table, rows, all_indexes=False)
            us_per_row, bare_us_per_row = (seconds * 1e6 / max(copied, 1), bare_seconds * 1e6 / max(copied, 1))
            total += us_per_row * per_event
            bare_total += bare_us_per_row * per_event
            print(f"| {table} | {indexes} | {per_event:.2f} | {copied / seconds:,.0f} | {us_per_row:.1f} | "
                  f"{us_per_row * per_event:.1f} | {copied / bare_seconds:,.0f} | {bare_us_per_row * per_event:.1f} |")
        print(f"\nOne event's rows: {total:.0f} us with all indexes (at most {1e6 / total:,.0f} events/s on one "
              f"connection), {bare_total:.0f} us with primary keys alone ({1e6 / bare_total:,.0f}/s).")
        return total, bare_total
    finally:
        await conn.close()


def parse_us_per_event(path: Path, dataset: str) -> float:
    """One core's microseconds to read and parse one row of the file."""
    source = CsvSource(path)
    try:
        started, parsed = time.process_time(), 0
        for batch, _rejects, _last in parsed_batches(source, BY_NAME[dataset], 5000):
            parsed += len(batch)
        return (time.process_time() - started) * 1e6 / max(parsed, 1)
    finally:
        source.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench-import")
    parser.add_argument("--database", default="import_acled")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--file", type=Path, help="a file of --dataset's format, to time its parsing")
    parser.add_argument("--dataset", default="acled", choices=sorted(BY_NAME))
    args = parser.parse_args()
    pg = EmbeddedPostgres(args.data_dir, args.database)
    pg.start()
    try:
        indexed, bare = asyncio.run(measure(pg.url(args.database).replace("postgresql+asyncpg://", "postgresql://"),
                                            args.rows))
    finally:
        pg.stop()
    if args.file:
        parsing = parse_us_per_event(args.file, args.dataset)
        print(f"Reading and parsing {args.file.name}: {parsing:.0f} us of one core per row.")
        for what, rows_us in (("into a serving database (all indexes)", indexed),
                              ("into an empty one (primary keys alone)", bare)):
            print(f"Both cores busy with nothing but parsing and inserting, {what}: "
                  f"at most {2e6 / (rows_us + parsing):,.0f} events/s.")


if __name__ == "__main__":
    main()
