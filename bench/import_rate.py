"""Import rate: the UCDP Syria extract and generated ACLED-format rows, events per
second and the importer's memory (with the process preparing its batches).

    .venv/bin/python bench/import_rate.py                      # extract + 1,000,000 ACLED rows
    .venv/bin/python bench/import_rate.py --acled-rows 100000  # quicker

Each file is imported by `conflictkb import` (a child process, as a user runs it) into a
fresh database of its own on an embedded PostgreSQL in var/bench-import (migrated and
seeded with the article only, so the figures are the import's); the ACLED file a second
time into a database migrated and not seeded: an empty knowledge base, which the
importer loads as a first load (its events' indexes built once at the end). The importer's resident
memory is sampled every half second: "flat memory" means its peak stays the same
whatever the file's size. Into the seeded knowledge bases an editor writes meanwhile,
one write every 0.2 s as the API writes (db/writes: the data generation taken first,
then an event's row changed), to show what a write waits for while an import runs.
Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime as dt
import gzip
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from db.embedded import EmbeddedPostgres  # noqa: E402
from db.engine import make_engine  # noqa: E402
from db.seed import seed_id  # noqa: E402
from db.writes import writing_on  # noqa: E402
from db.generate import COUNTRIES, EVENT_KINDS, SYLLABLES  # noqa: E402

CONFLICTKB = str(Path(sys.executable).parent / "conflictkb")
EXTRACT = ROOT / "seeds" / "ucdp-ged-syria-2016-2019.csv.gz"
ACLED_COLUMNS = ["event_id_cnty", "event_date", "year", "time_precision", "disorder_type", "event_type",
                 "sub_event_type", "actor1", "assoc_actor_1", "inter1", "actor2", "assoc_actor_2", "inter2",
                 "interaction", "civilian_targeting", "iso", "region", "country", "admin1", "admin2", "admin3",
                 "location", "latitude", "longitude", "geo_precision", "source", "source_scale", "notes",
                 "fatalities", "tags", "timestamp"]


def write_acled_rows(path: Path, rows: int, seed: int = 1) -> None:
    """`rows` ACLED-format rows (lowercase API columns), deterministic, streamed to a
    gzipped CSV: 10 countries, each with 15 admin1, 60 admin2 and 2,000 locations, 40
    armed actors and 25 sources; dates over 2010-2024; heavy-tailed fatalities."""
    rng = random.Random(seed)

    def name() -> str:
        return "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3)))).capitalize()

    worlds = []
    for country, _iso2, iso3, (lat0, lon0, lat1, lon1), share in COUNTRIES:
        admin1 = [f"{name()}" for _ in range(15)]
        admin2 = [(rng.choice(admin1), name()) for _ in range(60)]
        locations = [(*rng.choice(admin2), name(), round(rng.uniform(lat0, lat1), 4), round(rng.uniform(lon0, lon1), 4))
                     for _ in range(2000)]
        actors = [f"{name()} {rng.choice(['Brigade', 'Movement', 'Militia', 'Front'])} ({country})" for _ in range(38)]
        actors += [f"Military Forces of {country} (2000-)", f"Police Forces of {country} (2000-)"]
        sources = [f"{name()} {rng.choice(['News', 'Times', 'Monitor', 'Radio'])}" for _ in range(25)]
        worlds.append((country, iso3, share, locations, actors, sources))
    weights = [w[2] for w in worlds]
    kinds = [(t, s) for t, s, _ in EVENT_KINDS]
    kind_weights = [w for _, _, w in EVENT_KINDS]
    first, days = dt.date(2010, 1, 1), (dt.date(2024, 12, 31) - dt.date(2010, 1, 1)).days
    with gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=1) as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(ACLED_COLUMNS)
        for i in range(rows):
            country, iso3, _share, locations, actors, sources = rng.choices(worlds, weights)[0]
            admin1, admin2, location, lat, lon = locations[min(int(rng.paretovariate(0.8)), 2000) - 1]
            event_type, sub_event_type = rng.choices(kinds, kind_weights)[0]
            day = first + dt.timedelta(days=rng.randint(0, days))
            actor1 = rng.choice(actors)
            actor2 = f"Civilians ({country})" if event_type == "Violence against civilians" else rng.choice(actors)
            fatalities = 0 if rng.random() < 0.5 else int(rng.paretovariate(1.3))
            writer.writerow([
                f"{iso3}{i + 1}", day.isoformat(), day.year, rng.choices((1, 2, 3), (85, 10, 5))[0],
                "Political violence", event_type, sub_event_type, actor1, "", "2", actor2, "", "2", "22", "",
                "", "", country, admin1, admin2, "", location, lat, lon, rng.choices((1, 2, 3), (80, 15, 5))[0],
                "; ".join(rng.sample(sources, rng.randint(1, 3))), "National",
                f"{sub_event_type} in {location}: {actor1} and {actor2}; {fatalities} killed.", fatalities, "",
                int(time.mktime(day.timetuple()))])


def fresh_database(pg: EmbeddedPostgres, name: str, seeded: bool = True) -> str:
    """A new database, migrated, with the article seeded (or not: an empty knowledge
    base, which an import loads as a first load, its events' indexes built at the end)."""
    pg._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg._psql(f'CREATE DATABASE "{name}"')
    url = pg.url(name)
    env = {**os.environ, "DATABASE_URL": url, "CONFLICTKB_LOG_LEVEL": "warning"}
    subprocess.run([sys.executable, "-c", (
        "import asyncio, sys; from db.migrate import upgrade; from db.engine import make_engine; "
        "from db.seed import load_seed_dir\n"
        "url = sys.argv[1]; upgrade(url)\n"
        "async def main():\n"
        "    engine = make_engine(url, pool_size=1)\n"
        "    async with engine.begin() as conn: await load_seed_dir(conn)\n"
        "    await engine.dispose()\n"
        "if sys.argv[2] == 'seeded': asyncio.run(main())"), url, "seeded" if seeded else "empty"],
        env=env, check=True, cwd=ROOT)
    return url


def edits_meanwhile(url: str, importing: threading.Event) -> list[float]:
    """An editor's writes (one every 0.2 s, each as the API makes one: db/writes's
    writing_on, then an UPDATE of the article's strike) for as long as `importing` is
    set: each write's milliseconds, from its start to its commit."""
    async def edit() -> list[float]:
        engine = make_engine(url, pool_size=1)
        waited = []
        try:
            while importing.is_set():
                started = time.perf_counter()
                async with engine.connect() as conn, writing_on(conn, "bench/import_rate.py"):
                    await conn.execute(text("UPDATE events SET summary = :summary WHERE id = :id"),
                                       {"summary": f"Edited beside an import ({len(waited)}).",
                                        "id": seed_id("event", "al-qasr-strike")})
                waited.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.2)
        finally:
            await engine.dispose()
        return waited

    return asyncio.run(edit())


def timed_import(url: str, dataset: str, path: Path, edited: bool = False) -> dict:
    """`conflictkb import` of `path` into `url`, timed, its memory sampled (and with
    `edited`, an editor's writes meanwhile: edits_meanwhile)."""
    env = {**os.environ, "DATABASE_URL": url, "CONFLICTKB_LOG_LEVEL": "warning"}
    importing = threading.Event()
    importing.set()
    edits: list[float] = []
    editor = threading.Thread(target=lambda: edits.extend(edits_meanwhile(url, importing)))
    if edited:
        editor.start()
    started = time.perf_counter()
    proc = subprocess.Popen([CONFLICTKB, "import", dataset, str(path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, int]] = []

    def sample() -> None:
        process = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:  # the importer and the process preparing its batches (db/imports/preparing.py)
                rss = process.memory_info().rss
                for child in process.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        rss += child.memory_info().rss
                samples.append((time.perf_counter() - started, rss))
            except psutil.Error:
                break
            time.sleep(0.5)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    sampler.join()
    importing.clear()
    if edited:
        editor.join()
    if proc.returncode != 0:
        raise SystemExit(f"import {dataset} failed: {err[-2000:]}")
    summary = out.strip().splitlines()[-1]
    inserted = int(summary.split(": ", 1)[1].split(" inserted")[0].replace(",", ""))
    rss = [r for _, r in samples] or [0]
    tenth = max(1, len(rss) // 10)
    edits.sort()
    return {"summary": summary, "seconds": elapsed, "inserted": inserted, "rate": inserted / elapsed,
            "peak_mb": max(rss) / 2**20, "early_mb": max(rss[:tenth]) / 2**20, "late_mb": max(rss[-tenth:]) / 2**20,
            "edits": (f"{edits[len(edits) // 2]:.0f} / {edits[len(edits) * 95 // 100]:.0f} / {edits[-1]:.0f}"
                      if edits else "")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench-import")
    parser.add_argument("--acled-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    acled = args.data_dir / f"acled-{args.acled_rows}.csv.gz"
    if not acled.exists():
        started = time.perf_counter()
        write_acled_rows(acled.with_suffix(".tmp"), args.acled_rows)
        acled.with_suffix(".tmp").rename(acled)
        print(f"wrote {acled} ({acled.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - started:.0f} s",
              flush=True)
    pg = EmbeddedPostgres(args.data_dir)
    pg.start()
    try:
        results = []
        for name, dataset, path, seeded in (("UCDP GED Syria extract", "ucdp", EXTRACT, True),
                                            ("ACLED format, generated rows", "acled", acled, True),
                                            ("ACLED format, into an empty knowledge base", "acled", acled, False)):
            url = fresh_database(pg, f"import_{dataset}", seeded)
            result = timed_import(url, dataset, path, edited=seeded)
            print(f"{name}: {result['summary']}", flush=True)
            results.append((name, path, result))
    finally:
        pg.stop()
    print()
    print("| file | events | seconds | events/s | importer RSS, first tenth (MB) | last tenth (MB) | peak (MB) "
          "| an edit meanwhile, p50 / p95 / max (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, path, r in results:
        print(f"| {name} ({path.name}) | {r['inserted']:,} | {r['seconds']:.1f} | {r['rate']:,.0f} | "
              f"{r['early_mb']:.0f} | {r['late_mb']:.0f} | {r['peak_mb']:.0f} | {r['edits']} |")


if __name__ == "__main__":
    main()
