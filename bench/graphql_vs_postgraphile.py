"""conflictkb's GraphQL next to PostGraphile 5's, on the same database, with wrk.

    make bench-postgraphile
    .venv/bin/python bench/graphql_vs_postgraphile.py [--data-dir var/bench-workers] [--only a,b,c]
        [--rounds 3] [--seconds 10] [--connections 8] [--province-filter admin1|lineage]

PostGraphile is the reference for "a GraphQL API generated from the tables": it plans
each operation into a few SQL statements itself. This bench asks both the same three
questions and compares requests per second.

Node 22 (npm's `node` package: the machine's node may be older) and PostGraphile with
the connection-filter plugin, at the exact versions pinned below, are installed with
npm into --cache-dir (default var/postgraphile) the first time. The data directory is
the shipped data by default (the article and the UCDP Syria extract, 16,580 events;
seeded with `conflictkb seed` when the directory holds none, ~30-90 s); `--data-dir
var/bench` is the million generated events of `make bench-data`.

On one embedded PostgreSQL + Redis, it starts `conflictkb serve --workers 1` (rate
limits off, as bench/workers.py) and one PostGraphile process (the amber preset plus
the connection filter with relation filters, mutations and GraphiQL off, no watch;
graphile.config.mjs is written into the cache folder), both with the same PostgreSQL
session settings (db.engine.SESSION_SETTINGS; --postgraphile-pg-defaults leaves
PostGraphile's connections at the server's defaults). The questions, each one query
per side asking for the same data:

  a. the 100 newest events with their place, actors (role, status, actor) and claims
     (stance, predicate, quote, claimant);
  b. 50 events of the busiest province in its busiest calendar year, newest first,
     with place, fatalities and claims (PostGraphile: by the events' admin1_id, the
     column and index conflictkb's admin1 filter uses; --province-filter lineage
     instead asks for events whose place has the province among its ancestors in
     place_lineage, through the connection filter's relation filters);
  c. the event with the most claims, with everything: its fields, the place with
     its ancestors, actors, claims with claimant, via, document and value, external ids.

Before measuring, each question is asked once on each side and the answers compared
(the same events in the same order, and the same places, actors and claims of each);
a difference stops the bench. Then wrk (POST, a Lua script body) loads each question
on each server in turn, --rounds times, --seconds each, the order of the two servers
swapped every round, after a --warmup run of each. The table gives the medians of
requests per second and of wrk's p50 / p99 latency, and the ratio conflictkb /
PostGraphile. wrk runs on the same machine and takes a share of its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cache_throughput import ensure_wrk, run_wrk  # noqa: E402
from bench.query_latency import free_port, migrate  # noqa: E402
from bench.workers import CONFLICTKB, environment, serve_beside  # noqa: E402
from db.embedded import embedded_servers  # noqa: E402
from db.engine import SESSION_SETTINGS  # noqa: E402

# Pinned (npm install of these exact versions; `node@22` and `postgraphile@5` resolved
# to these on 2026-12-03). connection-filter 4.x is the line for PostGraphile 5.1.4+
# (3.0.x was for 5.0.x).
NODE_VERSION = "22.23.3"
POSTGRAPHILE_VERSION = "5.1.5"
CONNECTION_FILTER_VERSION = "4.0.1"
PACKAGES = {"node": NODE_VERSION, "postgraphile": POSTGRAPHILE_VERSION,
            "postgraphile-plugin-connection-filter": CONNECTION_FILTER_VERSION}

# The amber preset (PostGraphile 5's recommended defaults: Relay node ids as `id`, a
# table's own id column as `rowId`, filters and orders only on indexed columns) plus the
# connection filter with relation filters. Read-only: mutations off. events.date_end is
# made filterable (it has no index of its own, so amber hides it) so that (b) asks for
# the same interval overlap as conflictkb's dateFrom/dateTo. How PostGraphile plans the
# queries is left at its defaults.
GRAPHILE_CONFIG = """\
// Written by bench/graphql_vs_postgraphile.py; rewritten on every run.
import { makePgService } from "postgraphile/adaptors/pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { jsonPgSmartTags } from "postgraphile/utils";
import { PostGraphileConnectionFilterPreset } from "postgraphile-plugin-connection-filter";

const DateEndFilterable = jsonPgSmartTags({
  version: 1,
  config: { class: { "public.events": { attribute: { date_end: { tags: { behavior: ["+filterBy"] } } } } } },
});

export default {
  extends: [PostGraphileAmberPreset, PostGraphileConnectionFilterPreset],
  plugins: [DateEndFilterable],
  disablePlugins: ["MutationPlugin"],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public"],
      poolConfig: { options: process.env.PG_SESSION_OPTIONS || undefined },
    }),
  ],
  schema: { connectionFilterRelations: true },
  grafserv: { host: "127.0.0.1", port: Number(process.env.PORT), graphiql: false, watch: false },
};
"""

# ----------------------------------------------------------------------------- questions

A_CONFLICTKB = """{ events(first: 100) { edges { node { id dateStart eventType
  place { id name kind }
  actors { role status actor { id name } }
  claims { id stance predicate quote claimant { id name } } } } } }"""

# conflictkb's default order is EVENT_SORTS["-date"]: date_start DESC, id DESC
A_POSTGRAPHILE = """{ allEvents(first: 100, orderBy: [DATE_START_DESC, ROW_ID_DESC]) { edges { node {
  rowId dateStart eventType
  placeByPlaceId { rowId name kind }
  eventActorsByEventId { nodes { role status actorByActorId { rowId name } } }
  claimsByEventId { nodes { rowId stance predicate quote actorByClaimantId { rowId name } } } } } } }"""

B_CONFLICTKB = """query ($admin1: String!, $from: Date!, $to: Date!) {
  events(first: 50, where: {admin1: [$admin1], dateFrom: $from, dateTo: $to}) { edges { node {
    id dateStart dateEnd eventType subEventType
    place { id name kind }
    fatalities { low best high civilians }
    claims { id stance predicate quote claimant { id name } } } } } }"""

_B_POSTGRAPHILE = """query ($admin1: UUID!, $from: Date!, $to: Date!) {
  allEvents(first: 50, orderBy: [DATE_START_DESC, ROW_ID_DESC],
            filter: {%s, dateEnd: {greaterThanOrEqualTo: $from}, dateStart: {lessThanOrEqualTo: $to}}) {
    edges { node {
      rowId dateStart dateEnd eventType subEventType
      placeByPlaceId { rowId name kind }
      fatalitiesLow fatalitiesBest fatalitiesHigh civilianFatalitiesBest
      claimsByEventId { nodes { rowId stance predicate quote actorByClaimantId { rowId name } } } } } } }"""
PROVINCE_FILTERS = {
    "admin1": "admin1Id: {equalTo: $admin1}",
    "lineage": "placeByPlaceId: {placeLineagesByDescendantId: {some: {ancestorId: {equalTo: $admin1}}}}",
}

C_CONFLICTKB = """query ($id: ID!) { event(id: $id) {
  id eventType subEventType typeOfViolence dateStart dateEnd datePrecision latitude longitude geoPrecision summary
  claimCount
  fatalities { low best high civilians civiliansLow civiliansHigh claimIds }
  place { id name kind iso2 iso3 latitude longitude ancestors { id name kind iso3 } }
  actors { role status statusClaimIds actor { id name kind } }
  claims { id predicate stance speaker quote createdAt
    claimant { id name kind } via { id name kind }
    document { id title publisher url publishedAt }
    value { low best high date text actor { id name kind } place { id name kind } } }
  externalIds { dataset id } } }"""

C_POSTGRAPHILE = """query ($id: UUID!) { eventByRowId(rowId: $id) {
  rowId eventType subEventType typeOfViolence dateStart dateEnd datePrecision latitude longitude geoPrecision summary
  fatalitiesLow fatalitiesBest fatalitiesHigh civilianFatalitiesBest civilianFatalitiesLow civilianFatalitiesHigh
  fatalityClaimIds
  placeByPlaceId { rowId name kind iso2 iso3 latitude longitude
    placeLineagesByDescendantId(filter: {depth: {greaterThan: 0}}, orderBy: DEPTH_DESC) {
      nodes { placeByAncestorId { rowId name kind iso3 } } } }
  eventActorsByEventId { nodes { role status statusClaimIds actorByActorId { rowId name kind } } }
  claimsByEventId(orderBy: [CREATED_AT_ASC, ROW_ID_ASC]) { totalCount nodes {
    rowId predicate stance speaker quote createdAt
    actorByClaimantId { rowId name kind } actorByViaId { rowId name kind }
    documentByDocumentId { rowId title publisher url publishedAt }
    valueLow valueBest valueHigh valueDate valueText
    actorByValueActorId { rowId name kind } placeByValuePlaceId { rowId name kind } } }
  eventExternalIdsByEventId { nodes { dataset externalId } } } }"""

NAMES = {
    "a": "a. 100 newest events, place, actors, claims",
    "b": "b. 50 events of a province in a year, claims",
    "c": "c. one event with everything",
}


def _lower(value: str | None) -> str | None:
    """conflictkb's enums are upper case (ASSERTS), PostGraphile gives the column's text."""
    return value.lower() if value is not None else None


def _ref(node: dict | None, key: str = "id") -> str | None:
    return node[key] if node else None


# Each side's answer as the same plain structure (ids, not names: names are the same
# rows), compared before measuring.

def _list_conflictkb(data: dict, with_actors: bool) -> list:
    return [{
        "id": n["id"], "date_start": n["dateStart"], "event_type": n["eventType"], "place": n["place"]["id"],
        **({"actors": sorted((_lower(a["role"]), _lower(a["status"]), a["actor"]["id"]) for a in n["actors"])}
           if with_actors else {"fatalities": (n["fatalities"]["low"], n["fatalities"]["best"],
                                               n["fatalities"]["high"], n["fatalities"]["civilians"])}),
        "claims": sorted((c["id"], _lower(c["stance"]), c["predicate"], c["quote"], c["claimant"]["id"])
                         for c in n["claims"]),
    } for n in (edge["node"] for edge in data["events"]["edges"])]


def _list_postgraphile(data: dict, with_actors: bool) -> list:
    return [{
        "id": n["rowId"], "date_start": n["dateStart"], "event_type": n["eventType"],
        "place": n["placeByPlaceId"]["rowId"],
        **({"actors": sorted((a["role"], a["status"], a["actorByActorId"]["rowId"])
                             for a in n["eventActorsByEventId"]["nodes"])}
           if with_actors else {"fatalities": (n["fatalitiesLow"], n["fatalitiesBest"], n["fatalitiesHigh"],
                                               n["civilianFatalitiesBest"])}),
        "claims": sorted((c["rowId"], c["stance"], c["predicate"], c["quote"], c["actorByClaimantId"]["rowId"])
                         for c in n["claimsByEventId"]["nodes"]),
    } for n in (edge["node"] for edge in data["allEvents"]["edges"])]


def _claim_value_conflictkb(v: dict | None) -> tuple:
    v = v or {}
    return (v.get("low"), v.get("best"), v.get("high"), v.get("date"), v.get("text"), _ref(v.get("actor")),
            _ref(v.get("place")))


def _event_conflictkb(data: dict) -> dict:
    e, f = data["event"], data["event"]["fatalities"]
    return {
        "id": e["id"], "types": (e["eventType"], e["subEventType"], e["typeOfViolence"]),
        "dates": (e["dateStart"], e["dateEnd"], e["datePrecision"]), "geo_precision": e["geoPrecision"],
        "summary": e["summary"], "claim_count": e["claimCount"],
        "fatalities": (f["low"], f["best"], f["high"], f["civilians"], f["civiliansLow"], f["civiliansHigh"],
                       sorted(f["claimIds"])),
        "place": {"id": e["place"]["id"], "iso3": e["place"]["iso3"],
                  "ancestors": [a["id"] for a in e["place"]["ancestors"]]},
        "actors": sorted((_lower(a["role"]), _lower(a["status"]), sorted(a["statusClaimIds"]), a["actor"]["id"])
                         for a in e["actors"]),
        "claims": sorted((c["id"], c["predicate"], _lower(c["stance"]), c["speaker"], c["quote"], c["claimant"]["id"],
                          _ref(c["via"]), _ref(c["document"]), _claim_value_conflictkb(c["value"]))
                         for c in e["claims"]),
        "external_ids": sorted((x["dataset"], x["id"]) for x in e["externalIds"]),
    }


def _event_postgraphile(data: dict) -> dict:
    e = data["eventByRowId"]
    place, claims = e["placeByPlaceId"], e["claimsByEventId"]
    lineage = place["placeLineagesByDescendantId"]["nodes"]
    return {
        "id": e["rowId"], "types": (e["eventType"], e["subEventType"], e["typeOfViolence"]),
        "dates": (e["dateStart"], e["dateEnd"], e["datePrecision"]), "geo_precision": e["geoPrecision"],
        "summary": e["summary"], "claim_count": claims["totalCount"],
        "fatalities": (e["fatalitiesLow"], e["fatalitiesBest"], e["fatalitiesHigh"], e["civilianFatalitiesBest"],
                       e["civilianFatalitiesLow"], e["civilianFatalitiesHigh"], sorted(e["fatalityClaimIds"])),
        "place": {"id": place["rowId"], "iso3": place["iso3"],
                  "ancestors": [n["placeByAncestorId"]["rowId"] for n in lineage]},
        "actors": sorted((a["role"], a["status"], sorted(a["statusClaimIds"]), a["actorByActorId"]["rowId"])
                         for a in e["eventActorsByEventId"]["nodes"]),
        "claims": sorted((c["rowId"], c["predicate"], c["stance"], c["speaker"], c["quote"],
                          c["actorByClaimantId"]["rowId"], _ref(c["actorByViaId"], "rowId"),
                          _ref(c["documentByDocumentId"], "rowId"),
                          (c["valueLow"], c["valueBest"], c["valueHigh"], c["valueDate"], c["valueText"],
                           _ref(c["actorByValueActorId"], "rowId"), _ref(c["placeByValuePlaceId"], "rowId")))
                         for c in claims["nodes"]),
        "external_ids": sorted((x["dataset"], x["externalId"]) for x in e["eventExternalIdsByEventId"]["nodes"]),
    }


def questions(picked: dict, province_filter: str) -> dict[str, dict]:
    """Per question: each side's request body and how to read its answer."""
    b_variables = {"admin1": picked["admin1"], "from": picked["from"], "to": picked["to"]}
    return {
        "a": {"conflictkb": {"query": A_CONFLICTKB}, "postgraphile": {"query": A_POSTGRAPHILE},
              "read": (lambda d: _list_conflictkb(d, True), lambda d: _list_postgraphile(d, True))},
        "b": {"conflictkb": {"query": B_CONFLICTKB, "variables": b_variables},
              "postgraphile": {"query": _B_POSTGRAPHILE % PROVINCE_FILTERS[province_filter],
                               "variables": b_variables},
              "read": (lambda d: _list_conflictkb(d, False), lambda d: _list_postgraphile(d, False))},
        "c": {"conflictkb": {"query": C_CONFLICTKB, "variables": {"id": picked["event"]}},
              "postgraphile": {"query": C_POSTGRAPHILE, "variables": {"id": picked["event"]}},
              "read": (_event_conflictkb, _event_postgraphile)},
    }


async def pick(dsn: str) -> dict:
    """The busiest province, its busiest calendar year, the event with the most claims,
    and the number of events."""
    conn = await asyncpg.connect(dsn)
    try:
        province = await conn.fetchval("""
            SELECT admin1_id FROM events WHERE admin1_id IS NOT NULL
             GROUP BY admin1_id ORDER BY count(*) DESC, admin1_id LIMIT 1""")
        year = await conn.fetchval("""
            SELECT extract(year FROM date_start)::int FROM events WHERE admin1_id = $1
             GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1""", province)
        name = await conn.fetchval("SELECT name FROM places WHERE id = $1", province)
        event = await conn.fetchval("SELECT event_id FROM claims GROUP BY event_id ORDER BY count(*) DESC, event_id "
                                    "LIMIT 1")
        claims = await conn.fetchval("SELECT count(*) FROM claims WHERE event_id = $1", event)
        events = await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()
    return {"admin1": str(province), "admin1_name": name, "from": f"{year}-01-01", "to": f"{year}-12-31",
            "event": str(event), "event_claims": claims, "events": events}


async def count_events(dsn: str) -> int:
    """Events in the database; 0 before the first migration."""
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('public.events')") is None:
            return 0
        return await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()


# ----------------------------------------------------------------------------- PostGraphile


def ensure_postgraphile(cache_dir: Path) -> Path:
    """Node and PostGraphile at the pinned versions in `cache_dir` (npm install the
    first time); the node binary."""
    node = cache_dir / "node_modules" / "node" / "bin" / "node"

    def installed(package: str) -> str | None:
        try:
            return json.loads((cache_dir / "node_modules" / package / "package.json").read_text())["version"]
        except (FileNotFoundError, KeyError, ValueError):
            return None

    if not node.exists() or any(installed(p) != v for p, v in PACKAGES.items()):
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm is needed to install PostGraphile (apt-get install npm)")
        cache_dir.mkdir(parents=True, exist_ok=True)
        (cache_dir / "package.json").write_text(json.dumps(
            {"name": "conflictkb-bench-postgraphile", "private": True, "dependencies": PACKAGES}, indent=2) + "\n")
        print(f"installing node {NODE_VERSION}, postgraphile {POSTGRAPHILE_VERSION} and "
              f"postgraphile-plugin-connection-filter {CONNECTION_FILTER_VERSION} into {cache_dir} (npm)", flush=True)
        subprocess.run([npm, "install", "--prefix", str(cache_dir), "--no-audit", "--no-fund", "--loglevel", "error"],
                       check=True)
    version = subprocess.run([str(node), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if version != f"v{NODE_VERSION}":
        raise SystemExit(f"{node} is {version}, not v{NODE_VERSION}: delete {cache_dir} and run again")
    return node


def node_database_url(database_url: str) -> str:
    """The SQLAlchemy URL (postgresql+asyncpg://postgres@/db?host=/socket/dir) as
    node-postgres reads it (a host name is needed in the URL; `?host=` wins)."""
    parts = urlsplit(database_url.replace("postgresql+asyncpg://", "postgres://", 1))
    netloc = parts.netloc if not parts.netloc.endswith("@") else parts.netloc + "localhost"
    return urlunsplit(parts._replace(netloc=netloc))


def start_postgraphile(node: Path, cache_dir: Path, database_url: str, session_settings: bool
                       ) -> tuple[subprocess.Popen, str]:
    (cache_dir / "graphile.config.mjs").write_text(GRAPHILE_CONFIG)
    port = free_port()
    options = " ".join(f"-c {key}={value}" for key, value in SESSION_SETTINGS.items()
                       if key != "application_name") if session_settings else ""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL", "NODE_"))},
           "DATABASE_URL": node_database_url(database_url), "PORT": str(port), "PG_SESSION_OPTIONS": options,
           "PGAPPNAME": "postgraphile", "NODE_ENV": "production", "GRAPHILE_ENV": "production"}
    log = (cache_dir / "postgraphile.log").open("w")
    proc = subprocess.Popen([str(node), "node_modules/postgraphile/dist/cli-run.js", "-C", "graphile.config.mjs"],
                            cwd=cache_dir, env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"PostGraphile exited with {proc.returncode}; see {cache_dir / 'postgraphile.log'}")
            try:
                if httpx.post(url + "/graphql", json={"query": "{ __typename }"}, timeout=2).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"PostGraphile did not answer within 120 s; see {cache_dir / 'postgraphile.log'}")
            time.sleep(0.3)
    except BaseException:
        stop(proc)
        raise


def cpu_seconds(proc: subprocess.Popen) -> float:
    """User + system CPU time so far of a server process and its children."""
    process = psutil.Process(proc.pid)
    return sum(sum(p.cpu_times()[:2]) for p in (process, *process.children(recursive=True)))


def postgres_cpu_seconds(data_dir: Path) -> float:
    """User + system CPU time so far of the embedded PostgreSQL's processes (the
    postmaster's children: each server's pooled backends live through the bench)."""
    postmaster = psutil.Process(int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0]))
    total = 0.0
    for process in (postmaster, *postmaster.children(recursive=True)):
        try:
            total += sum(process.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group it leads (started with start_new_session), SIGKILL if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
    try:  # what may be left of its group (uvicorn's worker)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ----------------------------------------------------------------------------- checking


def ask(url: str, body: dict) -> tuple[dict, int]:
    response = httpx.post(url + "/graphql", json=body, timeout=120)
    if response.status_code != 200 or "errors" in response.json():
        raise SystemExit(f"{url}/graphql: {response.status_code} {response.text[:1500]}")
    return response.json()["data"], len(response.content)


def first_difference(ours, theirs, path: str = "") -> str | None:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in ours.keys() | theirs.keys():
            found = first_difference(ours.get(key), theirs.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(ours, (list, tuple)) and isinstance(theirs, (list, tuple)):
        if len(ours) != len(theirs):
            return f"{path}: {len(ours)} items in conflictkb's answer, {len(theirs)} in PostGraphile's"
        for i, (o, t) in enumerate(zip(ours, theirs)):
            found = first_difference(o, t, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if ours == theirs else f"{path}: conflictkb {ours!r}, PostGraphile {theirs!r}"


def check(name: str, question: dict, servers: dict[str, str]) -> dict[str, int]:
    """Ask both once; SystemExit if their answers differ. The answers' sizes in bytes."""
    answers, sizes = {}, {}
    for side, read in zip(("conflictkb", "postgraphile"), question["read"]):
        data, sizes[side] = ask(servers[side], question[side])
        answers[side] = read(data)
    ours, theirs = answers["conflictkb"], answers["postgraphile"]
    if isinstance(ours, list):
        if not ours:
            raise SystemExit(f"{name}: no events in the answers")
        if [e["id"] for e in ours] != [e["id"] for e in theirs]:
            raise SystemExit(f"{name}: conflictkb and PostGraphile return different events (or order):\n"
                             f"  conflictkb   {[e['id'][:8] for e in ours][:12]}...\n"
                             f"  PostGraphile {[e['id'][:8] for e in theirs][:12]}...")
    difference = first_difference(ours, theirs)
    if difference:
        raise SystemExit(f"{name}: the answers differ at {difference}")
    print(f"{name}: the same answer on both sides ({len(ours) if isinstance(ours, list) else 1} event(s)); "
          f"{sizes['conflictkb'] / 1024:.1f} KB from conflictkb, {sizes['postgraphile'] / 1024:.1f} KB from "
          "PostGraphile", flush=True)
    return sizes


# ----------------------------------------------------------------------------- main


def _interrupted(signum, frame) -> None:
    """SIGTERM ends the bench as Ctrl-C does: through the cleanups, the servers stopped."""
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench-workers")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "var" / "postgraphile",
                        help="Where node and PostGraphile are installed (npm), and its config and log written.")
    parser.add_argument("--only", default="a,b,c", help="Questions to ask, comma-separated (a, b, c).")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating wrk runs of each question on each side.")
    parser.add_argument("--seconds", type=int, default=10, help="Length of each wrk run.")
    parser.add_argument("--warmup", type=int, default=2, help="Seconds of an unmeasured wrk run of each first.")
    parser.add_argument("--connections", type=int, default=8, help="wrk's open connections.")
    parser.add_argument("--workers", type=int, default=1,
                        help="conflictkb's worker processes (1: one process next to PostGraphile's one; "
                             "`conflictkb serve` runs one per core by default)")
    parser.add_argument("--province-filter", choices=sorted(PROVINCE_FILTERS), default="admin1",
                        help="How PostGraphile finds (b)'s province: the events' admin1_id, or place_lineage.")
    parser.add_argument("--postgraphile-pg-defaults", action="store_true",
                        help="PostGraphile's connections at the server's settings, not conflictkb's session ones.")
    args = parser.parse_args()
    only = [q.strip() for q in args.only.split(",") if q.strip()]
    if not only or set(only) - set(NAMES):
        raise SystemExit(f"--only: a comma-separated choice of {', '.join(NAMES)}")
    data_dir, cache_dir = args.data_dir.resolve(), args.cache_dir.resolve()
    if data_dir == (ROOT / "var" / "bench").resolve() and not (data_dir / "generated").exists():
        raise SystemExit(f"{data_dir} holds no finished `make bench-data` (no {data_dir / 'generated'})")

    signal.signal(signal.SIGTERM, _interrupted)
    wrk = ensure_wrk()
    node = ensure_postgraphile(cache_dir)
    with ExitStack() as stack:
        endpoints = stack.enter_context(embedded_servers(data_dir, None, None))
        dsn = endpoints.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        if asyncio.run(count_events(dsn)) == 0:
            print(f"seeding {data_dir} with the shipped data (conflictkb seed)", flush=True)
            subprocess.run([CONFLICTKB, "seed"], env=environment(data_dir, CONFLICTKB_LOG_LEVEL="warning"),
                           check=True)
        else:
            migrate(data_dir)  # the schema up to date (serve --no-prepare does not migrate)
        picked = asyncio.run(pick(dsn))
        print(f"{picked['events']:,} events; (b): {picked['admin1_name']} ({picked['admin1']}), "
              f"{picked['from']} to {picked['to']}; (c): {picked['event']} ({picked['event_claims']} claims)",
              flush=True)
        ckb, ckb_url = serve_beside(data_dir, endpoints.database_url, endpoints.redis_url, args.workers)
        stack.callback(stop, ckb)
        pg, pg_url = start_postgraphile(node, cache_dir, endpoints.database_url, not args.postgraphile_pg_defaults)
        stack.callback(stop, pg)
        servers = {"conflictkb": ckb_url, "postgraphile": pg_url}

        asked = questions(picked, args.province_filter)
        sizes = {q: check(NAMES[q], asked[q], servers) for q in only}
        scripts = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        options = {}
        for q in only:
            for side in servers:
                lua = scripts / f"{q}-{side}.lua"
                body = json.dumps(asked[q][side])
                assert "]==]" not in body
                lua.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                               f"wrk.body = [==[{body}]==]\n")
                options[q, side] = ["-s", str(lua)]
        if args.warmup > 0:
            for q in only:
                for side, url in servers.items():
                    run_wrk(wrk, url + "/graphql", args.warmup, args.connections, options[q, side])
        processes = {"conflictkb": ckb, "postgraphile": pg}
        runs = {(q, side): [] for q in only for side in servers}
        for round_ in range(args.rounds):
            for q in only:
                for side in (list(servers) if round_ % 2 == 0 else list(servers)[::-1]):
                    cpu, pg_cpu = cpu_seconds(processes[side]), postgres_cpu_seconds(data_dir)
                    run = run_wrk(wrk, servers[side] + "/graphql", args.seconds, args.connections, options[q, side])
                    # per request: the server process's own CPU, and PostgreSQL's (only
                    # this side's statements run meanwhile)
                    requests = max(1.0, run["rps"] * args.seconds)
                    run["cpu_ms"] = (cpu_seconds(processes[side]) - cpu) * 1000 / requests
                    run["pg_cpu_ms"] = (postgres_cpu_seconds(data_dir) - pg_cpu) * 1000 / requests
                    runs[q, side].append(run)

    database = f"{data_dir.name} ({picked['events']:,} events)"
    print(f"\n{args.rounds} alternating wrk runs of {args.seconds} s each per question and server (medians), "
          f"{args.connections} connections, {os.cpu_count()} cores; conflictkb serve --workers {args.workers}, one PostGraphile "
          f"{POSTGRAPHILE_VERSION} process (node {NODE_VERSION}); (b) by {args.province_filter}\n")
    print("| question | database | answer KB (conflictkb / PostGraphile) | conflictkb req/s | PostGraphile req/s | "
          "conflictkb / PostGraphile | conflictkb p50 / p99 ms | PostGraphile p50 / p99 ms | "
          "server CPU ms / request (conflictkb / PostGraphile) | PostgreSQL CPU ms / request "
          "(conflictkb / PostGraphile) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for q in only:
        cells = {}
        for side in servers:
            measured = runs[q, side]
            cells[side] = (statistics.median(r["rps"] for r in measured),
                           f"{statistics.median(r['p50'] for r in measured):.1f} / "
                           f"{statistics.median(r['p99'] for r in measured):.1f}",
                           statistics.median(r["cpu_ms"] for r in measured),
                           statistics.median(r["pg_cpu_ms"] for r in measured))
        (ours, our_latency, our_cpu, our_pg), (theirs, their_latency, their_cpu, their_pg) = (
            cells["conflictkb"], cells["postgraphile"])
        print(f"| {NAMES[q]} | {database} | {sizes[q]['conflictkb'] / 1024:.1f} / {sizes[q]['postgraphile'] / 1024:.1f}"
              f" | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} | {our_latency} | {their_latency} | "
              f"{our_cpu:.1f} / {their_cpu:.1f} | {our_pg:.1f} / {their_pg:.1f} |")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit("interrupted; the servers this bench started are stopped") from None
