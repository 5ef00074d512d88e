"""Latency of representative read requests against a running conflictkb server.

    make run                        # in one terminal
    .venv/bin/python bench/read_latency.py --url http://127.0.0.1:8000 --requests 200

Each request of the table runs --warmup times unmeasured, then --requests times one
after another over one keep-alive connection; the table gives p50 / p95 / max in ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

GRAPHQL_EVENTS = """{ events(first: 50, where: {country: ["SYR"]}) { totalCount edges { node {
  id subEventType dateStart place { name ancestors { name } } fatalities { best civilians }
  actors { role status actor { name } } claims { stance quote claimant { name } } } } } }"""

REQUESTS = [
    ("events, first page", "GET", "/v1/events", None),
    ("events, admin1 by alias", "GET", "/v1/events?admin1=hasakeh", None),
    ("events, country + type", "GET", "/v1/events?country=SYR&sub_event_type=Air/drone%20strike", None),
    ("events, perpetrator alias", "GET", "/v1/events?perpetrator=RAF", None),
    ("events, dates + count", "GET", "/v1/events?date_from=2018-01-01&date_to=2018-12-31&count=true", None),
    ("event detail (tree)", "GET", "/v1/events/conflictkb-seed:al-qasr-strike", None),
    ("event claims", "GET", "/v1/events/conflictkb-seed:al-qasr-strike/claims", None),
    ("actors, q", "GET", "/v1/actors?q=isis", None),
    ("places, q", "GET", "/v1/places?q=hasakeh", None),
    ("GraphQL events nested", "POST", "/graphql", {"query": GRAPHQL_EVENTS}),
]


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    print(f"{'request':<28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'bytes':>8}")
    with httpx.Client(base_url=args.url, timeout=30) as http:
        for name, method, path, body in REQUESTS:
            samples, size = [], 0
            for i in range(args.warmup + args.requests):
                started = time.perf_counter()
                response = http.request(method, path, json=body)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200 or (body and "errors" in response.json()):
                    raise SystemExit(f"{name}: {response.status_code} {response.text[:300]}")
                if i >= args.warmup:
                    samples.append(elapsed)
                size = len(response.content)
            print(f"{name:<28} {statistics.median(samples):>8.2f} {percentile(samples, 95):>8.2f} "
                  f"{max(samples):>8.2f} {size:>8}")


if __name__ == "__main__":
    main()
