"""Latency of the representative queries at scale: through HTTP, next to raw SQL.

    make bench-data                                       # 1,000,000 generated events in var/bench
    .venv/bin/python bench/query_latency.py --data-dir var/bench

It migrates the data directory, starts `conflictkb serve` on it, picks real names from
the data (a busy province by one of its alternative spellings, an armed group by its
acronym, a coalition, a monitor, a town's coordinates), and for each query of the table:

- HTTP: --requests sequential requests over one keep-alive connection, after
  --warmup unmeasured ones; p50 / p95 in ms. Every request says `Cache-Control:
  no-cache`, so the answer (its total and stats included) is computed each time,
  never read from Redis;
- SQL: the statements the API runs for that request (captured once, in process),
  executed --requests times over a bare asyncpg connection; p50 / p95 of their sum.

The difference of the two is the cost of the API itself (HTTP, validation, JSON). A
second table measures a few of the same requests answered from the cache
(`X-Cache: hit`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import httpx
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.app import create_app  # noqa: E402
from api.settings import Settings  # noqa: E402
from db.embedded import EmbeddedPostgres, EmbeddedRedis  # noqa: E402
from db.engine import SESSION_SETTINGS  # noqa: E402
from db.pagination import CursorCodec  # noqa: E402
from db.queries.events import EVENT_SORTS  # noqa: E402

SECRET = "bench-secret"
NESTED = """query ($where: EventWhere) { events(first: 50, where: $where) { edges { node {
  id subEventType dateStart place { name ancestors { name } } fatalities { best civilians }
  actors { role status actor { name aliases } } claims { stance predicate quote claimant { name } } } } } }"""


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def pick_names(dsn: str) -> dict:
    """Real values from the generated data, so every filter has work to do."""
    conn = await asyncpg.connect(dsn)
    try:
        busy_admin1 = await conn.fetchrow("""
            SELECT p.id, coalesce((SELECT n.name FROM place_names n WHERE n.place_id = p.id AND n.name <> p.name
                                    ORDER BY n.name LIMIT 1),
                                   lower(replace(p.name, ' Governorate', ' province'))) AS spelling
              FROM (SELECT admin1_id, count(*) FROM events WHERE admin1_id IS NOT NULL
                     GROUP BY admin1_id ORDER BY count(*) DESC LIMIT 1) busiest
              JOIN places p ON p.id = busiest.admin1_id""")
        group = await conn.fetchrow("""
            SELECT a.id, (SELECT n.name FROM actor_names n WHERE n.actor_id = a.id AND n.name ~ '^[A-Z]+$'
                           LIMIT 1) AS acronym
              FROM actors a WHERE a.kind = 'armed_group'
               AND EXISTS (SELECT 1 FROM actor_names n WHERE n.actor_id = a.id AND n.name ~ '^[A-Z]+$')
             ORDER BY a.name LIMIT 1""")
        coalition = await conn.fetchval("""
            SELECT g.name FROM actor_memberships ms JOIN actors g ON g.id = ms.group_id
             GROUP BY g.name ORDER BY count(*) DESC, g.name LIMIT 1""")
        monitor = await conn.fetchval("SELECT name FROM actors WHERE kind = 'monitor' ORDER BY name LIMIT 1")
        town = await conn.fetchrow("""
            SELECT p.latitude, p.longitude FROM places p
             WHERE p.id = (SELECT place_id FROM events GROUP BY place_id ORDER BY count(*) DESC LIMIT 1)""")
        page_1000_key = await conn.fetchrow(
            "SELECT date_start, id FROM events ORDER BY date_start DESC, id DESC OFFSET 49949 LIMIT 1")
        event_id = await conn.fetchval("SELECT id FROM events ORDER BY date_start DESC, id DESC LIMIT 1 OFFSET 1000")
        # a town of middling fame: text search by a name, as analysts do
        word = await conn.fetchval("""
            SELECT p.name FROM events e JOIN places p ON p.id = e.place_id WHERE p.kind = 'locality'
             GROUP BY p.name HAVING count(*) BETWEEN 300 AND 3000 ORDER BY count(*) DESC, p.name LIMIT 1""")
    finally:
        await conn.close()
    cursor = CursorCodec(SECRET.encode()).encode(EVENT_SORTS["-date"], [page_1000_key["date_start"],
                                                                         page_1000_key["id"]])
    return {"admin1": busy_admin1["spelling"], "acronym": group["acronym"], "coalition": coalition,
            "monitor": monitor, "lat": town["latitude"], "lon": town["longitude"], "cursor": cursor,
            "event": str(event_id), "word": word}


def query_table(n: dict) -> list[tuple[str, str, str, dict | None, str]]:
    """(name, method, path, GraphQL body, family) for every query measured."""
    lat, lon = n["lat"], n["lon"]
    bbox = f"{lon - 0.5},{lat - 0.5},{lon + 0.5},{lat + 0.5}"
    where = json.dumps({"_or": [{"admin1": n["admin1"]}, {"perpetrator": n["acronym"]}],
                        "_not": {"subEventType": "Armed clash"}})
    rows = [
        ("events, page 1", "/v1/events?limit=50", "page"),
        ("events, page 1000 (cursor)", "/v1/events?" + urlencode({"limit": 50, "cursor": n["cursor"]}), "page"),
        ("country (ISO3)", "/v1/events?country=SYR", "place"),
        ("admin1 by alternative spelling", "/v1/events?" + urlencode({"admin1": n["admin1"]}), "place"),
        ("type + date range", "/v1/events?" + urlencode({"sub_event_type": "Air/drone strike",
                                                         "date_from": "2016-01-01", "date_to": "2019-12-31"}), "type"),
        ("perpetrator by acronym", "/v1/events?" + urlencode({"perpetrator": n["acronym"]}), "actor"),
        ("coalition with members", "/v1/events?" + urlencode({"actor": n["coalition"], "include_members": "true"}),
         "actor"),
        ("claimant", "/v1/events?" + urlencode({"claimant": n["monitor"]}), "claimant"),
        ("attribution contested", "/v1/events?attribution=contested", "attribution"),
        ("fatalities >= 50, by toll", "/v1/events?min_fatalities=50&sort=-fatalities", "fatalities"),
        ("bbox (1 degree)", "/v1/events?" + urlencode({"bbox": bbox}), "geo"),
        ("near 25 km", "/v1/events?" + urlencode({"near": f"{lat},{lon},25"}), "geo"),
        ("near 25 km, by distance", "/v1/events?" + urlencode({"near": f"{lat},{lon},25", "sort": "distance"}), "geo"),
        ("where: _or + _not", "/v1/events?" + urlencode({"where": where}), "where"),
        ("event detail (tree)", f"/v1/events/{n['event']}", "detail"),
        ("text q", "/v1/events?" + urlencode({"q": n["word"]}), "text"),
        ("text q by relevance", "/v1/events?" + urlencode({"q": f"{n['word']} killed", "sort": "relevance"}), "text"),
        ("text q, common word", "/v1/events?" + urlencode({"q": "shelling"}), "text"),
    ]
    table = [(name, "GET", path, None, family) for name, path, family in rows]
    table.append(("GraphQL nested, 50 events", "POST", "/graphql",
                  {"query": NESTED, "variables": {"where": {"country": ["SYR"]}}}, "graphql"))
    table.append(("count=true, country (exact)", "GET", "/v1/events?country=SYR&limit=1&count=true", None, "count"))
    stats = [
        ("stats: admin1 x month, air strikes, all time", {"group_by": "admin1,month",
                                                          "sub_event_type": "Air/drone strike"}),
        ("stats: country x year", {"group_by": "country,year"}),
        ("stats: perpetrator x month, one country, 2018", {"group_by": "perpetrator,month", "country": "SYR",
                                                           "date_from": "2018-01-01", "date_to": "2018-12-31"}),
        ("stats: week, a province, fill", {"group_by": "week", "admin1": n["admin1"], "date_from": "2018-01-01",
                                           "date_to": "2018-12-31", "fill": "true"}),
    ]
    table += [(name, "GET", "/v1/stats/events?" + urlencode(params), None, "stats") for name, params in stats]
    return table


# Measured a second time without `no-cache`: answered from Redis after the first.
CACHED = ("events, page 1", "country (ISO3)", "stats: admin1 x month, air strikes, all time")
FRESH = {"cache-control": "no-cache"}


def measure_http(base_url: str, table, requests: int, warmup: int, headers: dict[str, str]
                 ) -> dict[str, list[float]]:
    results = {}
    with httpx.Client(base_url=base_url, timeout=60, headers=headers) as http:
        for name, method, path, body, _family in table:
            samples = []
            for i in range(warmup + requests):
                started = time.perf_counter()
                response = http.request(method, path, json=body)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200 or (body and "errors" in response.json()):
                    raise SystemExit(f"{name}: {response.status_code} {response.text[:400]}")
                if i >= warmup:
                    samples.append(elapsed)
            results[name] = samples
    return results


async def capture_statements(database_url: str, redis_url: str, table) -> dict[str, list[tuple[str, tuple]]]:
    """The SQL each request runs (asked fresh, as measured), captured from the app's
    engine in process, on its second run (as the HTTP figures are after warm-up)."""
    from asgi_lifespan import LifespanManager

    app = create_app(Settings(secret_key=SECRET), database_url=database_url, redis_url=redis_url)
    captured: dict[str, list[tuple[str, tuple]]] = {}
    async with LifespanManager(app) as manager:
        engine = app.state.engine.sync_engine
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", headers=FRESH) as http:
            for name, method, path, body, _family in table:
                await http.request(method, path, json=body)
                statements: list[tuple[str, tuple]] = []

                def listener(conn, cursor, statement, parameters, context, executemany):
                    statements.append((statement, tuple(parameters or ())))

                event.listen(engine, "before_cursor_execute", listener)
                try:
                    response = await http.request(method, path, json=body)
                finally:
                    event.remove(engine, "before_cursor_execute", listener)
                assert response.status_code == 200, (name, response.text[:300])
                captured[name] = statements
    return captured


async def measure_sql(dsn: str, captured: dict[str, list[tuple[str, tuple]]], requests: int,
                      warmup: int) -> dict[str, list[float]]:
    conn = await asyncpg.connect(dsn, server_settings=SESSION_SETTINGS)  # the app's session settings
    results = {}
    try:
        for name, statements in captured.items():
            samples = []
            for i in range(warmup + requests):
                started = time.perf_counter()
                for statement, parameters in statements:
                    await conn.fetch(statement, *parameters)
                if i >= warmup:
                    samples.append((time.perf_counter() - started) * 1000)
            results[name] = samples
    finally:
        await conn.close()
    return results


def server_environment(data_dir: Path, port: int = 0) -> dict[str, str]:
    # (rate limits off: one client asks thousands of times a minute, from one address)
    env = {**os.environ, "CONFLICTKB_DATA_DIR": str(data_dir), "PORT": str(port), "CONFLICTKB_SECRET_KEY": SECRET,
           "CONFLICTKB_LOG_LEVEL": "warning", "CONFLICTKB_RATE_LIMITS": "false"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    return env


CONFLICTKB = str(Path(sys.executable).parent / "conflictkb")


def migrate(data_dir: Path) -> None:
    """The schema up to date (serve --no-prepare neither migrates nor reloads the seeds)."""
    subprocess.run([CONFLICTKB, "migrate"], env=server_environment(data_dir), check=True)


def serve(data_dir: Path, port: int) -> subprocess.Popen:
    # one worker: the figures of bench/README.md are a process's (bench/workers.py compares 1 and 2)
    proc = subprocess.Popen([CONFLICTKB, "serve", "--no-prepare", "--workers", "1"],
                            env=server_environment(data_dir, port),
                            start_new_session=True)
    wait_ready(proc, f"http://127.0.0.1:{port}")
    return proc


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a server a bench starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, url: str, timeout: float = 120) -> None:
    """Until the server at `url` answers /readyz; SystemExit if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"conflictkb serve exited with {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("conflictkb serve did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--only", default="", help="Measure only the queries whose name contains this.")
    args = parser.parse_args()

    migrate(args.data_dir)
    server = serve(args.data_dir, args.port)
    pg, redis = EmbeddedPostgres(args.data_dir), EmbeddedRedis(args.data_dir)
    pg.start()
    redis.start()
    try:
        dsn = pg.url().replace("postgresql+asyncpg://", "postgresql://")
        names = asyncio.run(pick_names(dsn))
        table = [row for row in query_table(names) if args.only.lower() in row[0].lower()]
        captured = asyncio.run(capture_statements(pg.url(), redis.url, table))
        base_url = f"http://127.0.0.1:{args.port}"
        http = measure_http(base_url, table, args.requests, args.warmup, FRESH)
        cached = measure_http(base_url, [row for row in table if row[0] in CACHED], args.requests, args.warmup, {})
        sql = asyncio.run(measure_sql(dsn, captured, args.requests, args.warmup))
        count = asyncio.run(_count_events(dsn))
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(60)
        redis.stop()
        pg.stop()

    print(f"{count:,} events; {args.requests} requests per query after {args.warmup} warm-up; times in ms\n")
    print("| query | family | HTTP p50 | HTTP p95 | SQL p50 | SQL p95 | statements |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, _method, _path, _body, family in table:
        h, s = http[name], sql[name]
        print(f"| {name} | {family} | {statistics.median(h):.1f} | {percentile(h, 95):.1f} | "
              f"{statistics.median(s):.1f} | {percentile(s, 95):.1f} | {len(captured[name])} |")
    if cached:
        print("\nAnswered from the cache (the same requests without no-cache: X-Cache: hit)\n")
        print("| query | HTTP p50 | HTTP p95 |")
        print("|---|---:|---:|")
        for name, samples in cached.items():
            print(f"| {name} | {statistics.median(samples):.1f} | {percentile(samples, 95):.1f} |")
    if "events, page 1" in http and "events, page 1000 (cursor)" in http:
        first, deep = statistics.median(http["events, page 1"]), statistics.median(http["events, page 1000 (cursor)"])
        print(f"\npage 1000 / page 1 (HTTP p50): {deep / first:.2f}")


async def _count_events(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
