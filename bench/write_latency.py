"""Write latency: what an editor waits for each kind of write, on the big database.

    make bench-data                                         # 1,000,000 generated events in var/bench
    .venv/bin/python bench/write_latency.py --data-dir var/bench

It starts `conflictkb serve` on the data directory, makes an editor key, then, one
request at a time, `--requests` rounds of: create an event (at a real locality),
a claim that names its perpetrator (re-deriving attribution), a fatality claim
(re-deriving the figures), read the event back, PATCH it under If-Match, DELETE it.
Then `--writers` clients at once each add claims to an event of their own, for the
throughput of concurrent writes (writers take turns on the data generation, so this
is the rate of the whole server, not per client). Everything it made is deleted at the
end (its history stays). Prints a table of p50 / p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.query_latency import CONFLICTKB, server_environment, migrate, percentile, serve  # noqa: E402

FRESH = {"Cache-Control": "no-cache"}


def editor_key(data_dir: Path) -> str:
    made = subprocess.run([CONFLICTKB, "apikey", "create", "--role", "editor", "--name", "bench/write_latency.py"],
                          env=server_environment(data_dir), check=True, capture_output=True, text=True)
    return made.stdout.strip()


def _event_body(rng: random.Random, places: list[str]) -> dict:
    return {"event_type": "Explosions/Remote violence", "sub_event_type": "Air/drone strike",
            "date_start": f"2018-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", "place": rng.choice(places),
            "summary": f"bench event {rng.random():.9f}"}


async def _timed(samples: dict[str, list[float]], name: str, request) -> httpx.Response:
    started = time.perf_counter()
    answer = await request
    samples[name].append((time.perf_counter() - started) * 1000)
    if answer.status_code >= 400:
        raise RuntimeError(f"{name}: {answer.status_code} {answer.text[:300]}")
    return answer


async def one_at_a_time(http: httpx.AsyncClient, places: list[str], rounds: int) -> dict[str, list[float]]:
    rng = random.Random(1)
    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        event = (await _timed(samples, "POST /v1/events", http.post("/v1/events", json=_event_body(rng, places)))).json()
        await _timed(samples, "POST /v1/claims (perpetrator)", http.post("/v1/claims", json={
            "event": event["id"], "claimant": "SANA", "predicate": "perpetrator", "stance": "asserts",
            "value": "US-led coalition", "quote": "bench"}))
        await _timed(samples, "POST /v1/claims (fatalities)", http.post("/v1/claims", json={
            "event": event["id"], "claimant": "SOHR", "predicate": "fatalities", "stance": "asserts",
            "value": rng.randint(1, 30)}))
        read = await _timed(samples, "GET /v1/events/{id} after the writes",
                            http.get(f"/v1/events/{event['id']}", headers=FRESH))
        await _timed(samples, "PATCH /v1/events/{id} (If-Match)", http.patch(
            f"/v1/events/{event['id']}", json={"summary": "bench, edited"}, headers={"If-Match": read.headers["etag"]}))
        await _timed(samples, "DELETE /v1/events/{id}", http.delete(f"/v1/events/{event['id']}"))
    return samples


async def concurrently(http: httpx.AsyncClient, places: list[str], writers: int, claims: int
                       ) -> tuple[list[float], float]:
    rng = random.Random(2)
    events = [(await http.post("/v1/events", json=_event_body(rng, places))).json()["id"] for _ in range(writers)]
    samples: dict[str, list[float]] = defaultdict(list)

    async def writer(event_id: str) -> None:
        for i in range(claims):
            await _timed(samples, "claim", http.post("/v1/claims", json={
                "event": event_id, "claimant": "SOHR", "predicate": "fatalities", "stance": "asserts", "value": i}))

    started = time.perf_counter()
    await asyncio.gather(*(writer(e) for e in events))
    seconds = time.perf_counter() - started
    for event_id in events:
        await http.delete(f"/v1/events/{event_id}")
    return samples["claim"], writers * claims / seconds


async def measure(port: int, key: str, rounds: int, writers: int) -> None:
    limits = httpx.Limits(max_connections=writers + 2)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        places = [p["id"] for p in (await http.get("/v1/places", params={"kind": "locality", "limit": 200})).json()["data"]]
        await one_at_a_time(http, places, 3)  # warm-up
        samples = await one_at_a_time(http, places, rounds)
        concurrent, rate = await concurrently(http, places, writers, max(rounds // 2, 10))
    print(f"\n{rounds} rounds, one request at a time (ms):\n")
    print("| write | p50 | p95 |")
    print("|---|---:|---:|")
    for name, values in samples.items():
        print(f"| {name} | {percentile(values, 50):.1f} | {percentile(values, 95):.1f} |")
    print(f"\n{writers} writers at once, claims on events of their own: {rate:,.0f} writes/s; "
          f"each claim p50 {percentile(concurrent, 50):.1f} ms, p95 {percentile(concurrent, 95):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--requests", type=int, default=100, help="Rounds of writes, one at a time.")
    parser.add_argument("--writers", type=int, default=4)
    args = parser.parse_args()
    migrate(args.data_dir)
    key = editor_key(args.data_dir)
    server = serve(args.data_dir, args.port)
    try:
        asyncio.run(measure(args.port, key, args.requests, args.writers))
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(60)


if __name__ == "__main__":
    main()
