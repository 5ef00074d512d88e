"""What the rate limits cost: the latency they add to a request, and GET /v1/events
throughput with them on and off.

    make bench-ratelimit
    .venv/bin/python bench/ratelimit.py [--data-dir var/bench-ratelimit] [--requests 200] [--rounds 50]

It starts the embedded PostgreSQL and Redis in the data directory (migrated, the seed's
article loaded: the answers timed do not depend on the data's size), then:

1. Added latency, in this one process: two apps on the same PostgreSQL and Redis, one
   with the limits on, one with them off, called straight through ASGI (no sockets or
   HTTP parsing: what is timed is the app and its middleware). Runs of --requests
   requests alternate between the two, --rounds times each (short runs, many times: both
   see the same load from whatever else the machine runs); the table gives each one's
   per-request p50 / p95, the difference (the limiter's added latency), the ratio, and
   the CPU time the limits add per request (this process's: waiting for redis-server to
   be given a core is latency, not CPU).
   Two requests: the bare route /bench/bytes (200 bytes from memory through every
   middleware: the limiter's share at its largest) and /v1/events?limit=50 from the
   answer cache (the cheapest real answer). The quotas are too large to refuse
   anything, so every request pays its unit in Redis, as a request within its quota
   does. A last row times RateLimiter.charge alone (its one Redis round trip).
2. Throughput: two `conflictkb serve` processes (limits on, limits off) on the same
   databases, and wrk on /v1/events?limit=50 (cached) against each in turn,
   --wrk-rounds times, --seconds each. wrk comes from Debian's packages (installed when missing).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.app import create_app  # noqa: E402
from api.cli import _migrate, _seed  # noqa: E402
from api.settings import Settings, normalise_database_url  # noqa: E402
from bench.cache_throughput import ensure_wrk, run_wrk  # noqa: E402
from bench.query_latency import free_port, wait_ready  # noqa: E402
from db.embedded import embedded_servers  # noqa: E402
from db.rate_limits import Policy  # noqa: E402

CONFLICTKB = Path(sys.executable).parent / "conflictkb"
NEVER_REFUSED = 10**12  # units a minute: every request counted, none refused
REQUESTS = [("bare route /bench/bytes", "/bench/bytes", b""),
            ("cached list /v1/events?limit=50", "/v1/events", b"limit=50")]


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def settings(data_dir: Path, limits: bool) -> Settings:
    return Settings(data_dir=data_dir, secret_key="bench", bench_routes=True, rate_limits=limits,
                    rate_limit_anonymous=NEVER_REFUSED, log_level="warning")


async def _call(app, path: str, query: bytes) -> float:
    """One GET through the app's ASGI interface; its time in ms."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
             "headers": [(b"host", b"bench"), (b"accept", b"application/json")],
             "client": ("192.0.2.1", 40000), "server": ("bench", 80)}
    status = 0

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    started = time.perf_counter()
    await app(scope, receive, send)
    elapsed = (time.perf_counter() - started) * 1000
    if status != 200:
        raise SystemExit(f"{path}?{query.decode()} answered {status}")
    return elapsed


async def added_latency(data_dir: Path, database_url: str, redis_url: str, requests: int, rounds: int) -> list[str]:
    apps = {limits: create_app(settings(data_dir, limits), database_url=database_url, redis_url=redis_url)
            for limits in (False, True)}
    rows = []
    async with LifespanManager(apps[False]) as off, LifespanManager(apps[True]) as on:
        limiter = apps[True].state.rate_limiter
        gc.collect()
        gc.freeze()
        for label, path, query in REQUESTS:
            samples: dict[bool, list[float]] = {False: [], True: []}
            cpu = {False: 0.0, True: 0.0}
            for app in (off.app, on.app):  # warm-up: the cached answer stored, connections made
                for _ in range(200):
                    await _call(app, path, query)
            for _ in range(rounds):
                for limits, app in ((False, off.app), (True, on.app)):
                    started = time.process_time()
                    samples[limits] += [await _call(app, path, query) for _ in range(requests)]
                    cpu[limits] += time.process_time() - started
            p50 = {k: statistics.median(v) for k, v in samples.items()}
            p95 = {k: percentile(v, 95) for k, v in samples.items()}
            cpu_ms = {k: v * 1000 / (rounds * requests) for k, v in cpu.items()}
            rows.append(f"| {label} | {p50[False]:.3f} / {p95[False]:.3f} | {p50[True]:.3f} / {p95[True]:.3f} "
                        f"| {p50[True] - p50[False]:+.3f} / {p95[True] - p95[False]:+.3f} "
                        f"| {p50[True] / p50[False]:.2f} | {cpu_ms[True] - cpu_ms[False]:+.3f} |")
        policy = Policy("anonymous", NEVER_REFUSED, 60)
        alone = []
        started_cpu = time.process_time()
        for _ in range(rounds * requests):
            started = time.perf_counter()
            await limiter.charge("address:bench", 1, policy)
            alone.append((time.perf_counter() - started) * 1000)
        alone_cpu = (time.process_time() - started_cpu) * 1000 / (rounds * requests)
        rows.append(f"| RateLimiter.charge alone (one Redis round trip) | | "
                    f"{statistics.median(alone):.3f} / {percentile(alone, 95):.3f} | | | {alone_cpu:.3f} |")
        if limiter.redis_failures:
            rows.append(f"\n(Redis was slower than its 0.1 s timeout {limiter.redis_failures} times in these runs: "
                        "for 2 s after each, requests were counted in this process)")
    return rows


def _serve(data_dir: Path, database_url: str, redis_url: str, limits: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    own_dir = data_dir / ("server-limits-on" if limits else "server-limits-off")  # one server per data dir
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "PORT": str(port),
           "CONFLICTKB_DATA_DIR": str(own_dir), "CONFLICTKB_SECRET_KEY": "bench", "CONFLICTKB_LOG_LEVEL": "warning",
           "CONFLICTKB_RATE_LIMITS": "true" if limits else "false",
           "CONFLICTKB_RATE_LIMIT_ANONYMOUS": str(NEVER_REFUSED)}
    # one worker each: the comparison is of the limits, not of processes (bench/workers.py)
    proc = subprocess.Popen([str(CONFLICTKB), "serve", "--no-prepare", "--workers", "1"], env=env,
                            start_new_session=True,
                            stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, url, timeout=60)
    return proc, url


def throughput(data_dir: Path, database_url: str, redis_url: str, rounds: int, seconds: int,
               connections: int) -> list[str]:
    wrk = ensure_wrk()
    servers = {limits: _serve(data_dir, database_url, redis_url, limits) for limits in (False, True)}
    try:
        runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for _, url in servers.values():
            httpx.get(url + "/v1/events?limit=50")  # stored in the answer cache
            run_wrk(wrk, url + "/v1/events?limit=50", 2, connections)  # warm-up
        for _ in range(rounds):
            for limits, (_, url) in servers.items():
                runs[limits].append(run_wrk(wrk, url + "/v1/events?limit=50", seconds, connections))
    finally:
        for proc, _ in servers.values():
            proc.send_signal(signal.SIGINT)
        for proc, _ in servers.values():
            proc.wait(timeout=30)
    rows = []
    for limits in (False, True):
        rps = [r["rps"] for r in runs[limits]]
        rows.append(f"| limits {'on' if limits else 'off'} | {statistics.median(rps):,.0f} "
                    f"({min(rps):,.0f}-{max(rps):,.0f}) | {statistics.median(r['p50'] for r in runs[limits]):.2f} "
                    f"| {statistics.median(r['p99'] for r in runs[limits]):.2f} |")
    ratio = statistics.median(r["rps"] for r in runs[True]) / statistics.median(r["rps"] for r in runs[False])
    rows.append(f"| on / off | {ratio:.2f} | | |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench-ratelimit")
    parser.add_argument("--requests", type=int, default=200, help="Requests per latency run.")
    parser.add_argument("--rounds", type=int, default=50, help="Alternating latency runs of each.")
    parser.add_argument("--wrk-rounds", type=int, default=5, help="Alternating wrk runs of each.")
    parser.add_argument("--seconds", type=int, default=10, help="Length of each wrk run.")
    parser.add_argument("--connections", type=int, default=16, help="wrk's open connections.")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()

    # A Redis round trip waits for redis-server to be given a core: on a machine whose cores
    # are all busy that wait, not the limiter, is most of what is timed.
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    with embedded_servers(args.data_dir, None, None) as endpoints:
        endpoints.database_url = normalise_database_url(endpoints.database_url)
        _migrate(endpoints.database_url)
        asyncio.run(_seed(endpoints.database_url, with_datasets=False))
        print(f"added latency: {args.rounds} alternating runs of {args.requests} requests each, in one process "
              "(ASGI, no sockets); ms", flush=True)
        print("\n| request | limits off p50 / p95 | limits on p50 / p95 | added p50 / p95 | on / off (p50) "
              "| added CPU per request |\n|---|---|---|---|---|---|")
        for row in asyncio.run(added_latency(args.data_dir, endpoints.database_url, endpoints.redis_url,
                                             args.requests, args.rounds)):
            print(row, flush=True)
        if not args.skip_throughput:
            print(f"\nGET /v1/events?limit=50 (cached) under wrk: -t1 -c{args.connections}, {args.wrk_rounds} "
                  f"alternating runs of {args.seconds} s per server; median (min-max) requests/s, latency ms\n")
            print("| server | requests/s | p50 | p99 |\n|---|---|---|---|")
            for row in throughput(args.data_dir, endpoints.database_url, endpoints.redis_url, args.wrk_rounds,
                                  args.seconds, args.connections):
                print(row, flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
