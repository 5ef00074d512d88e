"""A deterministic generator of realistic synthetic events, for benchmarks.

`conflictkb generate --events N --seed S` adds N events to the knowledge base: a
place hierarchy of real countries with generated provinces, districts and towns
(names with spelling variants as aliases), armed actors with aliases and coalition
memberships, monitors and media as claimants, and 1 to 4 claims per event from
several claimants. Events are skewed as real data is: a few places and years hold
most of them, fatalities are heavy-tailed, most dates are exact.

The same seed gives the same rows (ids included). Rows are COPYed in batches into
staging, where db/derive.py derives their figures, attribution and search text by the
rules of any other write, and go in from there finished (no update after the insert),
so a million events load in minutes with flat memory.
"""

from __future__ import annotations

import asyncio
import bisect
import calendar
import datetime as dt
import itertools
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db import models as m
from db.bulk import EVENT_TABLES_WITHOUT_INDEXES, bulk_load, start_bulk_load, take_generation
from db.derive import empty_staging, insert_staged_events
from db.engine import copy_rows
from db.names import name_variants

# name, iso2, iso3, (min_lat, min_lon, max_lat, max_lon), share of events
COUNTRIES = [
    ("Syria", "SY", "SYR", (32.3, 35.7, 37.3, 42.4), 0.26),
    ("Iraq", "IQ", "IRQ", (29.1, 38.8, 37.4, 48.6), 0.14),
    ("Yemen", "YE", "YEM", (12.6, 42.5, 19.0, 53.1), 0.14),
    ("Afghanistan", "AF", "AFG", (29.4, 60.5, 38.5, 74.9), 0.1),
    ("Somalia", "SO", "SOM", (-1.7, 40.9, 12.0, 51.4), 0.08),
    ("Nigeria", "NG", "NGA", (4.3, 2.7, 13.9, 14.7), 0.08),
    ("Mali", "ML", "MLI", (10.2, -12.2, 25.0, 4.2), 0.06),
    ("Sudan", "SD", "SDN", (8.7, 21.8, 22.2, 38.6), 0.06),
    ("Myanmar", "MM", "MMR", (9.8, 92.2, 28.5, 101.2), 0.05),
    ("Libya", "LY", "LBY", (19.5, 9.3, 33.2, 25.2), 0.03),
]

# (event_type, sub_event_type, weight)
EVENT_KINDS = [
    ("Battles", "Armed clash", 28), ("Battles", "Government regains territory", 3),
    ("Battles", "Non-state actor overtakes territory", 3),
    ("Explosions/Remote violence", "Air/drone strike", 18),
    ("Explosions/Remote violence", "Shelling/artillery/missile attack", 16),
    ("Explosions/Remote violence", "Remote explosive/landmine/IED", 7),
    ("Explosions/Remote violence", "Suicide bomb", 1), ("Explosions/Remote violence", "Grenade", 1),
    ("Violence against civilians", "Attack", 10), ("Violence against civilians", "Abduction/forced disappearance", 3),
    ("Protests", "Peaceful protest", 5), ("Riots", "Violent demonstration", 2),
    ("Strategic developments", "Agreement", 1), ("Strategic developments", "Arrests", 2),
]

FIRST_DAY, LAST_DAY = dt.date(2010, 1, 1), dt.date(2024, 12, 31)
SYLLABLES = ["ba", "dar", "kha", "mir", "zan", "qal", "tal", "ras", "ham", "sha", "nur", "deir", "sab", "ma",
             "raq", "jab", "har", "sul", "kar", "bal", "fay", "sin", "tar", "wad", "zur", "lan", "gir", "dun"]
SUFFIXES = ["", "", "ah", "iya", "an", "ar", "un"]
CLAIMANT_KINDS = ["monitor", "media", "wire_service", "ngo", "international_org", "state_media"]
QUOTES = {
    "fatalities": "{n} people were killed in {place}, according to {claimant}.",
    "civilian_fatalities": "At least {n} civilians died in {place}.",
    "perpetrator": "Fighters of {actor} carried out the attack near {place}.",
    "target": "The attack targeted {actor} positions around {place}.",
    "occurred": "Heavy fighting was reported in {place}.",
}


class WorldExists(RuntimeError):
    """The generated world of this seed (its places, actors...) is in the knowledge base."""

    def __init__(self, seed: int):
        super().__init__(f"this database already holds the events generated with --seed {seed}: generate with "
                         "another seed, or into a fresh data directory (CONFLICTKB_DATA_DIR)")


def _weighted(rng: random.Random, items: Sequence, weights: Sequence[float]) -> Callable[[], object]:
    """A fast sampler of `items` by `weights` (cumulative weights and bisection)."""
    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]
    return lambda: items[bisect.bisect(cumulative, rng.random() * total)]


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


@dataclass
class World:
    """The places, actors and documents events are drawn from."""

    localities: dict[str, list[tuple[uuid.UUID, str]]] = field(default_factory=dict)  # iso3 -> [(id, name)]
    armed: dict[str, list[tuple[uuid.UUID, str]]] = field(default_factory=dict)       # iso3 -> [(id, name)]
    claimants: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    documents: dict[tuple[uuid.UUID, int], uuid.UUID] = field(default_factory=dict)    # (claimant, month) -> id
    civilians: uuid.UUID | None = None


class Generator:
    def __init__(self, seed: int):
        self.seed = seed
        self.rng = random.Random(seed)
        self.world = World()

    def _name(self) -> str:
        rng = self.rng
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((1, 2, 2, 3)))) + rng.choice(SUFFIXES)
        name = name.capitalize()
        return ("Al-" + name) if rng.random() < 0.25 else name

    def _spellings(self, name: str) -> list[str]:
        variants = {name.replace("q", "k").replace("Q", "K"), name.replace("kh", "h"), name.replace("ah", "eh"),
                    name.removeprefix("Al-"), name.replace("-", " ")}
        variants.discard(name)
        return sorted(variants)[:3]

    # ------------------------------------------------------------------ world

    async def build_world(self, conn: AsyncConnection) -> None:
        rng = self.rng
        place_rows, name_rows, actor_rows, actor_name_rows, membership_rows = [], [], [], [], []

        def add_names(rows: list, owner: str, owner_id: uuid.UUID, names: list[str]) -> None:
            seen = set()
            for name in names:
                for norm in sorted(name_variants(name)):
                    if norm not in seen:
                        seen.add(norm)
                        rows.append({f"{owner}_id": owner_id, "name": name, "name_norm": norm})

        existing = dict((await conn.execute(select(m.places.c.iso3, m.places.c.id).where(
            m.places.c.iso3.is_not(None)))).all())
        for name, iso2, iso3, (lat0, lon0, lat1, lon1), _share in COUNTRIES:
            country_id = existing.get(iso3)
            if country_id is None:
                country_id = _uuid(rng)
                place_rows.append({"id": country_id, "name": name, "kind": "country", "parent_id": None,
                                   "iso2": iso2, "iso3": iso3, "latitude": (lat0 + lat1) / 2,
                                   "longitude": (lon0 + lon1) / 2})
                add_names(name_rows, "place", country_id, [name])
            towns = []
            for _ in range(rng.randint(8, 16)):
                a1_id, a1_name = _uuid(rng), self._name()
                a1_lat, a1_lon = rng.uniform(lat0, lat1), rng.uniform(lon0, lon1)
                place_rows.append({"id": a1_id, "name": f"{a1_name} Governorate", "kind": "admin1",
                                   "parent_id": country_id, "iso2": None, "iso3": None,
                                   "latitude": a1_lat, "longitude": a1_lon})
                add_names(name_rows, "place", a1_id, [f"{a1_name} Governorate", *self._spellings(a1_name)])
                for _ in range(rng.randint(3, 7)):
                    a2_id, a2_name = _uuid(rng), self._name()
                    a2_lat = min(max(a1_lat + rng.gauss(0, 0.5), lat0), lat1)
                    a2_lon = min(max(a1_lon + rng.gauss(0, 0.5), lon0), lon1)
                    place_rows.append({"id": a2_id, "name": f"{a2_name} District", "kind": "admin2",
                                       "parent_id": a1_id, "iso2": None, "iso3": None,
                                       "latitude": a2_lat, "longitude": a2_lon})
                    add_names(name_rows, "place", a2_id, [f"{a2_name} District"])
                    for _ in range(rng.randint(8, 30)):
                        town_id, town = _uuid(rng), self._name()
                        place_rows.append({"id": town_id, "name": town, "kind": "locality", "parent_id": a2_id,
                                           "iso2": None, "iso3": None,
                                           "latitude": round(a2_lat + rng.gauss(0, 0.15), 5),
                                           "longitude": round(a2_lon + rng.gauss(0, 0.15), 5)})
                        add_names(name_rows, "place", town_id, [town, *self._spellings(town)])
                        towns.append((town_id, town))
            self.world.localities[iso3] = towns

            government = _uuid(rng)
            actor_rows.append({"id": government, "name": f"Government of {name}", "kind": "state", "parent_id": None})
            add_names(actor_name_rows, "actor", government, [f"Government of {name}", f"{name} government"])
            forces = _uuid(rng)
            actor_rows.append({"id": forces, "name": f"Military Forces of {name}", "kind": "armed_forces",
                               "parent_id": government})
            add_names(actor_name_rows, "actor", forces, [f"Military Forces of {name}", f"{name} army"])
            groups = [(forces, f"Military Forces of {name}")]
            coalition = _uuid(rng)
            actor_rows.append({"id": coalition, "name": f"{self._name()} Front", "kind": "coalition",
                               "parent_id": None})
            add_names(actor_name_rows, "actor", coalition, [actor_rows[-1]["name"]])
            for _ in range(rng.randint(6, 12)):
                group = _uuid(rng)
                group_name = f"{self._name()} {rng.choice(['Brigade', 'Movement', 'Army', 'Militia', 'Front'])}"
                acronym = "".join(w[0] for w in group_name.replace("-", " ").split()).upper() + rng.choice("XYZ")
                actor_rows.append({"id": group, "name": group_name, "kind": "armed_group", "parent_id": None})
                add_names(actor_name_rows, "actor", group, [group_name, acronym, *self._spellings(group_name)[:1]])
                groups.append((group, group_name))
                if rng.random() < 0.4:
                    start = dt.date(rng.randint(2010, 2020), rng.randint(1, 12), 1)
                    membership_rows.append({"id": _uuid(rng), "member_id": group, "group_id": coalition,
                                            "relation": "member", "valid_from": start,
                                            "valid_to": start + dt.timedelta(days=rng.randint(365, 2500))})
            self.world.armed[iso3] = groups

        for i in range(30):
            claimant = _uuid(rng)
            kind = CLAIMANT_KINDS[i % len(CLAIMANT_KINDS)]
            claimant_name = f"{self._name()} {'Monitor' if kind == 'monitor' else 'News'}"
            actor_rows.append({"id": claimant, "name": claimant_name, "kind": kind, "parent_id": None})
            add_names(actor_name_rows, "actor", claimant, [claimant_name])
            self.world.claimants.append((claimant, claimant_name))

        # One report per claimant and month, made up front so batches can load in parallel.
        document_rows = []
        for claimant, claimant_name in self.world.claimants:
            for month in range(FIRST_DAY.year * 12, LAST_DAY.year * 12 + 12):
                document_id = _uuid(rng)
                self.world.documents[(claimant, month)] = document_id
                document_rows.append({"id": document_id, "publisher": claimant_name, "language": "en",
                                      "title": f"{claimant_name}: report of {month // 12}-{month % 12 + 1:02d}",
                                      "published_at": dt.date(month // 12, month % 12 + 1, 1)})

        self.world.civilians = await conn.scalar(select(m.actors.c.id).where(m.actors.c.kind == "civilians"))
        if self.world.civilians is None:
            self.world.civilians = _uuid(rng)
            actor_rows.append({"id": self.world.civilians, "name": "Civilians", "kind": "civilians",
                               "parent_id": None})
            add_names(actor_name_rows, "actor", self.world.civilians, ["Civilians"])

        if await conn.scalar(select(m.places.c.id).where(m.places.c.id == place_rows[0]["id"])):
            raise WorldExists(self.seed)
        # Parents before children: the lineage triggers need them (rows are in that order).
        for table, rows in ((m.places, place_rows), (m.place_names, name_rows), (m.actors, actor_rows),
                            (m.actor_names, actor_name_rows), (m.actor_memberships, membership_rows),
                            (m.documents, document_rows)):
            for chunk in _chunks(rows, 5000):
                await conn.execute(table.insert(), chunk)

    # ------------------------------------------------------------------ events

    def _date_sampler(self) -> Callable[[], dt.date]:
        rng = self.rng
        start, days = FIRST_DAY, (LAST_DAY - FIRST_DAY).days
        surges = [rng.randint(0, days) for _ in range(12)]

        def sample() -> dt.date:
            if rng.random() < 0.35:
                offset = int(rng.gauss(rng.choice(surges), 60))
            else:
                offset = rng.randint(0, days)
            return start + dt.timedelta(days=min(max(offset, 0), days))

        return sample

    def events(self, count: int) -> Iterator[tuple[dict, list[dict], list[dict]]]:
        """(event, its actor roles, its claims) rows, one event at a time."""
        rng, world = self.rng, self.world
        countries = [c[2] for c in COUNTRIES]
        pick_country = _weighted(rng, countries, [c[4] for c in COUNTRIES])
        # Zipf-like: a few towns hold most events.
        pick_town = {iso3: _weighted(rng, world.localities[iso3],
                                     [1 / (rank + 1) ** 0.9 for rank in range(len(world.localities[iso3]))])
                     for iso3 in countries}
        pick_kind = _weighted(rng, EVENT_KINDS, [k[2] for k in EVENT_KINDS])
        pick_claimant = _weighted(rng, world.claimants, [1 / (i + 1) ** 0.7 for i in range(len(world.claimants))])
        pick_date = self._date_sampler()
        pick_geo = _weighted(rng, ["exact", "near", "admin2", "admin1"], [70, 20, 7, 3])
        pick_predicate = _weighted(rng, ["fatalities", "perpetrator", "civilian_fatalities", "occurred", "target"],
                                   [45, 30, 10, 10, 5])

        for _ in range(count):
            iso3 = pick_country()
            town_id, town = pick_town[iso3]()
            event_type, sub_event_type, _w = pick_kind()
            day = pick_date()
            precision_roll = rng.random()
            if precision_roll < 0.85:
                precision, end = "day", day
            elif precision_roll < 0.93:
                precision, end = "week", day + dt.timedelta(days=6)
            elif precision_roll < 0.98:
                precision = "month"
                day, end = day.replace(day=1), day.replace(day=calendar.monthrange(day.year, day.month)[1])
            else:
                precision, day, end = "year", dt.date(day.year, 1, 1), dt.date(day.year, 12, 31)
            armed = world.armed[iso3]
            perpetrator = rng.choice(armed)
            target = world.civilians if sub_event_type in ("Attack", "Abduction/forced disappearance") \
                else rng.choice(armed)[0]
            deaths = 0 if rng.random() < 0.4 else int(rng.paretovariate(1.3))
            event_id = _uuid(rng)
            event = {"id": event_id, "event_type": event_type, "sub_event_type": sub_event_type,
                     "date_start": day, "date_end": end, "date_precision": precision, "place_id": town_id,
                     "geo_precision": pick_geo(),
                     "summary": f"{sub_event_type} in {town}: {perpetrator[1]}; {deaths} reported killed."}
            roles = [{"event_id": event_id, "actor_id": perpetrator[0], "role": "perpetrator"}]
            if target != perpetrator[0]:
                roles.append({"event_id": event_id, "actor_id": target, "role": "target"})
            claims = []
            for claimant_id, claimant_name in {pick_claimant() for _ in range(rng.randint(1, 4))}:
                predicate = pick_predicate()
                claim = {"id": _uuid(rng), "event_id": event_id, "claimant_id": claimant_id,
                         "document_id": self._document(claimant_id, day), "predicate": predicate,
                         "stance": "asserts", "value_low": None, "value_best": None, "value_high": None,
                         "value_actor_id": None}
                if predicate in ("fatalities", "civilian_fatalities"):
                    best = max(0, deaths + rng.randint(-2, 2)) if predicate == "fatalities" else deaths // 2
                    claim.update(value_low=max(0, best - rng.randint(0, 2)), value_best=best,
                                 value_high=best + rng.randint(0, 3))
                elif predicate in ("perpetrator", "target"):
                    claim["value_actor_id"] = perpetrator[0] if predicate == "perpetrator" else target
                    roll = rng.random()
                    claim["stance"] = "denies" if roll < 0.08 else "uncertain" if roll < 0.15 else "asserts"
                claim["quote"] = QUOTES[predicate].format(n=claim["value_best"], place=town, claimant=claimant_name,
                                                          actor=perpetrator[1])
                claims.append(claim)
            yield event, roles, claims

    def _document(self, claimant: uuid.UUID, day: dt.date) -> uuid.UUID:
        key = (claimant, day.year * 12 + day.month - 1)
        return self.world.documents[key]


def _chunks(rows: list, size: int) -> Iterator[list]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


EVENT_COLUMNS = ["id", "event_type", "sub_event_type", "date_start", "date_end", "date_precision", "place_id",
                 "geo_precision", "summary"]
ROLE_COLUMNS = ["event_id", "actor_id", "role"]
CLAIM_COLUMNS = ["id", "event_id", "claimant_id", "document_id", "predicate", "stance", "value_low", "value_best",
                 "value_high", "value_actor_id", "quote"]


async def stage_batch(conn: AsyncConnection, batch: Sequence[tuple[dict, list[dict], list[dict]]]) -> None:
    """COPY a batch of `Generator.events` into the staging tables of db/derive.py, emptied first."""
    await empty_staging(conn)
    await copy_rows(conn, "new_events", EVENT_COLUMNS, [e for e, _, _ in batch])
    await copy_rows(conn, "new_event_actors", ROLE_COLUMNS, [r for _, roles, _ in batch for r in roles])
    await copy_rows(conn, "new_claims", CLAIM_COLUMNS, [c for _, _, claims in batch for c in claims])


async def generate(engine: AsyncEngine, events: int, seed: int = 1, batch: int = 20_000,
                   progress: Callable[[int, float], None] | None = None) -> None:
    """Add `events` synthetic events (and their world) to the knowledge base.

    A large run takes the events' secondary indexes off while it loads and builds
    them again at the end (also when it fails), so readers should wait for it."""
    generator = Generator(seed)
    async with engine.begin() as conn:
        await generator.build_world(conn)
        await conn.execute(text("ANALYZE"))  # the lineage lookups of the triggers need the plans
    async with bulk_load(engine, without_indexes=EVENT_TABLES_WITHOUT_INDEXES if events >= 100_000 else None):
        await _load(engine, generator, events, batch, progress)
    # Statistics for the planner and a visibility map for index-only scans, now rather
    # than whenever autovacuum gets to it (in the middle of a benchmark).
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM (ANALYZE) events, event_actors, claims, places, actors, event_month_counts"))


async def _load(engine: AsyncEngine, generator: Generator, events: int, batch: int,
                progress: Callable[[int, float], None] | None, workers: int = 2) -> None:
    """Batches are generated here and loaded by `workers` connections at once (the
    database work, not the generation, is what takes time)."""
    queue: asyncio.Queue[list | None] = asyncio.Queue(maxsize=workers)
    started, done = time.monotonic(), 0

    async def load_batches() -> None:
        nonlocal done
        while (chunk := await queue.get()) is not None:
            async with engine.begin() as conn:
                await start_bulk_load(conn)  # the generation: taken last, below
                await stage_batch(conn, chunk)
                await insert_staged_events(conn)
                await take_generation(conn)  # (held from here to the commit, not for the batch)
            done += len(chunk)
            if progress:
                progress(done, time.monotonic() - started)

    async def make_batches() -> None:
        stream = generator.events(events)
        while chunk := list(itertools.islice(stream, batch)):
            await queue.put(chunk)
        for _ in range(workers):
            await queue.put(None)

    async with asyncio.TaskGroup() as tasks:  # a failing loader cancels the rest
        tasks.create_task(make_batches())
        for _ in range(workers):
            tasks.create_task(load_batches())


def log_progress(total: int) -> Callable[[int, float], None]:
    def report(done: int, elapsed: float) -> None:
        rate = done / elapsed if elapsed else 0
        eta = (total - done) / rate if rate else math.inf
        print(f"generate: {done:,}/{total:,} events, {rate:,.0f}/s, {eta:,.0f} s to go", flush=True)

    return report
