"""Reads per second on the primary alone and on the primary with a local streaming replica,
and what routing adds to a request's time.

    make bench-replicas
    .venv/bin/python bench/replicas.py [--data-dir var/bench-workers] [--rounds 3] [--seconds 10]

On the shipped data (`conflictkb seed` into the data directory the first time), the
embedded PostgreSQL and a streaming replica of it (db/embedded.py, EmbeddedReplica, as
`CONFLICTKB_LOCAL_REPLICAS=1 make run` starts) run beside two servers, `conflictkb serve
--workers 1` each: one with DATABASE_URL alone, one with DATABASE_REPLICA_URLS too, so
that its reads go to the replica (db/replicas.py). wrk loads each request on each server
in turn, alternating, --rounds times, --seconds each, with --connections connections and
then with one (the latency without queueing):

- the uncached event list: GET /v1/events?limit=50 with `Cache-Control: no-cache`
  (computed in PostgreSQL every time);
- the GraphQL event list: POST /graphql, 50 events with place, actors and fatalities;
- the cached event list: GET /v1/events?limit=50 from the answer cache (a generation
  read on the server the request reads on, then Redis).

On one machine the replica shares the primary's cores: it adds no CPU, only a second
PostgreSQL to route to, so the ratio shows routing's cost more than a replica's gain.
wrk comes from Debian's packages (installed when missing).
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
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cache_throughput import ensure_wrk, run_wrk  # noqa: E402
from bench.workers import CONFLICTKB, GRAPHQL_LIST, SHIPPED_EVENTS, environment, serve_beside  # noqa: E402
from db.embedded import embedded_servers  # noqa: E402

SIDES = ("primary alone", "primary + replica")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench-workers")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating wrk runs of each.")
    parser.add_argument("--seconds", type=int, default=10, help="Length of each wrk run.")
    parser.add_argument("--connections", type=int, default=8, help="wrk's open connections (throughput).")
    args = parser.parse_args()

    wrk = ensure_wrk()
    subprocess.run([CONFLICTKB, "seed"], env=environment(args.data_dir, CONFLICTKB_LOG_LEVEL="warning"), check=True)
    with embedded_servers(args.data_dir, None, None, replicas=1) as endpoints, \
            tempfile.TemporaryDirectory() as scripts:
        post = Path(scripts) / "graphql.lua"
        post.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                        f'wrk.body = {json.dumps(json.dumps({"query": GRAPHQL_LIST}))}\n')
        requests = [("uncached event list (Cache-Control: no-cache)", "/v1/events?limit=50",
                     ["-H", "Cache-Control: no-cache"]),
                    ("GraphQL event list (50 events, place, actors, fatalities)", "/graphql", ["-s", str(post)]),
                    ("cached event list (GET /v1/events?limit=50)", "/v1/events?limit=50", [])]
        servers = {
            SIDES[0]: serve_beside(args.data_dir, endpoints.database_url, endpoints.redis_url, 1, "primary"),
            SIDES[1]: serve_beside(args.data_dir, endpoints.database_url, endpoints.redis_url, 1, "replica",
                                   DATABASE_REPLICA_URLS=",".join(endpoints.replica_urls)),
        }
        try:
            for side, (_, url) in servers.items():
                ready = httpx.get(url + "/readyz").json()
                if side == SIDES[1] and not all(replica["takes_reads"] for replica in ready.get("replicas", [{}])):
                    raise SystemExit(f"the replica takes no reads: {ready}")
                total = httpx.get(url + "/v1/events", params={"limit": 1, "count": "true"}).json()["total"]
                if total < SHIPPED_EVENTS:
                    raise SystemExit(f"{args.data_dir} holds {total} events, not the shipped data")
                for _, path, options in requests:  # warm-up: connections opened, the cached answer stored
                    run_wrk(wrk, url + path, 2, args.connections, options)
            runs = {(name, side, connections): [] for name, _, _ in requests for side in servers
                    for connections in (args.connections, 1)}
            for _ in range(args.rounds):
                for name, path, options in requests:
                    for connections in (args.connections, 1):
                        for side, (_, url) in servers.items():
                            runs[name, side, connections].append(
                                run_wrk(wrk, url + path, args.seconds, connections, options))
        finally:
            for proc, _ in servers.values():
                proc.send_signal(signal.SIGTERM)
            for proc, _ in servers.values():
                proc.wait(timeout=60)

    print(f"\n{args.rounds} alternating wrk runs of {args.seconds} s each, {os.cpu_count()} cores, "
          f"conflictkb serve --workers 1 per side, one local streaming replica\n")
    print(f"| request | primary alone: req/s ({args.connections} conn.) | primary + replica: req/s | ratio "
          f"| p50 ms, 1 connection: primary alone | primary + replica | routing adds (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, _, _ in requests:
        rps = {side: statistics.median(run["rps"] for run in runs[name, side, args.connections]) for side in servers}
        p50 = {side: statistics.median(run["p50"] for run in runs[name, side, 1]) for side in servers}
        print(f"| {name} | {rps[SIDES[0]]:,.0f} | {rps[SIDES[1]]:,.0f} | {rps[SIDES[1]] / rps[SIDES[0]]:.2f} "
              f"| {p50[SIDES[0]]:.2f} | {p50[SIDES[1]]:.2f} | {p50[SIDES[1]] - p50[SIDES[0]]:+.2f} |")


if __name__ == "__main__":
    main()
