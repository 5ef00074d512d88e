"""Throughput of cached answers next to a bare route serving the same bytes, with wrk.

    make bench-data                                       # 1,000,000 generated events in var/bench
    .venv/bin/python bench/cache_throughput.py --data-dir var/bench

It starts `conflictkb serve` on the data directory with the bench route mounted
(CONFLICTKB_BENCH_ROUTES=1), asks each answer of the table once (a miss: computed and
stored in Redis), checks that the next ask is a hit, and hands the same bytes to the
bare route `/bench/bytes`, which returns them from memory through the same app and
middleware. Then wrk loads the two side by side, alternating, --rounds times each,
and the table gives requests per second and wrk's p50 / p99 latency of each, and the
cached answer's share of the bare route's throughput.

wrk comes from Debian's packages; it is installed with apt-get when missing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.query_latency import migrate, serve  # noqa: E402

ANSWERS = [
    ("stats: air strikes by province and month, 2018",
     "/v1/stats/events?" + urlencode({"group_by": "admin1,month", "sub_event_type": "Air/drone strike",
                                      "date_from": "2018-01-01", "date_to": "2018-12-31", "country": "SYR"})),
    ("stats: events by country and year", "/v1/stats/events?" + urlencode({"group_by": "country,year"})),
    ("events, page 1 (50 events)", "/v1/events?limit=50"),
]


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("installing wrk (apt-get install wrk)", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL)
        wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    return wrk


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNITS[unit]


def run_wrk(wrk: str, url: str, seconds: int, connections: int, options: Sequence[str] = ()) -> dict[str, float]:
    """wrk's requests per second, p50 and p99 (ms); `options`: more of wrk's, such as a
    header (-H) or a script (-s) that makes the request a POST."""
    out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *options, url],
                         capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors on {url}:\n{out}")
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.MULTILINE))  # (wrk pads "1.43s ")
    if len(latency) != 2:
        raise SystemExit(f"no latency distribution in wrk's output for {url}:\n{out}")
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": _ms(latency["50"]), "p99": _ms(latency["99"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seconds", type=int, default=10, help="Length of each wrk run.")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs of each route, alternating.")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    wrk = ensure_wrk()
    migrate(args.data_dir)
    os.environ["CONFLICTKB_BENCH_ROUTES"] = "1"
    server = serve(args.data_dir, args.port)
    base = f"http://127.0.0.1:{args.port}"
    rows = []
    try:
        with httpx.Client(base_url=base, timeout=120) as http:
            for name, path in ANSWERS:
                http.get(path)  # computed and stored
                cached = http.get(path)
                if cached.headers.get("x-cache") != "hit":
                    raise SystemExit(f"{name}: expected a cache hit, got {cached.headers.get('x-cache')}")
                http.put("/bench/bytes", content=cached.content).raise_for_status()
                if http.get("/bench/bytes").content != cached.content:
                    raise SystemExit("the bare route does not return the same bytes")
                runs: dict[str, list[dict[str, float]]] = {"bare": [], "cached": []}
                for _ in range(args.rounds):
                    runs["bare"].append(run_wrk(wrk, base + "/bench/bytes", args.seconds, args.connections))
                    runs["cached"].append(run_wrk(wrk, base + path, args.seconds, args.connections))
                rows.append((name, len(cached.content), {
                    route: {key: statistics.median(run[key] for run in results) for key in ("rps", "p50", "p99")}
                    for route, results in runs.items()}))
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(60)

    print(f"\nwrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} alternating runs per route "
          f"(medians); the same bytes from Redis (X-Cache: hit) and from memory\n")
    print("| answer | bytes | cached req/s | bare req/s | cached / bare | cached p50 ms | cached p99 ms | "
          "bare p50 ms | bare p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, size, r in rows:
        c, b = r["cached"], r["bare"]
        print(f"| {name} | {size:,} | {c['rps']:,.0f} | {b['rps']:,.0f} | {c['rps'] / b['rps']:.2f} | "
              f"{c['p50']:.2f} | {c['p99']:.2f} | {b['p50']:.2f} | {b['p99']:.2f} |")


if __name__ == "__main__":
    main()
