"""Load the seed files (seeds/*.yaml) into the knowledge base.

A seed file is readable data: documents, places, actors and events with their claims,
each with a `key` that other records refer to. Every record's id is a UUIDv5 of its
kind and key, so the same seed gives the same ids on every machine, and loading is
an upsert that touches only what differs: a second run changes nothing.

The seed owns the records it names: an event's claims and actor roles, a place's or
actor's names and memberships are made to match the file exactly.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from uuid import UUID, uuid5

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import ColumnElement, Table, delete, not_, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models as m
from db.derive import recompute_events
from db.crosswalk import CROSSWALK_FILE, load_crosswalk
from db.linking import match_events
from db.queries.events import resolve_event_id
from db.names import name_variants

SEED_NAMESPACE = UUID("6c265e5c-b5a7-4f6b-9c1e-0a4b7d3e2f10")
SEED_DATASET = "conflictkb-seed"
SEEDS_DIR = Path(__file__).resolve().parent.parent / "seeds"


def seed_id(kind: str, key: str) -> UUID:
    """The stable id of a seeded record: the same on every machine and every run."""
    return uuid5(SEED_NAMESPACE, f"{kind}:{key}")


# --------------------------------------------------------------------------- file format


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeedDocument(_Strict):
    key: str
    title: str | None = None
    publisher: str | None = None
    url: str | None = None
    published_at: dt.date | None = None
    language: str | None = None
    excerpt: str | None = None


class SeedPlace(_Strict):
    key: str
    name: str
    kind: str
    parent: str | None = None
    iso2: str | None = None
    iso3: str | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    aliases: list[str] = []


class SeedMembership(_Strict):
    group: str
    relation: Literal["member", "partner"] = "member"
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None


class SeedActor(_Strict):
    key: str
    name: str
    kind: str
    parent: str | None = None
    description: str | None = None
    aliases: list[str] = []
    memberships: list[SeedMembership] = []


class SeedValue(_Strict):
    low: int | None = Field(default=None, ge=0)
    best: int | None = Field(default=None, ge=0)
    high: int | None = Field(default=None, ge=0)
    actor: str | None = None
    place: str | None = None
    date: dt.date | None = None
    text: str | None = None


class SeedClaim(_Strict):
    key: str
    claimant: str
    via: str | None = None
    speaker: str | None = None
    document: str | None = None
    predicate: str
    stance: str
    value: SeedValue | None = None
    quote: str | None = None


class SeedEventActor(_Strict):
    actor: str
    role: str


class SeedEvent(_Strict):
    key: str
    event_type: str
    sub_event_type: str
    type_of_violence: int | None = None
    date_start: dt.date
    date_end: dt.date
    date_precision: str
    place: str
    geo_precision: str
    latitude: float | None = None
    longitude: float | None = None
    summary: str | None = None
    actors: list[SeedEventActor] = []
    claims: list[SeedClaim] = []


class SeedLink(_Strict):
    """An editor's verdict on a seeded event and another record (a seed key, or an
    imported record's external id such as `ucdp-ged:259233`), applied once both exist."""
    event: str
    other: str
    verdict: Literal["confirmed", "rejected"]
    note: str | None = None

    def refs(self) -> tuple[str, str]:
        other = self.other if ":" in self.other else str(seed_id("event", self.other))
        return str(seed_id("event", self.event)), other


class SeedFile(_Strict):
    documents: list[SeedDocument] = []
    places: list[SeedPlace] = []
    actors: list[SeedActor] = []
    events: list[SeedEvent] = []
    links: list[SeedLink] = []

    @model_validator(mode="after")
    def _references_resolve(self) -> "SeedFile":
        problems: list[str] = []
        for kind, records in (("document", self.documents), ("place", self.places),
                              ("actor", self.actors), ("event", self.events)):
            for key, n in Counter(r.key for r in records).items():
                if n > 1:
                    problems.append(f"{kind} key {key!r} is used {n} times")
        places = {p.key for p in self.places}
        actors = {a.key for a in self.actors}
        documents = {d.key for d in self.documents}

        def need(keys: set[str], key: str | None, what: str) -> None:
            if key is not None and key not in keys:
                problems.append(f"{what} refers to unknown key {key!r}")

        for p in self.places:
            need(places, p.parent, f"place {p.key}.parent")
        for a in self.actors:
            need(actors, a.parent, f"actor {a.key}.parent")
            for ms in a.memberships:
                need(actors, ms.group, f"actor {a.key}.memberships.group")
        for e in self.events:
            need(places, e.place, f"event {e.key}.place")
            for ea in e.actors:
                need(actors, ea.actor, f"event {e.key}.actors")
            for key, n in Counter(c.key for c in e.claims).items():
                if n > 1:
                    problems.append(f"event {e.key}: claim key {key!r} is used {n} times")
            for c in e.claims:
                where = f"event {e.key} claim {c.key}"
                need(actors, c.claimant, f"{where}.claimant")
                need(actors, c.via, f"{where}.via")
                need(documents, c.document, f"{where}.document")
                if c.value:
                    need(actors, c.value.actor, f"{where}.value.actor")
                    need(places, c.value.place, f"{where}.value.place")
        events = {e.key for e in self.events}
        for n, link in enumerate(self.links):
            need(events, link.event, f"links[{n}].event")
            if ":" not in link.other:  # (an imported record's external id is resolved when applied)
                need(events, link.other, f"links[{n}].other")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class SeedError(ValueError):
    """A seed file is malformed; the message names the file and what is wrong."""


def read_seed_file(path: Path) -> SeedFile:
    try:
        return SeedFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise SeedError(f"{path}: {exc}") from exc


def _parents_first(records: Sequence[SeedPlace] | Sequence[SeedActor]) -> list:
    by_key = {r.key: r for r in records}
    ordered, seen = [], set()

    def visit(r, trail: tuple[str, ...]) -> None:
        if r.key in seen:
            return
        if r.key in trail:
            raise SeedError(f"parent cycle: {' -> '.join(trail + (r.key,))}")
        if r.parent:
            visit(by_key[r.parent], trail + (r.key,))
        seen.add(r.key)
        ordered.append(r)

    for r in records:
        visit(r, ())
    return ordered


# --------------------------------------------------------------------------- loading


@dataclass
class SeedReport:
    """Rows written per table; all zero when the database already matched the seed."""

    inserted: Counter = field(default_factory=Counter)
    updated: Counter = field(default_factory=Counter)
    deleted: Counter = field(default_factory=Counter)

    @property
    def changed(self) -> bool:
        return any((+self.inserted, +self.updated, +self.deleted))

    def summary(self) -> str:
        tables = sorted(t for t in set(self.inserted) | set(self.updated) | set(self.deleted)
                        if self.inserted[t] or self.updated[t] or self.deleted[t])
        if not tables:
            return "seed: nothing to change"
        return "seed: " + ", ".join(
            f"{t} +{self.inserted[t]} ~{self.updated[t]} -{self.deleted[t]}" for t in tables)


async def _upsert(conn: AsyncConnection, table: Table, rows: list[dict], report: SeedReport,
                  key: Iterable[str] = ("id",)) -> None:
    """Insert or update rows by key, writing nothing where a row already matches."""
    if not rows:
        return
    key = list(key)
    stmt = insert(table).values(rows)
    changing = [c for c in rows[0] if c not in key]
    if changing:
        stmt = stmt.on_conflict_do_update(
            index_elements=key,
            set_={c: stmt.excluded[c] for c in changing},
            where=tuple_(*(table.c[c] for c in changing)).is_distinct_from(
                tuple_(*(stmt.excluded[c] for c in changing))),
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=key)
    # xmax = 0 only on a freshly inserted row version
    result = await conn.execute(stmt.returning(text("xmax = 0")))
    for (was_insert,) in result:
        (report.inserted if was_insert else report.updated)[table.name] += 1


async def _sync_children(conn: AsyncConnection, table: Table, owner_col: str, owner_ids: list[UUID],
                         rows: list[dict], key: Sequence[str], report: SeedReport,
                         owned: ColumnElement[bool] | None = None) -> None:
    """Make the child rows of these owners exactly `rows`: upsert them, delete the rest
    (of those `owned` by the seed, when others may add rows too)."""
    stmt = delete(table).where(table.c[owner_col].in_(owner_ids))
    if owned is not None:
        stmt = stmt.where(owned)
    if rows:
        wanted = [tuple(r[k] for k in key) for r in rows]
        stmt = stmt.where(not_(tuple_(*(table.c[k] for k in key)).in_(wanted)))
    report.deleted[table.name] += (await conn.execute(stmt)).rowcount
    await _upsert(conn, table, rows, report, key=key)


def _name_rows(owner: str, owner_id: UUID, names: Iterable[str]) -> list[dict]:
    rows: dict[str, dict] = {}
    for name in names:
        for norm in sorted(name_variants(name)):
            rows.setdefault(norm, {f"{owner}_id": owner_id, "name": name, "name_norm": norm})
    return list(rows.values())


async def _sync_external_ids(conn: AsyncConnection, owner: str, keys: list[str], report: SeedReport) -> None:
    """The seed's external id of each record (`conflictkb-seed:<key>`); the ids other
    datasets' imports gave its records (UCDP's id of IS) stay."""
    table: Table = getattr(m, f"{owner}_external_ids")
    await _sync_children(conn, table, f"{owner}_id", [seed_id(owner, key) for key in keys],
                         [{"dataset": SEED_DATASET, "external_id": key, f"{owner}_id": seed_id(owner, key)}
                          for key in keys], ("dataset", "external_id"), report,
                         owned=table.c.dataset == SEED_DATASET)


async def load_seed(conn: AsyncConnection, seed: SeedFile) -> SeedReport:
    """Upsert one seed file within the caller's transaction."""
    report = SeedReport()
    doc = lambda key: seed_id("document", key) if key else None  # noqa: E731
    place = lambda key: seed_id("place", key) if key else None  # noqa: E731
    actor = lambda key: seed_id("actor", key) if key else None  # noqa: E731

    await _upsert(conn, m.documents, [
        {"id": doc(d.key), "title": d.title, "publisher": d.publisher, "url": d.url,
         "published_at": d.published_at, "language": d.language, "excerpt": d.excerpt}
        for d in seed.documents], report)

    # Places and actors parent-first, one row at a time, so the lineage triggers see
    # each parent before its children.
    for p in _parents_first(seed.places):
        await _upsert(conn, m.places, [
            {"id": place(p.key), "name": p.name, "kind": p.kind, "parent_id": place(p.parent),
             "iso2": p.iso2, "iso3": p.iso3, "latitude": p.latitude, "longitude": p.longitude}], report)
    for a in _parents_first(seed.actors):
        await _upsert(conn, m.actors, [
            {"id": actor(a.key), "name": a.name, "kind": a.kind, "parent_id": actor(a.parent),
             "description": a.description}], report)

    place_ids = [place(p.key) for p in seed.places]
    actor_ids = [actor(a.key) for a in seed.actors]
    await _sync_children(conn, m.place_names, "place_id", place_ids,
                         [r for p in seed.places for r in _name_rows("place", place(p.key), [p.name, *p.aliases])],
                         ("place_id", "name_norm"), report)
    await _sync_children(conn, m.actor_names, "actor_id", actor_ids,
                         [r for a in seed.actors for r in _name_rows("actor", actor(a.key), [a.name, *a.aliases])],
                         ("actor_id", "name_norm"), report)
    await _sync_children(conn, m.actor_memberships, "member_id", actor_ids, [
        {"id": seed_id("membership", f"{a.key}/{ms.group}/{ms.relation}"), "member_id": actor(a.key),
         "group_id": actor(ms.group), "relation": ms.relation, "valid_from": ms.valid_from, "valid_to": ms.valid_to}
        for a in seed.actors for ms in a.memberships], ("id",), report)
    await _sync_external_ids(conn, "place", [p.key for p in seed.places], report)
    await _sync_external_ids(conn, "actor", [a.key for a in seed.actors], report)

    event_ids = [seed_id("event", e.key) for e in seed.events]
    await _upsert(conn, m.events, [
        {"id": seed_id("event", e.key), "event_type": e.event_type, "sub_event_type": e.sub_event_type,
         "type_of_violence": e.type_of_violence, "date_start": e.date_start, "date_end": e.date_end,
         "date_precision": e.date_precision, "place_id": place(e.place), "geo_precision": e.geo_precision,
         "latitude": e.latitude, "longitude": e.longitude, "summary": e.summary}
        for e in seed.events], report)
    await _sync_external_ids(conn, "event", [e.key for e in seed.events], report)

    claim_rows = []
    for e in seed.events:
        for c in e.claims:
            v = c.value or SeedValue()
            claim_rows.append({
                "id": seed_id("claim", f"{e.key}/{c.key}"), "event_id": seed_id("event", e.key),
                "claimant_id": actor(c.claimant), "via_id": actor(c.via), "speaker": c.speaker,
                "document_id": doc(c.document), "predicate": c.predicate, "stance": c.stance,
                "value_low": v.low, "value_best": v.best, "value_high": v.high,
                "value_actor_id": actor(v.actor), "value_place_id": place(v.place),
                "value_date": v.date, "value_text": v.text, "quote": c.quote})
    await _sync_children(conn, m.claims, "event_id", event_ids, claim_rows, ("id",), report)

    # An event's roles are the ones listed plus those its claims name (perpetrator,
    # target); recompute_events adds the latter, so they are not deleted here.
    listed = [{"event_id": seed_id("event", e.key), "actor_id": actor(ea.actor), "role": ea.role}
              for e in seed.events for ea in e.actors]
    named = {(r["event_id"], r["value_actor_id"], r["predicate"]) for r in claim_rows
             if r["predicate"] in ("perpetrator", "target") and r["value_actor_id"]}
    stale = delete(m.event_actors).where(
        m.event_actors.c.event_id.in_(event_ids),
        not_(tuple_(m.event_actors.c.event_id, m.event_actors.c.actor_id, m.event_actors.c.role).in_(
            [(r["event_id"], r["actor_id"], r["role"]) for r in listed] + sorted(named))))
    report.deleted["event_actors"] += (await conn.execute(stale)).rowcount
    await _upsert(conn, m.event_actors, listed, report, key=("event_id", "actor_id", "role"))

    await recompute_events(conn, event_ids)
    if report.changed:  # the seed's events against other sources' (an imported dataset's)
        await match_events(conn, event_ids, [SEED_DATASET])
    return report


async def load_seed_dir(conn: AsyncConnection, seeds_dir: Path = SEEDS_DIR) -> SeedReport:
    """Load every seeds/*.yaml in name order, in one transaction that the caller commits."""
    # Two loaders at once would race on the same keys; the second waits for the first.
    await conn.execute(text("SELECT pg_advisory_xact_lock(727002), set_config('conflictkb.actor', 'seed', true)"))
    await load_crosswalk(conn, seeds_dir / CROSSWALK_FILE.name)
    total = SeedReport()
    for path in sorted(seeds_dir.glob("*.yaml")):
        report = await load_seed(conn, read_seed_file(path))
        for mine, theirs in ((total.inserted, report.inserted), (total.updated, report.updated),
                             (total.deleted, report.deleted)):
            mine.update(theirs)
    await apply_seed_links(conn, seeds_dir)
    return total


async def apply_seed_links(conn: AsyncConnection, seeds_dir: Path = SEEDS_DIR) -> int:
    """The seeds' verdicts (`links:`) whose two records both exist and do not have that
    verdict yet, given as editor `seed` would give them (db/writes/links.py): after the
    seed, and again after the seeds' datasets are imported. Returns how many were new."""
    from db.writes.links import judge_pair  # (the write layer imports the seed's ids)

    await conn.execute(text("SELECT set_config('conflictkb.actor', 'seed', true)"))
    new = 0
    for path in sorted(seeds_dir.glob("*.yaml")):
        for link in read_seed_file(path).links:
            a, b = link.refs()
            found = [await resolve_event_id(conn, ref) for ref in (a, b)]
            if None in found:
                continue  # applied once the other record is imported
            standing = await conn.scalar(text("SELECT verdict FROM event_links WHERE event_id = :a AND other_id = :b"),
                                         {"a": found[0], "b": found[1]})
            if standing != link.verdict:
                await judge_pair(conn, a, b, link.verdict, link.note, other_field="other")
                new += 1
    return new
