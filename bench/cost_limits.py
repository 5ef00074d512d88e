"""The requests an outside test found expensive, and the same at the cost limits.

    .venv/bin/python bench/cost_limits.py                 # var/cost-bench: the shipped data
    .venv/bin/python bench/cost_limits.py --data-dir var  # the data of `make run`

It migrates and seeds the data directory (the seeds and the UCDP extract: 16,580
events; the first run imports it, ~30 s), runs the app in process on it and, for each
request of the table, prints its status and the p50 / max of --requests runs (after one
unmeasured run), each with `Cache-Control: no-cache` so the answer is computed every
time. Requests over a limit are refused before any SQL (422, or a GraphQL error); the
others must finish well within the read statement budget (5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.app import create_app  # noqa: E402
from api.settings import Settings  # noqa: E402
from db.cost import LIMITS  # noqa: E402
from db.embedded import EmbeddedPostgres, EmbeddedRedis  # noqa: E402
# the operations the tests price: the bench times the very same ones
from tests.test_cost_limits import FOUR_PAGES, ONE_PAGE  # noqa: E402

# Words found in nearly every event of the UCDP extract: the costliest to search for.
FREQUENT = ("syria", "republic", "arab", "civilian", "state", "conflict", "governorate", "district",
            "damascus", "rebel", "town", "insurgents", "forces", "al", "islamic", "killed")
EVENTS = """query($where: EventWhere, $first: Int! = 50, $asOf: DateTime) {
  events(where: $where, first: $first, asOf: $asOf) { totalCount edges { node { id place { name } } } } }"""


def q_of(words: int) -> str:
    return " or ".join(FREQUENT[i % len(FREQUENT)] for i in range(words))


def table(actors: list[str]) -> list[tuple[str, str, dict]]:
    """(name, path, params or GraphQL body)."""
    where = lambda w: json.dumps(w)  # noqa: E731
    at_cap = {"_or": [{"actor": actors[7 * i:7 * i + 7], "include_members": True} for i in range(33)]}
    now = "2999-01-01T00:00:00Z"
    return [
        ("q of 2,400 words", "/v1/events", {"q": q_of(2400)}),
        ("q of 300 words, count", "/v1/events", {"q": q_of(300), "count": "true"}),
        (f"q of {LIMITS.q_terms} words (the cap), count", "/v1/events", {"q": q_of(LIMITS.q_terms), "count": "true"}),
        (f"q of {LIMITS.q_terms} words, relevance, count", "/v1/events",
         {"q": q_of(LIMITS.q_terms), "sort": "relevance", "count": "true"}),
        (f"q of {LIMITS.q_terms} words, limit 500", "/v1/events", {"q": q_of(LIMITS.q_terms), "limit": 500}),
        ("where: _or of 900 items", "/v1/events", {"where": where({"_or": [{"country": "SYR"}] * 900})}),
        ("where: _or of 1,500 actors", "/v1/events",
         {"where": where({"_or": [{"actor": f"a{i}"} for i in range(1500)]})}),  # (short: a URL has room)
        ("where: 99 items, 231 actors with members, count", "/v1/events",
         {"where": where(at_cap), "count": "true", "limit": 500}),
        ("as_of, limit 500", "/v1/events", {"as_of": now, "limit": 500}),
        ("as_of, an actor, count", "/v1/events", {"as_of": now, "actor": "Government of Syria", "count": "true"}),
        ("stats by day, admin2, perpetrator, claimant", "/v1/stats/events",
         {"group_by": "day,admin2,perpetrator,claimant"}),
        ("GraphQL: q of 2,400 words", "/graphql", {"query": EVENTS, "variables": {"where": {"q": q_of(2400)}}}),
        ("GraphQL: q at the cap, first 500", "/graphql",
         {"query": EVENTS, "variables": {"where": {"q": q_of(LIMITS.q_terms)}, "first": 500}}),
        ("GraphQL: 4 x 500 events, claims, actors, places", "/graphql", {"query": FOUR_PAGES}),
        ("GraphQL: 500 events, claims, actors, places", "/graphql", {"query": ONE_PAGE}),
    ]


def prepare(data_dir: Path) -> None:
    env = {**os.environ, "CONFLICTKB_DATA_DIR": str(data_dir)}
    cli = str(ROOT / ".venv" / "bin" / "conflictkb")
    for command in ("migrate", "seed"):
        subprocess.run([cli, "--log-level", "warning", command], env=env, check=True, stdout=subprocess.DEVNULL)


def outcome(response: httpx.Response) -> str:
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        return f"{response.status_code} {response.json()['errors'][0]['name']}"
    if response.request.url.path == "/graphql" and response.json().get("errors"):
        extensions = response.json()["errors"][0]["extensions"]
        return f"{extensions['code'].lower()} {extensions.get('argument', 'cost')}"
    return str(response.status_code)


async def measure(database_url: str, redis_url: str, requests: int) -> list[tuple[str, str, list[float]]]:
    from asgi_lifespan import LifespanManager

    app = create_app(Settings(secret_key="bench"), database_url=database_url, redis_url=redis_url)
    results = []
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120,
                                     headers={"Cache-Control": "no-cache"}) as http:
            actors = [a["name"] for a in (await http.get("/v1/actors", params={"limit": 250})).json()["data"]]
            for name, path, params in table(actors):
                send = (lambda: http.post(path, json=params)) if path == "/graphql" else \
                    (lambda: http.get(path, params=params))
                response = await send()  # warm-up
                samples = []
                for _ in range(requests):
                    start = time.perf_counter()
                    response = await send()
                    samples.append((time.perf_counter() - start) * 1000)
                results.append((name, outcome(response), samples))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "cost-bench")
    parser.add_argument("--requests", type=int, default=3)
    args = parser.parse_args()
    prepare(args.data_dir)
    pg, redis = EmbeddedPostgres(args.data_dir), EmbeddedRedis(args.data_dir)
    pg.start()
    redis.start()
    try:
        results = asyncio.run(measure(pg.url(), redis.url, args.requests))
    finally:
        redis.stop()
        pg.stop()
    print(f"{args.requests} requests each after one warm-up, computed every time (no-cache); times in ms\n")
    print("| request | answer | p50 | max |")
    print("|---|---|---:|---:|")
    for name, answer, samples in results:
        print(f"| {name} | {answer} | {statistics.median(samples):.0f} | {max(samples):.0f} |")


if __name__ == "__main__":
    main()
