"""The Prometheus series of every conflictkb process, declared once (served at /metrics
by api/observability.py).

With several workers (`conflictkb serve --workers N`) each process counts in files of
its own under PROMETHEUS_MULTIPROC_DIR, which `serve` sets before any worker starts
(prometheus_client picks its storage when it is first imported); /metrics sums the
files of all of them, those of workers that have exited included, so a counter never
goes back when a worker is replaced. A gauge of things in progress (connections in
use, requests waiting) counts live processes only ("livesum"). Without that directory
(tests, a bare `create_app`), the series live in this process's memory.

Labels are bounded sets: a route's template (`/v1/events/{event_id}`, never the path
a client typed), a status code, a role, a dataset; never a key, an address or an id.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import generate_latest

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# Seconds: from a cached answer (~1 ms) to a read at its statement budget (5 s) and an export.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "conflictkb_http_requests", "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"])
REQUEST_SECONDS = Histogram(
    "conflictkb_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template and method.",
    ["route", "method"], buckets=LATENCY_BUCKETS)
REQUESTS_IN_PROGRESS = Gauge(
    "conflictkb_http_requests_in_progress", "Requests being answered now.", multiprocess_mode="livesum")

ANSWER_CACHE = Counter(
    "conflictkb_answer_cache_lookups",
    "Answer cache lookups by result: hit (stored answer), miss (computed here), wait (another "
    "request was computing the same answer and this one waited for it: single-flight), bypass "
    "(Redis unavailable: answered from PostgreSQL).", ["result"])

DB_CONNECTIONS_IN_USE = Gauge(
    "conflictkb_db_pool_connections_in_use", "Database connections checked out of the pools.",
    multiprocess_mode="livesum")
DB_CONNECTIONS_WAITING = Gauge(
    "conflictkb_db_pool_requests_waiting", "Requests waiting for a database connection from the pool.",
    multiprocess_mode="livesum")
RATE_LIMIT_REFUSALS = Counter(
    "conflictkb_rate_limit_refusals",
    "Requests or operations refused for a rate limit, by policy (the caller's role or `anonymous`) "
    "and reason: quota (spent), cost (one request over the whole quota), lockout (failed authentications).",
    ["policy", "reason"])

GRAPHQL_OPERATIONS = Counter(
    "conflictkb_graphql_operations",
    "GraphQL operations run, by path: planned (answered by SQL that builds the JSON: schema/planner.py) or "
    "resolved (field by field: mutations, asOf, fields the planner leaves to resolvers).", ["path"])
IMPORT_ROWS = Counter(
    "conflictkb_import_rows", "Rows of dataset files imported, by dataset and outcome "
    "(inserted, updated, unchanged, rejected).", ["dataset", "outcome"])


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_DIR_VARIABLE) or None


def exposition() -> bytes:
    """Every series in the Prometheus text format, summed over the worker processes."""
    directory = multiprocess_dir()
    if directory is None:
        from prometheus_client import REGISTRY

        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry)


def process_exited(pid: int) -> None:
    """Drop an exited process's live gauges (its counters keep counting in the sums)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)


def forget_killed_processes() -> None:
    """Drop the live gauges of processes that ended without process_exited: a worker
    killed (the OOM killer, SIGKILL) left its last values (requests in progress,
    connections in use) in the sums. Called as a worker starts, which is when the server
    replaces one that died."""
    import psutil

    directory = multiprocess_dir()
    if directory is None:
        return
    for live_gauge in Path(directory).glob("gauge_live*_*.db"):
        pid = int(live_gauge.stem.rsplit("_", 1)[1])
        if not psutil.pid_exists(pid):
            multiprocess.mark_process_dead(pid)
