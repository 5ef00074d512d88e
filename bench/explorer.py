"""How long the explorer (/explore) takes to show the shipped data, in headless Chromium.

    make bench-explorer
    .venv/bin/python bench/explorer.py [--data-dir var/bench-workers] [--rounds 5] [--latency 0]

On the shipped data (the article and the UCDP Syria extract, 16,580 events: `conflictkb
seed` into the data directory, ~90 s the first time), `conflictkb serve` as `make run`
serves it (two workers on this machine's two cores; rate limits off). Chromium is the
system's (Debian's `chromium`, installed when missing, as the tests do), at 1280x900, and runs on the same
machine, so page and server share its two cores.

Each round, alternating:
- first view, cold: a new browser profile (nothing cached) opens /explore; the time from
  the navigation until the list, the map's 16,571 points and the status line show the
  filter (the page records it in `data-first-view-ms`; the chart comes on its own);
- first view, warm: the same again in that profile, as a visitor who comes back (scripts,
  styles and the base map from the browser's cache, the API's answers from the answer
  cache). It is the third visit: on the second, Chromium compiles the scripts again to
  keep V8's code cache of them (once, 100-300 ms), which is not how every later visit goes;
- a province and a year: /explore?admin1=Hasakah&date_from=2018-01-01&date_to=2018-12-31;
- one event: /explore?event=conflictkb-seed:al-qasr-strike until its claims are shown
  (`data-shown-ms`).

With `--latency MS`, Chromium adds MS to each request's round trip (DevTools' network
emulation), as for a visitor far from the server: a file revalidated costs a round trip,
one cached as immutable none.

Then the map's request on its own, alternating: the whole GeoJSON export against the
same narrowed to `fields=id`, and the NDJSON of ids and points the map asks for
(`fields=latitude,longitude`), gzipped as a browser asks, each timed to its last byte,
with its size.
"""

from __future__ import annotations

import argparse
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

from bench.workers import CONFLICTKB, environment, serve_beside  # noqa: E402
from db.embedded import embedded_servers  # noqa: E402
from tests.browser import system_chromium  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWS = [
    # (in this order, in a new profile: the first finds nothing cached; None: not timed)
    ("first view, cold (nothing cached)", "/explore", "#explorer[data-state=ready]"),
    (None, "/explore", "#explorer[data-state=ready]"),  # the second visit makes V8's code cache
    ("first view, warm (assets cached)", "/explore", "#explorer[data-state=ready]"),
    ("Hasakah in 2018", "/explore?admin1=Hasakah&date_from=2018-01-01&date_to=2018-12-31",
     "#explorer[data-state=ready]"),
    ("one event (Al-Qasr, its claims)", "/explore?event=conflictkb-seed:al-qasr-strike", "#event[data-state=ready]"),
]


def time_views(url: str, rounds: int, latency_ms: int = 0) -> dict[str, list[float]]:
    """Each view's time in ms (from the navigation until it shows), per round, with
    `latency_ms` added to each request's round trip."""
    from playwright.sync_api import sync_playwright

    executable, why_not = system_chromium()
    if executable is None:
        raise SystemExit(why_not)
    times: dict[str, list[float]] = {name: [] for name, _, _ in VIEWS if name}
    with sync_playwright() as playwright:
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as profile:
                context = playwright.chromium.launch_persistent_context(
                    profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS,
                    viewport={"width": 1280, "height": 900})
                try:
                    for name, path, shown in VIEWS:
                        tab = context.new_page()
                        if latency_ms:
                            devtools = context.new_cdp_session(tab)
                            devtools.send("Network.enable")
                            devtools.send("Network.emulateNetworkConditions", {
                                "offline": False, "latency": latency_ms, "downloadThroughput": -1,
                                "uploadThroughput": -1})
                        tab.goto(url + path)
                        tab.locator(shown).wait_for(state="attached", timeout=60_000)
                        # the page records when it was shown (data-first-view-ms, data-shown-ms)
                        recorded = "data-shown-ms" if "event=" in path else "data-first-view-ms"
                        elapsed = float(tab.locator(shown).get_attribute(recorded))
                        if name:
                            times[name].append(elapsed)
                        tab.close()
                finally:
                    context.close()
    return times


def time_map_requests(url: str, rounds: int) -> dict[str, list[tuple[float, int]]]:
    """The whole GeoJSON export, and narrowed, alternating: (ms, bytes) of each, per round."""
    asked = {"whole GeoJSON (every field)": ("/v1/events.geojson", {}),
             "GeoJSON, fields=id": ("/v1/events.geojson", {"fields": "id"}),
             "the map's: NDJSON, fields=latitude,longitude": ("/v1/events.ndjson", {"fields": "latitude,longitude"})}
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in asked}
    with httpx.Client(base_url=url, headers={"Accept-Encoding": "gzip"}, timeout=120) as client:
        for _ in range(rounds):
            for name, (path, params) in asked.items():
                started = time.perf_counter()
                with client.stream("GET", path, params=params) as answer:
                    size = sum(len(chunk) for chunk in answer.iter_raw())
                runs[name].append(((time.perf_counter() - started) * 1000, size))
    return runs


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench-workers")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency", type=int, default=0, help="ms added to each request's round trip.")
    args = parser.parse_args()

    subprocess.run([CONFLICTKB, "seed"], env=environment(args.data_dir, CONFLICTKB_LOG_LEVEL="warning"), check=True)
    with embedded_servers(args.data_dir, None, None) as endpoints:
        proc, url = serve_beside(args.data_dir, endpoints.database_url, endpoints.redis_url, workers=2,
                                 name="explorer")
        try:
            time_views(url, 1)  # warm-up: the answer cache holds the first view's answers
            views = time_views(url, args.rounds, args.latency)
            requests = time_map_requests(url, args.rounds)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)

    latency = f", {args.latency} ms added to each round trip" if args.latency else ""
    print(f"\n{args.rounds} rounds, headless Chromium and the server (2 workers) on {os.cpu_count()} cores{latency}\n")
    print("| view | ms from navigation until shown: median (range) |")
    print("|---|---:|")
    for name, times in views.items():
        print(f"| {name} | {spread(times)} |")
    print("\n| the map's request, alternating | ms to the last byte: median (range) | gzipped size |")
    print("|---|---:|---:|")
    for name, measured in requests.items():
        print(f"| {name} | {spread([ms for ms, _ in measured])} | {measured[0][1] / 1024:,.0f} KiB |")
    whole, *narrowed = (statistics.median(ms for ms, _ in measured) for measured in requests.values())
    print("\n" + "; ".join(f"whole / {name}: {whole / ms:.2f}x the time" for name, ms in zip(list(requests)[1:], narrowed)))


if __name__ == "__main__":
    main()
