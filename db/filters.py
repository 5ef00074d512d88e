"""The event filter: one typed object, compiled to SQL in one place.

REST query parameters and GraphQL `EventWhere` both become an `EventFilter`, so a
filter means the same on both interfaces. Names (countries, provinces, actors) are
resolved to ids first, through every alias and spelling, and a name that matches
nothing is an error that names the filter rather than a silently empty answer.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel
from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    Table,
    Text,
    and_,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import REGCONFIG, TSQUERY
from sqlalchemy.sql.util import ClauseAdapter
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models as m
from db.names import name_variants, normalize_name

ATTRIBUTION_STATUSES = ("confirmed", "alleged", "contested", "unknown")


class FilterError(ValueError):
    """A filter value that cannot be used; `field` names the filter."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180
TEXT_SEARCH_CONFIG = "english"


@dataclass(frozen=True)
class Near:
    """Within `radius_km` (great-circle) of a point."""

    latitude: float
    longitude: float
    radius_km: float


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
    include_members: bool = False
    bbox: tuple[float, float, float, float] | None = None
    near: Near | None = None
    q: str | None = None
    all_of: tuple["EventFilter", ...] = ()
    any_of: tuple["EventFilter", ...] = ()
    none_of: "EventFilter | None" = None

    def given(self) -> set[str]:
        """The names of the filters set (not at their defaults)."""
        # by identity: a bound of 0 is given (and 0 == False)
        return {f.name for f in fields(self)
                if (value := getattr(self, f.name)) is not None and value is not False and value != ()}

    def names_actors(self) -> bool:
        """Whether an actor filter is set here or in a nested filter."""
        nested = (*self.all_of, *self.any_of, *((self.none_of,) if self.none_of else ()))
        return bool(self.actor or self.perpetrator or self.target) or any(f.names_actors() for f in nested)

    def combined_with(self, other: "EventFilter") -> "EventFilter":
        """Both filters ANDed: merged into one level when they set different filters
        (so `include_members`, `attribution`, `q` and `near` act as if written side by
        side), else `other` nested under this one."""
        if self.given() & other.given():
            return replace(self, all_of=(*self.all_of, other))
        return replace(other, **{name: getattr(self, name) for name in self.given()})


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


def _unmatched(field: str, what: str, missing: list[str]) -> FilterError:
    return FilterError(field, f"no {what} matches {', '.join(map(repr, missing))}")


async def resolve_places(conn: AsyncConnection, field: str, values: tuple[str, ...],
                         kind: str | None) -> list[UUID]:
    """Ids of the places named by ids, ISO codes (countries) or any alias or spelling.
    Every value must name something: one that does not is an error, not ignored."""
    p, n = m.places.c, m.place_names.c
    spellings = {v: name_variants(v) for v in values}
    codes = [v.strip().upper() for v in values] if kind == "country" else []
    stmt = (select(p.id, n.name_norm, p.iso2, p.iso3).select_from(m.places.outerjoin(m.place_names))
            .where(or_(p.id.in_([u for u in map(_as_uuid, values) if u]),
                       n.name_norm.in_({s for variants in spellings.values() for s in variants}),
                       p.iso3.in_(codes), p.iso2.in_(codes))))
    if kind:
        stmt = stmt.where(p.kind == kind)
    rows = (await conn.execute(stmt)).all()
    found, missing = set(), []
    for value in values:
        code, as_id = value.strip().upper(), _as_uuid(value)
        matches = {r.id for r in rows if r.id == as_id or r.name_norm in spellings[value]
                   or (kind == "country" and code in (r.iso2, r.iso3))}
        if not matches:
            missing.append(value)
        found |= matches
    if missing:
        raise _unmatched(field, kind or "place", missing)
    return sorted(found)


async def resolve_actors(conn: AsyncConnection, field: str, values: tuple[str, ...]) -> list[UUID]:
    """Ids of the actors named by ids or any name or alias; each value must name one."""
    a, n = m.actors.c, m.actor_names.c
    spellings = {v: name_variants(v) for v in values}
    rows = (await conn.execute(
        select(a.id, n.name_norm).select_from(m.actors.outerjoin(m.actor_names))
        .where(or_(a.id.in_([u for u in map(_as_uuid, values) if u]),
                   n.name_norm.in_({s for variants in spellings.values() for s in variants}))))).all()
    found, missing = set(), []
    for value in values:
        as_id = _as_uuid(value)
        matches = {r.id for r in rows if r.id == as_id or r.name_norm in spellings[value]}
        if not matches:
            missing.append(value)
        found |= matches
    if missing:
        raise _unmatched(field, "actor", missing)
    return sorted(found)


async def check_vocabulary(conn: AsyncConnection, field: str, values: tuple[str, ...], table: Table,
                           column: str = "code") -> None:
    """Every value must be in the vocabulary table (the ACLED taxonomy, kinds, predicates...)."""
    if not values:
        return
    known = set((await conn.scalars(select(table.c[column]).where(table.c[column].in_(values)))).all())
    unknown = [v for v in values if v not in known]
    if unknown:
        raise FilterError(field, f"unknown value(s) {', '.join(map(repr, unknown))}; see GET /v1/vocabularies")


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """`min_lon,min_lat,max_lon,max_lat` as written in a URL."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise FilterError("bbox", "must be min_lon,min_lat,max_lon,max_lat (four numbers)")
    return values  # type: ignore[return-value]


def parse_near(text: str) -> Near:
    """`lat,lon,radius_km` as written in a URL."""
    try:
        lat, lon, radius = (float(v) for v in text.split(","))
    except ValueError:
        raise FilterError("near", "must be lat,lon,radius_km (three numbers)") from None
    return Near(lat, lon, radius)


def _boxes(min_lon: float, min_lat: float, max_lon: float, max_lat: float) -> list[ColumnElement]:
    """Boxes (as SQL) covering a longitude range that may cross the antimeridian."""
    def box(lo: float, hi: float) -> ColumnElement:
        return func.box(func.point(lo, min_lat), func.point(hi, max_lat))

    if min_lon <= max_lon:
        return [box(min_lon, max_lon)]
    return [box(min_lon, 180.0), box(-180.0, max_lon)]


def _check_bbox(bbox: tuple[float, float, float, float]) -> None:
    min_lon, min_lat, max_lon, max_lat = bbox
    if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180):
        raise FilterError("bbox", "longitudes must be between -180 and 180")
    if not (-90 <= min_lat <= max_lat <= 90):
        raise FilterError("bbox", "latitudes must be between -90 and 90, min_lat <= max_lat")


def near_boxes(near: Near) -> list[ColumnElement]:
    """Boxes that hold the whole circle: the index narrows to them, the exact
    great-circle distance decides. Right at the poles and across the antimeridian."""
    if not (-90 <= near.latitude <= 90 and -180 <= near.longitude <= 180):
        raise FilterError("near", "latitude must be between -90 and 90, longitude between -180 and 180")
    if not 0 < near.radius_km <= math.pi * EARTH_RADIUS_KM:
        raise FilterError("near", f"radius_km must be above 0 and at most {math.pi * EARTH_RADIUS_KM:.0f}")
    angular = near.radius_km / EARTH_RADIUS_KM
    min_lat = near.latitude - math.degrees(angular)
    max_lat = near.latitude + math.degrees(angular)
    if min_lat <= -90 or max_lat >= 90 or math.sin(angular) >= math.cos(math.radians(near.latitude)):
        # the circle holds a pole: every longitude
        return _boxes(-180.0, max(min_lat, -90.0), 180.0, min(max_lat, 90.0))
    spread = math.degrees(math.asin(math.sin(angular) / math.cos(math.radians(near.latitude))))
    wrap = lambda lon: (lon + 180.0) % 360.0 - 180.0  # noqa: E731
    if spread >= 180:
        return _boxes(-180.0, min_lat, 180.0, max_lat)
    return _boxes(wrap(near.longitude - spread), min_lat, wrap(near.longitude + spread), max_lat)


def distance_km(near: Near, location: ColumnElement = m.events.c.location) -> ColumnElement[float]:
    """Great-circle distance of an event (or of another `location`) from the `near` point."""
    return func.great_circle_km(location, near.latitude, near.longitude)


def _inside_boxes(boxes: list[ColumnElement], location: ColumnElement = m.events.c.location) -> ColumnElement[bool]:
    """`location` inside one of the boxes: what a GiST index finds."""
    return or_(*(location.op("<@")(box) for box in boxes))


def within_near(near: Near, location: ColumnElement = m.events.c.location) -> ColumnElement[bool]:
    """`location` (an event's, or another) within the `near` circle."""
    return and_(_inside_boxes(near_boxes(near), location), distance_km(near, location) <= near.radius_km)


def text_query(q: str) -> ColumnElement:
    """The tsquery of `q` (web search syntax) parsed once per statement, for ranking: a
    scalar subquery is an InitPlan. Written inline, the cast of the configuration's
    name is only stable, so PostgreSQL parsed `q` again for every row it tested (a
    300-word `q` took 3.4 s to count 16,580 events)."""
    return select(func.websearch_to_tsquery(literal(TEXT_SEARCH_CONFIG).cast(REGCONFIG), q)).scalar_subquery()


async def parse_text_query(conn: AsyncConnection, q: str) -> str:
    """`q` parsed (websearch_to_tsquery) into a tsquery's text, for `matches_text`."""
    parsed = await conn.scalar(select(cast(func.websearch_to_tsquery(
        literal(TEXT_SEARCH_CONFIG).cast(REGCONFIG), q), Text)))
    if not parsed:
        raise FilterError("q", f"has no words to search for in {q!r}")
    return parsed


def matches_text(tsquery: str) -> ColumnElement[bool]:
    """Events matching a parsed tsquery (parse_text_query), passed as a value of type
    tsquery: the planner sees its terms (a frequent word is best found by reading the
    list's order, a rare one through ix_events_search), and nothing is parsed per row."""
    return m.events.c.search_vector.op("@@")(literal(tsquery, TSQUERY))


def _inside(place_ids: list[UUID]) -> ColumnElement[bool]:
    return m.events.c.place_id.in_(
        select(m.place_lineage.c.descendant_id).where(m.place_lineage.c.ancestor_id.in_(place_ids)))


# An actor filter naming more (actor, role) pairs than this is left to the events'
# own order (see ActorMatch.events_by_date): merging that many index scans costs more
# than it saves.
MAX_ACTOR_BRANCHES = 64


@dataclass(frozen=True)
class ActorMatch:
    """An actor filter with its names resolved: each actor with the dates during which
    it counts (a coalition's member only while a member; None: always), the roles to
    match (every role when the filter names none) and the attribution statuses. No
    actors (an attribution filter alone): any actor of those statuses."""

    spans: tuple[tuple[UUID, dt.date | None, dt.date | None], ...]
    roles: tuple[str, ...]
    statuses: tuple[str, ...]

    def _rows(self, actor: UUID, valid_from: dt.date | None, valid_to: dt.date | None) -> list[ColumnElement]:
        ea = m.event_actors.c
        during = [ea.actor_id == actor]
        if valid_from is not None:
            during.append(ea.date_end >= valid_from)
        if valid_to is not None:
            during.append(ea.date_start <= valid_to)
        return during

    def condition(self) -> ColumnElement[bool]:
        """The event has one of the actors, during its span, in a role, of a status."""
        ea, e = m.event_actors.c, m.events.c
        always = [actor for actor, valid_from, valid_to in self.spans if valid_from is None and valid_to is None]
        who = [ea.actor_id.in_(always)] if always else []
        who += [and_(*self._rows(*span)) for span in self.spans if span[1] is not None or span[2] is not None]
        condition = ea.event_id == e.id
        if self.spans:
            condition = and_(condition, or_(*who), ea.role.in_(self.roles))
        if self.statuses:
            condition = and_(condition, ea.status.in_(self.statuses))
        return exists().where(condition)

    def events_by_date(self, descending: bool) -> Subquery | None:
        """(date_start, event_id) of the matching events in date order, read from
        ix_event_actors_actor_date: one ordered index scan per actor and role, merged
        (PostgreSQL's Merge Append), so a page of a rare actor's events costs what a
        page of all events costs. An event may appear more than once (two members in
        it): the caller keeps distinct keys. None if there are too many scans to merge."""
        if len(self.spans) * len(self.roles) > MAX_ACTOR_BRANCHES:
            return None
        ea = m.event_actors.c
        order = (ea.date_start.desc(), ea.event_id.desc()) if descending else (ea.date_start, ea.event_id)
        if self.spans:  # ix_event_actors_actor_date
            branches = [select(ea.date_start, ea.event_id).where(
                            *self._rows(*span), ea.role == role, *([ea.status.in_(self.statuses)] if self.statuses else []))
                        .order_by(*order)
                        for span in self.spans for role in self.roles]
        else:  # ix_event_actors_status_date
            branches = [select(ea.date_start, ea.event_id).where(ea.status == status).order_by(*order)
                        for status in self.statuses]
        return (branches[0] if len(branches) == 1 else union_all(*branches)).subquery("actor_events")


async def _resolve_actor_match(conn: AsyncConnection, actor_ids: list[UUID], role: str | None,
                               include_members: bool, statuses: tuple[str, ...]) -> ActorMatch:
    """The actors of a filter, with `include_members` also the units under them (the
    actor tree) and their members while members. The memberships are read first, so
    the per-event test is plain comparisons of dates rather than a subquery per row."""
    spans: list[tuple[UUID, dt.date | None, dt.date | None]] = [(actor, None, None) for actor in actor_ids]
    if include_members:
        lineage, ms = m.actor_lineage.c, m.actor_memberships.c
        units = await conn.scalars(select(lineage.descendant_id).where(
            lineage.ancestor_id.in_(actor_ids), lineage.descendant_id.not_in(actor_ids)))
        spans += [(unit, None, None) for unit in units]
        memberships = await conn.execute(select(ms.member_id, ms.valid_from, ms.valid_to).where(
            ms.group_id.in_(actor_ids), ms.relation == "member"))
        spans += [tuple(row) for row in memberships]
    roles = (role,) if role else tuple(await conn.scalars(select(m.event_roles.c.code).order_by(m.event_roles.c.code)))
    return ActorMatch(spans=tuple(dict.fromkeys(spans)), roles=roles, statuses=statuses)


# A geographic area holding at least this many events is "dense" (see _geo_condition).
DENSE_AREA_EVENTS = 2000


async def _geo_condition(conn: AsyncConnection, inside: ColumnElement[bool], scan_in_order: bool
                         ) -> ColumnElement[bool]:
    """`inside` (location within boxes) as the planner should use it.

    PostgreSQL estimates any box to hold 0.1% of the rows, whatever it holds. A sparse
    area is best read through the GiST index and sorted; a dense one (a busy town) is
    best found by reading the list's own order (newest first) and testing each row,
    which stops after a page. Counting up to DENSE_AREA_EVENTS through the index
    (an index-only scan, a millisecond or two) tells which; a dense area's condition is
    then written so the index cannot take it. With `scan_in_order` false (a sort by
    distance must see every row in the area anyway) the index is always used."""
    if not scan_in_order:
        return inside
    sample = select(literal(1)).where(inside).limit(DENSE_AREA_EVENTS).subquery()
    if await conn.scalar(select(func.count()).select_from(sample)) < DENSE_AREA_EVENTS:
        return inside
    return inside.is_(true())


async def area_and_type_conditions(conn: AsyncConnection, f: EventFilter, table: Table) -> list[ColumnElement[bool]]:
    """The country/admin1/admin2 and event type filters, names resolved and checked, on a
    table with the events' columns for them (events, or the monthly rollup)."""
    conditions = []
    for field in ("country", "admin1", "admin2"):
        values = getattr(f, field)
        if values:
            conditions.append(table.c[f"{field}_id"].in_(await resolve_places(conn, field, values, field)))
    for field, vocabulary in (("event_type", m.event_types), ("sub_event_type", m.sub_event_types)):
        values = getattr(f, field)
        if values:
            await check_vocabulary(conn, field, values, vocabulary, "name")
            conditions.append(table.c[field].in_(values))
    return conditions


async def compile_event_filter(conn: AsyncConnection, f: EventFilter, *, scan_in_order: bool = True,
                               members_of_nested: bool = False, actor_matches: list[ActorMatch] | None = None
                               ) -> ColumnElement[bool]:
    """The SQL condition on `events` for a filter, after resolving its names.
    `scan_in_order`: the list's order has an index (false for a sort by distance).
    `include_members` holds for the filters nested under the one that sets it.
    `actor_matches` receives the actor filters of the top level *instead of* their
    conditions: the caller reads events through one of them (ActorMatch.events_by_date)
    and must AND the conditions of the others. (Both for the same filter mislead the
    planner: it would hash the condition's matches before walking the index.)"""
    e = m.events.c
    conditions: list[ColumnElement[bool]] = []
    include_members = f.include_members or members_of_nested
    if f.include_members and not members_of_nested and not f.names_actors():
        raise FilterError("include_members", "applies to actor, perpetrator or target, and none is given")
    # Interval overlap: an event from March 1 to 31 is inside "from March 15".
    if f.date_from:
        conditions.append(e.date_end >= f.date_from)
    if f.date_to:
        conditions.append(e.date_start <= f.date_to)
    if f.date_from and f.date_to and f.date_from > f.date_to:
        raise FilterError("date_to", "is before date_from")
    # Events carry their country, admin1 and admin2 (db/migrations 0002): one index each.
    conditions += await area_and_type_conditions(conn, f, m.events)
    if f.place:
        conditions.append(_inside(await resolve_places(conn, "place", f.place, None)))
    if f.attribution:
        bad = [a for a in f.attribution if a not in ATTRIBUTION_STATUSES]
        if bad:
            raise FilterError("attribution", f"must be one of {', '.join(ATTRIBUTION_STATUSES)}, not {bad[0]!r}")
    # attribution applies to the actors named by actor/perpetrator/target, else to any actor
    named_actors = [(field, role) for field, role in (("actor", None), ("perpetrator", "perpetrator"),
                                                      ("target", "target")) if getattr(f, field)]
    for field, role in named_actors:
        actor_ids = await resolve_actors(conn, field, getattr(f, field))
        match = await _resolve_actor_match(conn, actor_ids, role, include_members, f.attribution)
        if actor_matches is None:
            conditions.append(match.condition())
        else:
            actor_matches.append(match)
    if f.attribution and not named_actors:
        match = ActorMatch(spans=(), roles=(), statuses=f.attribution)
        if actor_matches is None:
            conditions.append(match.condition())
        else:
            actor_matches.append(match)
    if f.claimant:
        claimants = await resolve_actors(conn, "claimant", f.claimant)
        conditions.append(exists().where(m.claims.c.event_id == e.id, m.claims.c.claimant_id.in_(claimants)))
    if f.external_id:
        conditions.append(e.id.in_(await resolve_external_event_ids(conn, f.external_id)))
    if f.min_fatalities is not None:
        conditions.append(e.fatalities_best >= f.min_fatalities)
    if f.max_fatalities is not None:
        conditions.append(e.fatalities_best <= f.max_fatalities)
    if f.min_civilian_fatalities is not None:
        conditions.append(e.civilian_fatalities_best >= f.min_civilian_fatalities)
    if f.bbox is not None:
        _check_bbox(f.bbox)
        conditions.append(await _geo_condition(conn, _inside_boxes(_boxes(*f.bbox)), scan_in_order))
    if f.near is not None:
        conditions.append(await _geo_condition(conn, _inside_boxes(near_boxes(f.near)), scan_in_order))
        conditions.append(distance_km(f.near) <= f.near.radius_km)
    if f.q is not None:
        conditions.append(matches_text(await parse_text_query(conn, f.q)))
    nested = {"scan_in_order": scan_in_order, "members_of_nested": include_members}
    for sub in f.all_of:
        conditions.append(await compile_event_filter(conn, sub, **nested))
    if f.any_of:
        conditions.append(or_(*[await compile_event_filter(conn, sub, **nested) for sub in f.any_of]))
    if f.none_of is not None:
        # the complement: an event with no figure or no coordinates is NOT "at least 1"
        # or "inside the box", so it matches the negation (SQL's NOT NULL would drop it)
        conditions.append((await compile_event_filter(conn, f.none_of, **nested)).is_not(true()))
    return and_(true(), *conditions)


class Collapse(str, Enum):
    """What an event list, its total or its stats may fold the matching events into
    (REST `collapse=happening`, GraphQL `collapse: HAPPENING`)."""

    HAPPENING = "happening"


def first_of_its_happening(condition: ColumnElement[bool], key: tuple[ColumnElement, ...], descending: bool
                           ) -> ColumnElement[bool]:
    """The events that represent their happening (db/queries/happenings.py) among those
    meeting `condition`: the first by `key` (a sort key on `events` ending with the id,
    ascending or `descending`) of its records that meet `condition` (a record linked to
    none represents itself). A test per event of a few index reads, so a list in an
    indexed order still stops after a page: `condition` and `key` are applied to the
    happening's other records through an alias of `events`."""
    e = m.events.c
    earlier = m.events.alias("earlier")
    on_earlier = ClauseAdapter(earlier).traverse
    mine, theirs = m.happening_members.alias("mine"), m.happening_members.alias("theirs")
    here, there = tuple_(*key), tuple_(*(on_earlier(column) for column in key))
    return ~exists().select_from(
        mine.join(theirs, theirs.c.happening_id == mine.c.happening_id).join(earlier, earlier.c.id == theirs.c.event_id)
    ).where(mine.c.event_id == e.id, theirs.c.event_id != e.id, on_earlier(condition),
            there > here if descending else there < here)


def split_external_id(value: str) -> tuple[str, str] | None:
    """`ucdp-ged:123` -> ("ucdp-ged", "123"); None if it has no dataset prefix."""
    dataset, sep, external = value.partition(":")
    return (dataset, external) if sep and dataset and external else None


async def resolve_external_event_ids(conn: AsyncConnection, values: tuple[str, ...]) -> list[UUID]:
    pairs = {v: split_external_id(v) for v in values}
    if not all(pairs.values()):
        raise FilterError("external_id", "must be written dataset:id, for example ucdp-ged:214797")
    x = m.event_external_ids.c
    rows = (await conn.execute(select(x.dataset, x.external_id, x.event_id).where(
        or_(*(and_(x.dataset == d, x.external_id == i) for d, i in pairs.values()))))).all()
    found = {(r.dataset, r.external_id): r.event_id for r in rows}
    missing = [v for v, pair in pairs.items() if pair not in found]
    if missing:
        raise _unmatched("external_id", "event", missing)
    return list(found.values())


# --------------------------------------------------------------------------- the `where` grammar


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Names = Annotated[list[str], BeforeValidator(_listify)]


class NearWhere(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    radius_km: float = Field(gt=0, le=math.pi * EARTH_RADIUS_KM)


class EventWhere(BaseModel):
    """The filter grammar shared by GraphQL `EventWhere` and REST's `where=` JSON:
    keys in camelCase (as in GraphQL) or snake_case, plus `_and`, `_or`, `_not`."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    country: Names = []
    admin1: Names = []
    admin2: Names = []
    place: Names = []
    event_type: Names = []
    sub_event_type: Names = []
    actor: Names = []
    perpetrator: Names = []
    target: Names = []
    claimant: Names = []
    attribution: Annotated[list[Literal["confirmed", "alleged", "contested", "unknown"]], BeforeValidator(_listify)] = []
    external_id: Names = []
    min_fatalities: int | None = Field(default=None, ge=0, le=2**31 - 1)
    max_fatalities: int | None = Field(default=None, ge=0, le=2**31 - 1)
    min_civilian_fatalities: int | None = Field(default=None, ge=0, le=2**31 - 1)
    include_members: bool = False
    bbox: tuple[float, float, float, float] | None = None
    near: NearWhere | None = None
    q: str | None = None
    and_: list["EventWhere"] = Field(default=[], alias="_and")
    or_: list["EventWhere"] = Field(default=[], alias="_or")
    not_: "EventWhere | None" = Field(default=None, alias="_not")

    def to_filter(self) -> EventFilter:
        return EventFilter(
            date_from=self.date_from, date_to=self.date_to, country=tuple(self.country), admin1=tuple(self.admin1),
            admin2=tuple(self.admin2), place=tuple(self.place), event_type=tuple(self.event_type),
            sub_event_type=tuple(self.sub_event_type), actor=tuple(self.actor), perpetrator=tuple(self.perpetrator),
            target=tuple(self.target), claimant=tuple(self.claimant), attribution=tuple(self.attribution),
            external_id=tuple(self.external_id), min_fatalities=self.min_fatalities,
            max_fatalities=self.max_fatalities, min_civilian_fatalities=self.min_civilian_fatalities,
            include_members=self.include_members, bbox=self.bbox,
            near=Near(self.near.latitude, self.near.longitude, self.near.radius_km) if self.near else None,
            q=self.q, all_of=tuple(w.to_filter() for w in self.and_),
            any_of=tuple(w.to_filter() for w in self.or_),
            none_of=self.not_.to_filter() if self.not_ else None)
