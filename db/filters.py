"""The event filter: one typed object, compiled to SQL in one place.

REST query parameters and GraphQL `EventWhere` both become an `EventFilter`, so a
filter means the same on both interfaces. Names (countries, provinces, actors) are
resolved to ids first, through every alias and spelling, and a name that matches
nothing is an error that names the filter rather than a silently empty answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from uuid import UUID

from sqlalchemy import ColumnElement, Select, Table, and_, exists, not_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models as m
from db.names import normalize_name

ATTRIBUTION_STATUSES = ("confirmed", "alleged", "contested", "unknown")


class FilterError(ValueError):
    """A filter value that cannot be used; `field` names the filter."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class EventFilter:
    """Every event filter of the API. Lists are ORed within, fields ANDed together."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    country: tuple[str, ...] = ()
    admin1: tuple[str, ...] = ()
    admin2: tuple[str, ...] = ()
    place: tuple[str, ...] = ()
    event_type: tuple[str, ...] = ()
    sub_event_type: tuple[str, ...] = ()
    actor: tuple[str, ...] = ()
    perpetrator: tuple[str, ...] = ()
    target: tuple[str, ...] = ()
    claimant: tuple[str, ...] = ()
    attribution: tuple[str, ...] = ()
    external_id: tuple[str, ...] = ()
    min_fatalities: int | None = None
    max_fatalities: int | None = None
    min_civilian_fatalities: int | None = None
    all_of: tuple["EventFilter", ...] = ()
    any_of: tuple["EventFilter", ...] = ()
    none_of: "EventFilter | None" = None

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) in (None, ()) for f in fields(self))


def ids_named_like(names: Table, q: str) -> Select:
    """Ids of the places or actors (by their `names` table) with a name containing `q`,
    ignoring case, accents and punctuation."""
    norm = normalize_name(q)
    if not norm:
        raise FilterError("q", "needs at least one letter or digit")
    owner_id = names.c[names.name.removesuffix("_names") + "_id"]
    return select(owner_id).where(names.c.name_norm.contains(norm, autoescape=True))


def _as_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


async def resolve_places(conn: AsyncConnection, field: str, values: tuple[str, ...],
                         kind: str | None) -> list[UUID]:
    """Ids of the places named by ids, ISO codes (countries) or any alias or spelling."""
    ids = [u for u in map(_as_uuid, values) if u]
    names = [v for v in values if _as_uuid(v) is None]
    found: list[UUID] = []
    if ids:
        found += (await conn.scalars(select(m.places.c.id).where(m.places.c.id.in_(ids)))).all()
    if names:
        norms = [normalize_name(v) for v in names]
        codes = [v.strip().upper() for v in names]
        conditions = [m.places.c.id.in_(select(m.place_names.c.place_id).where(m.place_names.c.name_norm.in_(norms)))]
        if kind == "country":
            conditions += [m.places.c.iso3.in_(codes), m.places.c.iso2.in_(codes)]
        stmt = select(m.places.c.id).where(or_(*conditions))
        if kind:
            stmt = stmt.where(m.places.c.kind == kind)
        found += (await conn.scalars(stmt)).all()
    if not found:
        raise FilterError(field, f"no {kind or 'place'} matches {', '.join(values)!r}")
    return found


async def resolve_actors(conn: AsyncConnection, field: str, values: tuple[str, ...]) -> list[UUID]:
    """Ids of the actors named by ids or any name or alias."""
    ids = [u for u in map(_as_uuid, values) if u]
    norms = [normalize_name(v) for v in values if _as_uuid(v) is None]
    stmt = select(m.actors.c.id).where(or_(
        m.actors.c.id.in_(ids),
        m.actors.c.id.in_(select(m.actor_names.c.actor_id).where(m.actor_names.c.name_norm.in_(norms)))))
    found = (await conn.scalars(stmt)).all()
    if not found:
        raise FilterError(field, f"no actor matches {', '.join(values)!r}")
    return list(found)


async def _check_vocabulary(conn: AsyncConnection, field: str, values: tuple[str, ...], table, column: str) -> None:
    known = set((await conn.scalars(select(table.c[column]).where(table.c[column].in_(values)))).all())
    unknown = [v for v in values if v not in known]
    if unknown:
        raise FilterError(field, f"unknown value(s) {', '.join(map(repr, unknown))}; see GET /v1/vocabularies")


def _inside(place_ids: list[UUID]) -> ColumnElement[bool]:
    return m.events.c.place_id.in_(
        select(m.place_lineage.c.descendant_id).where(m.place_lineage.c.ancestor_id.in_(place_ids)))


def _with_actor(actor_ids: list[UUID], role: str | None = None) -> ColumnElement[bool]:
    ea = m.event_actors
    condition = and_(ea.c.event_id == m.events.c.id, ea.c.actor_id.in_(actor_ids))
    if role:
        condition = and_(condition, ea.c.role == role)
    return exists().where(condition)


async def compile_event_filter(conn: AsyncConnection, f: EventFilter) -> ColumnElement[bool]:
    """The SQL condition on `events` for a filter, after resolving its names."""
    e = m.events.c
    conditions: list[ColumnElement[bool]] = []
    # Interval overlap: an event from March 1 to 31 is inside "from March 15".
    if f.date_from:
        conditions.append(e.date_end >= f.date_from)
    if f.date_to:
        conditions.append(e.date_start <= f.date_to)
    if f.date_from and f.date_to and f.date_from > f.date_to:
        raise FilterError("date_to", "is before date_from")
    for field, kind in (("country", "country"), ("admin1", "admin1"), ("admin2", "admin2"), ("place", None)):
        values = getattr(f, field)
        if values:
            conditions.append(_inside(await resolve_places(conn, field, values, kind)))
    if f.event_type:
        await _check_vocabulary(conn, "event_type", f.event_type, m.event_types, "name")
        conditions.append(e.event_type.in_(f.event_type))
    if f.sub_event_type:
        await _check_vocabulary(conn, "sub_event_type", f.sub_event_type, m.sub_event_types, "name")
        conditions.append(e.sub_event_type.in_(f.sub_event_type))
    for field, role in (("actor", None), ("perpetrator", "perpetrator"), ("target", "target")):
        values = getattr(f, field)
        if values:
            conditions.append(_with_actor(await resolve_actors(conn, field, values), role))
    if f.claimant:
        claimants = await resolve_actors(conn, "claimant", f.claimant)
        conditions.append(exists().where(m.claims.c.event_id == e.id, m.claims.c.claimant_id.in_(claimants)))
    if f.attribution:
        bad = [a for a in f.attribution if a not in ATTRIBUTION_STATUSES]
        if bad:
            raise FilterError("attribution", f"must be one of {', '.join(ATTRIBUTION_STATUSES)}, not {bad[0]!r}")
        ea = m.event_actors.c
        conditions.append(exists().where(ea.event_id == e.id, ea.status.in_(f.attribution)))
    if f.external_id:
        conditions.append(e.id.in_(await resolve_external_event_ids(conn, f.external_id)))
    if f.min_fatalities is not None:
        conditions.append(e.fatalities_best >= f.min_fatalities)
    if f.max_fatalities is not None:
        conditions.append(e.fatalities_best <= f.max_fatalities)
    if f.min_civilian_fatalities is not None:
        conditions.append(e.civilian_fatalities_best >= f.min_civilian_fatalities)
    for sub in f.all_of:
        conditions.append(await compile_event_filter(conn, sub))
    if f.any_of:
        conditions.append(or_(*[await compile_event_filter(conn, sub) for sub in f.any_of]))
    if f.none_of is not None:
        conditions.append(not_(await compile_event_filter(conn, f.none_of)))
    return and_(true(), *conditions)


def split_external_id(value: str) -> tuple[str, str] | None:
    """`ucdp-ged:123` -> ("ucdp-ged", "123"); None if it has no dataset prefix."""
    dataset, sep, external = value.partition(":")
    return (dataset, external) if sep and dataset and external else None


async def resolve_external_event_ids(conn: AsyncConnection, values: tuple[str, ...]) -> list[UUID]:
    pairs = [p for p in map(split_external_id, values) if p]
    if len(pairs) != len(values):
        raise FilterError("external_id", "must be written dataset:id, for example ucdp-ged:214797")
    x = m.event_external_ids.c
    rows = await conn.scalars(
        select(x.event_id).where(or_(*(and_(x.dataset == d, x.external_id == i) for d, i in pairs))))
    return list(rows.all())
