"""The floor under any importer on this machine: how fast PostgreSQL takes the rows an
imported event becomes, with their indexes, when nothing else happens (no parsing, no
foreign keys, no triggers, nothing derived).

    .venv/bin/python bench/import_rate.py --acled-rows 50000   # an imported database in var/bench-import
    .venv/bin/python bench/insert_floor.py                     # its import_acled database

For each table, N existing rows are copied into a temporary table, and from there with
one INSERT ... SELECT into an empty copy of the table with all its indexes (CREATE TABLE
... LIKE ... INCLUDING ALL); the copy is dropped. Prints rows/s per table and what one
event costs at the database's average rows per event.
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

TABLES = ("events", "claims", "event_actors", "event_external_ids", "documents")


async def measure(url: str, rows: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        events = await conn.fetchval("SELECT count(*) FROM events")
        print(f"{events:,} events in the database; {rows:,} rows per table\n")
        print("| table | indexes | rows per event | rows/s | us per row | us per event |")
        print("|---|---:|---:|---:|---:|---:|")
        total = 0.0
        for table in TABLES:
            per_event = await conn.fetchval(f"SELECT count(*) FROM {table}") / events
            indexes = await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE tablename = $1", table)
            async with conn.transaction():
                copied = await conn.fetchval(f"WITH c AS (SELECT * FROM {table} LIMIT {rows}) SELECT count(*) FROM c")
                await conn.execute(f"CREATE TEMP TABLE floor_source AS SELECT * FROM {table} LIMIT {rows}")
                await conn.execute(f"CREATE TABLE floor_{table} (LIKE {table} INCLUDING ALL)")
                started = time.perf_counter()
                await conn.execute(f"INSERT INTO floor_{table} SELECT * FROM floor_source")
                seconds = time.perf_counter() - started
                await conn.execute(f"DROP TABLE floor_{table}; DROP TABLE floor_source")
            us_per_row = seconds * 1e6 / max(copied, 1)
            total += us_per_row * per_event
            print(f"| {table} | {indexes} | {per_event:.2f} | {copied / seconds:,.0f} | {us_per_row:.1f} | "
                  f"{us_per_row * per_event:.1f} |")
        print(f"\nOne event's rows: {total:.0f} us, at most {1e6 / total:,.0f} events/s on one connection.")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench-import")
    parser.add_argument("--database", default="import_acled")
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    pg = EmbeddedPostgres(args.data_dir, args.database)
    pg.start()
    try:
        asyncio.run(measure(pg.url(args.database).replace("postgresql+asyncpg://", "postgresql://"), args.rows))
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
