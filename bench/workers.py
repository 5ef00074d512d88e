"""Requests per second with one worker process and with two (`conflictkb serve --workers N`).

    make bench-workers
    .venv/bin/python bench/workers.py [--data-dir var/bench-workers] [--rounds 3] [--seconds 10]

On the shipped data (the article and the UCDP Syria extract, 16,580 events: `conflictkb
seed` into the data directory, ~90 s the first time), two servers run side by side on the
same PostgreSQL and Redis, one with `--workers 1` and one with `--workers 2`, both as
`make run` serves (rate limits off, so that wrk's one address is never refused; access
lines at INFO written, to /dev/null). wrk loads each of three requests on each server in
turn, alternating, --rounds times, --seconds each:

- the cached event list: GET /v1/events?limit=50 from the answer cache;
- the uncached event list: the same with `Cache-Control: no-cache` (computed in
  PostgreSQL every time);
- the GraphQL event list: POST /graphql, the 50 newest events with their place, actors
  and fatalities.

The table gives each one's median requests per second (and range), wrk's p50 / p99, and
the two workers' ratio to one. wrk itself runs on the same machine and takes a share of
its cores. wrk comes from Debian's packages (installed when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cache_throughput import ensure_wrk, run_wrk  # noqa: E402
from bench.query_latency import free_port, wait_ready  # noqa: E402
from db.embedded import embedded_servers  # noqa: E402

CONFLICTKB = str(Path(sys.executable).parent / "conflictkb")
SHIPPED_EVENTS = 16_580

GRAPHQL_LIST = """{ events(first: 50) { edges { node { id dateStart eventType
  place { name kind } actors { role status actor { name } } fatalities { low best high } } } } }"""


def environment(data_dir: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONFLICTKB_", "PROMETHEUS_"))
           and k not in ("DATABASE_URL", "REDIS_URL")}
    return {**env, "CONFLICTKB_DATA_DIR": str(data_dir), "CONFLICTKB_SECRET_KEY": "bench", **more}


def serve_beside(data_dir: Path, database_url: str, redis_url: str, workers: int, name: str | None = None,
                 **more_env: str) -> tuple[subprocess.Popen, str]:
    """`conflictkb serve` on the given servers (rate limits off), as a process of its own
    with a data directory of its own (`name`) under `data_dir`; its process and URL."""
    port = free_port()
    env = environment(data_dir / f"server-{name or workers}", PORT=str(port), DATABASE_URL=database_url,
                       REDIS_URL=redis_url, CONFLICTKB_RATE_LIMITS="false", **more_env)
    proc = subprocess.Popen([CONFLICTKB, "serve", "--no-prepare", "--workers", str(workers)], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, url)
    time.sleep(3 * workers)  # every worker started, not just the first
    return proc, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench-workers")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating wrk runs of each.")
    parser.add_argument("--seconds", type=int, default=10, help="Length of each wrk run.")
    parser.add_argument("--connections", type=int, default=16, help="wrk's open connections.")
    args = parser.parse_args()

    wrk = ensure_wrk()
    # the shipped data in the data directory (the first time, the extract is imported)
    subprocess.run([CONFLICTKB, "seed"], env=environment(args.data_dir, CONFLICTKB_LOG_LEVEL="warning"), check=True)
    with embedded_servers(args.data_dir, None, None) as endpoints, tempfile.TemporaryDirectory() as scripts:
        database_url, redis_url = endpoints.database_url, endpoints.redis_url
        post = Path(scripts) / "graphql.lua"
        post.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                        f'wrk.body = {json.dumps(json.dumps({"query": GRAPHQL_LIST}))}\n')
        requests = [("cached event list (GET /v1/events?limit=50)", "/v1/events?limit=50", []),
                    ("uncached event list (Cache-Control: no-cache)", "/v1/events?limit=50",
                     ["-H", "Cache-Control: no-cache"]),
                    ("GraphQL event list (50 events, place, actors, fatalities)", "/graphql", ["-s", str(post)])]
        servers = {workers: serve_beside(args.data_dir, database_url, redis_url, workers) for workers in (1, 2)}
        try:
            for _, url in servers.values():
                total = httpx.get(url + "/v1/events", params={"limit": 1, "count": "true"}).json()["total"]
                if total < SHIPPED_EVENTS:
                    raise SystemExit(f"{args.data_dir} holds {total} events, not the shipped data")
                graphql = httpx.post(url + "/graphql", json={"query": GRAPHQL_LIST}).json()
                if "errors" in graphql or len(graphql["data"]["events"]["edges"]) != 50:
                    raise SystemExit(f"the GraphQL request fails: {graphql}")
                for _, path, options in requests:  # warm-up: connections opened, the cached answer stored
                    run_wrk(wrk, url + path, 2, args.connections, options)
            runs = {(name, workers): [] for name, _, _ in requests for workers in servers}
            for _ in range(args.rounds):
                for name, path, options in requests:
                    for workers, (_, url) in servers.items():
                        runs[name, workers].append(run_wrk(wrk, url + path, args.seconds, args.connections, options))
        finally:
            for proc, _ in servers.values():
                proc.send_signal(signal.SIGTERM)
            for proc, _ in servers.values():
                proc.wait(timeout=60)

    print(f"\n{args.rounds} alternating wrk runs of {args.seconds} s each, {args.connections} connections, "
          f"{os.cpu_count()} cores\n")
    print("| request | 1 worker: req/s (range) | p50 / p99 ms | 2 workers: req/s (range) | p50 / p99 ms | 2 / 1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _, _ in requests:
        cells, medians = [], {}
        for workers in servers:
            measured = runs[name, workers]
            rps = [run["rps"] for run in measured]
            medians[workers] = statistics.median(rps)
            cells += [f"{medians[workers]:,.0f} ({min(rps):,.0f}-{max(rps):,.0f})",
                      f"{statistics.median(r['p50'] for r in measured):.1f} / "
                      f"{statistics.median(r['p99'] for r in measured):.1f}"]
        print(f"| {name} | {' | '.join(cells)} | {medians[2] / medians[1]:.2f} |")


if __name__ == "__main__":
    main()
