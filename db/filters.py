"""The event filter: declared once, compiled to SQL in one place.

`EventFilter` is the one model of the filter: each field with its kind, description
and checks. REST's query parameters (api/params.py), GraphQL's `EventWhere` input
(schema/inputs.py) and the `where` grammar (EventWhere, below) are made from it, and
every one of them becomes an `EventFilter`, checked on construction by the same checks,
so a filter means the same, and is refused the same way, on every interface. Names
(countries, provinces, actors) are then resolved to ids once (`resolve_event_filter`),
through every alias and spelling, and a name that matches nothing is an error that
names the filter rather than a silently empty answer.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Annotated, Any
from uuid import UUID

from pydantic import BeforeValidator, ConfigDict, Field, create_model
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
from db.cache import request_generation
from db.names import name_variants, normalize_name

ATTRIBUTION_STATUSES = ("confirmed", "alleged", "contested", "unknown")

# What a FilterError's `code` says was wrong: the same on every interface (REST's
# problem `errors[].code`, GraphQL's `extensions.inputCode` for `where`).
FILTER_ERROR_CODES = {
    "malformed": "not written as the field is (a bbox's four numbers, an external id's dataset:id)",
    "out_of_range": "a number outside the field's range",
    "out_of_order": "bounds the wrong way round (a bbox's latitudes, date_to before date_from)",
    "not_one_of": "not one of the field's values",
    "not_in_vocabulary": "not a value of the field's vocabulary",
    "unmatched": "a name or id that matches nothing",
    "no_words": "a text search with no word to search for",
    "not_applicable": "does not apply with the rest of the request (include_members without an actor, "
                      "sort=relevance without q)",
    "repeated": "a value given twice where each may be given once",
    "too_large": "the answer would be larger than allowed",
}


class FilterError(ValueError):
    """A filter value that cannot be used, in the filter's own terms: `path` is the field
    by its name here, then the part of it at fault (`("near", "radius_km")`; under a
    nested filter `("_or", 0, "near", ...)`), `code` which check refused it
    (FILTER_ERROR_CODES) and `message` what is wrong. A message may name other fields,
    written `{date_from}` and listed in `mentions`: each interface writes those, like the
    path, by its own names (`message_named`)."""

    def __init__(self, path: str | tuple[str | int, ...], message: str, code: str,
                 mentions: tuple[str, ...] = ()):
        assert code in FILTER_ERROR_CODES, code
        self.path = (path,) if isinstance(path, str) else tuple(path)
        self.code = code
        self.template = message
        self.mentions = mentions
        super().__init__(f"{'.'.join(map(str, self.path))}: {self.message}")

    @property
    def field(self) -> str:
        """The field (or other parameter) at fault, at the top of the path."""
        return str(self.path[0])

    @property
    def message(self) -> str:
        return self.message_named(str)

    def message_named(self, name: Callable[[str], str]) -> str:
        """The message with the fields it mentions named by `name`."""
        message = self.template
        for mentioned in self.mentions:
            message = message.replace(f"{{{mentioned}}}", name(mentioned))
        return message

    def under(self, *prefix: str | int) -> FilterError:
        """The same error, found in a filter nested at `prefix`."""
        return FilterError((*prefix, *self.path), self.template, self.code, self.mentions)


EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180
MAX_RADIUS_KM = math.pi * EARTH_RADIUS_KM  # half the earth's circumference: every point
TEXT_SEARCH_CONFIG = "english"
# Counts are stored as 32-bit integers; a larger bound is an error, not an overflow.
MAX_COUNT = 2**31 - 1


@dataclass(frozen=True)
class Near:
    """Within `radius_km` (great-circle) of a point."""

    latitude: float
    longitude: float
    radius_km: float


# --------------------------------------------------------------------------- the model


class FilterKind(Enum):
    """What a filter field holds. Each interface has its own form of each kind (REST:
    api/params.py, GraphQL: schema/inputs.py, the `where` grammar: EventWhere below)."""

    DATE = "date"  # an ISO date
    NAMES = "names"  # texts (ids, names, codes), ORed
    CHOICES = "choices"  # some of the field's `choices`, ORed
    COUNT = "count"  # a whole number from 0 to MAX_COUNT
    FLAG = "flag"
    BBOX = "bbox"  # min_lon, min_lat, max_lon, max_lat
    NEAR = "near"  # a Near
    TEXT = "text"


LIST_KINDS = (FilterKind.NAMES, FilterKind.CHOICES)


def _check_count(name: str, value: int) -> None:
    if not 0 <= value <= MAX_COUNT:
        raise FilterError(name, f"must be between 0 and {MAX_COUNT}", "out_of_range")


def _check_bbox(name: str, bbox: tuple[float, ...]) -> None:
    if len(bbox) != 4:
        raise FilterError(name, "must be four numbers: the least longitude and latitude, then the greatest",
                          "malformed")
    min_lon, min_lat, max_lon, max_lat = bbox
    if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180):
        raise FilterError(name, "longitudes must be between -180 and 180", "out_of_range")
    if not (-90 <= min_lat <= 90 and -90 <= max_lat <= 90):
        raise FilterError(name, "latitudes must be between -90 and 90", "out_of_range")
    if min_lat > max_lat:
        raise FilterError(name, "the least latitude (the second number) is above the greatest (the fourth)",
                          "out_of_order")


def _check_near(name: str, near: Near) -> None:
    if not -90 <= near.latitude <= 90:
        raise FilterError((name, "latitude"), "must be between -90 and 90", "out_of_range")
    if not -180 <= near.longitude <= 180:
        raise FilterError((name, "longitude"), "must be between -180 and 180", "out_of_range")
    if not 0 < near.radius_km <= MAX_RADIUS_KM:
        raise FilterError((name, "radius_km"), f"must be above 0 and at most {MAX_RADIUS_KM:.0f}", "out_of_range")


def split_external_id(value: str) -> tuple[str, str] | None:
    """`ucdp-ged:123` -> ("ucdp-ged", "123"); None if it has no dataset prefix."""
    dataset, sep, external = value.partition(":")
    return (dataset, external) if sep and dataset and external else None


def _check_external_ids(name: str, values: tuple[str, ...]) -> None:
    if not all(map(split_external_id, values)):
        raise FilterError(name, "must be written dataset:id, for example ucdp-ged:214797", "malformed")


# The checks of each kind (a field may add its own).
_KIND_CHECKS: dict[FilterKind, Callable[[str, Any], None]] = {
    FilterKind.COUNT: _check_count, FilterKind.BBOX: _check_bbox, FilterKind.NEAR: _check_near}


@dataclass(frozen=True)
class FilterField:
    """One field of the event filter, as every interface shows it: its kind, its
    description (REST's parameter's and GraphQL's input field's), for CHOICES the
    values, for NAMES the vocabulary its values must be in (a table of db/models.py),
    and a check of its own beyond its kind's."""

    kind: FilterKind
    description: str
    choices: tuple[str, ...] = ()
    vocabulary: str | None = None
    check: Callable[[str, Any], None] | None = None

    def check_value(self, name: str, value: Any) -> None:
        if self.kind is FilterKind.CHOICES:
            bad = [v for v in value if v not in self.choices]
            if bad:
                raise FilterError(name, f"must be one of {', '.join(self.choices)}, not {bad[0]!r}", "not_one_of")
        if (kind_check := _KIND_CHECKS.get(self.kind)) is not None:
            kind_check(name, value)
        if self.check is not None:
            self.check(name, value)

    @property
    def default(self) -> Any:
        return () if self.kind in LIST_KINDS else False if self.kind is FilterKind.FLAG else None

    def value_of(self, value: Any) -> Any:
        """A plain value (a list, one text for a list, a mapping for near) as the field holds it."""
        if self.kind in LIST_KINDS:
            return (value,) if isinstance(value, str) else tuple(value)
        if self.kind is FilterKind.BBOX:
            return tuple(value)
        if self.kind is FilterKind.NEAR and isinstance(value, Mapping):
            return Near(**value)
        return value


def _declared(kind: FilterKind, description: str, **more: Any) -> Any:
    spec = FilterField(kind, description, **more)
    return field(default=spec.default, metadata={"filter": spec})


# The nested filters' names in the `where` grammar (REST's and GraphQL's alike), and in an
# error's path.
NESTING = {"all_of": "_and", "any_of": "_or", "none_of": "_not"}


@dataclass(frozen=True)
class EventFilter:
    """Every event filter of the API. Lists are ORed within, fields ANDed together. The
    descriptions are REST's parameters' and GraphQL's input fields'; a filter is
    checked when made (FilterError)."""

    date_from: dt.date | None = _declared(FilterKind.DATE, "Events whose interval ends on or after this ISO date.")
    date_to: dt.date | None = _declared(FilterKind.DATE, "Events whose interval starts on or before this ISO date.")
    country: tuple[str, ...] = _declared(FilterKind.NAMES, "ISO3/ISO2 code or name (any alias); repeatable.")
    admin1: tuple[str, ...] = _declared(
        FilterKind.NAMES, "Province or governorate name, any alias or spelling; repeatable.")
    admin2: tuple[str, ...] = _declared(FilterKind.NAMES, "District name, any alias or spelling; repeatable.")
    place: tuple[str, ...] = _declared(
        FilterKind.NAMES, "Place id or name; includes everything inside it; repeatable.")
    event_type: tuple[str, ...] = _declared(
        FilterKind.NAMES, "ACLED event type; repeatable.", vocabulary="event_types")
    sub_event_type: tuple[str, ...] = _declared(
        FilterKind.NAMES, "ACLED sub-event type; repeatable.", vocabulary="sub_event_types")
    actor: tuple[str, ...] = _declared(FilterKind.NAMES, "Actor id, name or alias, in any role; repeatable.")
    perpetrator: tuple[str, ...] = _declared(FilterKind.NAMES, "Actor id, name or alias as perpetrator.")
    target: tuple[str, ...] = _declared(FilterKind.NAMES, "Actor id, name or alias as target.")
    claimant: tuple[str, ...] = _declared(FilterKind.NAMES, "Events with a claim by this source (id or name).")
    attribution: tuple[str, ...] = _declared(
        FilterKind.CHOICES, "Events with an actor of this status.", choices=ATTRIBUTION_STATUSES)
    external_id: tuple[str, ...] = _declared(
        FilterKind.NAMES, "dataset:id, e.g. ucdp-ged:214797.", check=_check_external_ids)
    min_fatalities: int | None = _declared(FilterKind.COUNT, "Best fatality estimate at least this.")
    max_fatalities: int | None = _declared(FilterKind.COUNT, "Best fatality estimate at most this.")
    min_civilian_fatalities: int | None = _declared(
        FilterKind.COUNT, "Best civilian fatality estimate at least this.")
    include_members: bool = _declared(
        FilterKind.FLAG, "actor/perpetrator/target also match members (at the event's date) and sub-units.")
    bbox: tuple[float, float, float, float] | None = _declared(
        FilterKind.BBOX, "min_lon,min_lat,max_lon,max_lat (may cross 180°).")
    near: Near | None = _declared(FilterKind.NEAR, "lat,lon,radius_km: great-circle; adds distance_km.")
    q: str | None = _declared(FilterKind.TEXT, "Full-text search: summaries, quotes, place and actor names.")
    all_of: tuple[EventFilter, ...] = ()
    any_of: tuple[EventFilter, ...] = ()
    none_of: EventFilter | None = None

    def __post_init__(self) -> None:
        # the checks of every interface; nested filters were checked when made
        for name in self.given():
            if name not in NESTING:
                FILTER_FIELDS[name].check_value(name, getattr(self, name))
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise FilterError("date_to", "is before {date_from}", "out_of_order", mentions=("date_from",))

    def given(self) -> set[str]:
        """The names of the filters set (not at their defaults)."""
        # by identity: a bound of 0 is given (and 0 == False)
        return {f.name for f in fields(self)
                if (value := getattr(self, f.name)) is not None and value is not False and value != ()}

    def nested(self) -> tuple[EventFilter, ...]:
        return (*self.all_of, *self.any_of, *((self.none_of,) if self.none_of is not None else ()))

    def names_actors(self) -> bool:
        """Whether an actor filter is set here or in a nested filter."""
        return bool(self.actor or self.perpetrator or self.target) or any(f.names_actors() for f in self.nested())

    def combined_with(self, other: EventFilter) -> EventFilter:
        """Both filters ANDed: merged into one level when they set different filters
        (so `include_members`, `attribution`, `q` and `near` act as if written side by
        side), else `other` nested under this one."""
        if self.given() & other.given():
            return replace(self, all_of=(*self.all_of, other))
        return replace(other, **{name: getattr(self, name) for name in self.given()})


# The model: every filter field by its name, in the order the interfaces show them.
FILTER_FIELDS: dict[str, FilterField] = {f.name: f.metadata["filter"] for f in fields(EventFilter)
                                         if "filter" in f.metadata}
LIST_FIELDS = tuple(name for name, spec in FILTER_FIELDS.items() if spec.kind in LIST_KINDS)


def filter_of(values: Mapping[str, Any]) -> EventFilter:
    """The EventFilter of plain values by the filter's names (None or absent: not given;
    a list, or one text, for a list field; a mapping of latitude, longitude, radius_km
    for near), and of nested ones under `_and`, `_or` (lists of such mappings) and
    `_not` (one). Checked: a FilterError's path says where in the tree it is."""
    given = {name: FILTER_FIELDS[name].value_of(value) for name, value in values.items()
             if name not in NESTING.values() and value is not None}
    nested: dict[str, Any] = {}
    for name, key in NESTING.items():
        value = values.get(key)
        if name == "none_of":
            nested[name] = _nested_filter(value, key) if value is not None else None
        else:
            nested[name] = tuple(_nested_filter(item, key, i) for i, item in enumerate(value or ()))
    return EventFilter(**given, **nested)


def _nested_filter(values: Mapping[str, Any], *at: str | int) -> EventFilter:
    try:
        return filter_of(values)
    except FilterError as exc:
        raise exc.under(*at) from None


def ids_named_like(names: Table, q: str) -> Select:
    """Ids of the places or actors (by their `names` table) with a name containing `q`,
    ignoring case, accents and punctuation."""
    norm = normalize_name(q)
    if not norm:
        raise FilterError("q", "needs at least one letter or digit", "no_words")
    owner_id = names.c[names.name.removesuffix("_names") + "_id"]
    return select(owner_id).where(names.c.name_norm.contains(norm, autoescape=True))


def _as_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


def _unmatched(field: str, what: str, missing: list[str]) -> FilterError:
    return FilterError(field, f"no {what} matches {', '.join(map(repr, missing))}", "unmatched")


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
        raise FilterError(field, f"unknown value(s) {', '.join(map(repr, unknown))}", "not_in_vocabulary")


def _boxes(min_lon: float, min_lat: float, max_lon: float, max_lat: float) -> list[ColumnElement]:
    """Boxes (as SQL) covering a longitude range that may cross the antimeridian."""
    def box(lo: float, hi: float) -> ColumnElement:
        return func.box(func.point(lo, min_lat), func.point(hi, max_lat))

    if min_lon <= max_lon:
        return [box(min_lon, max_lon)]
    return [box(min_lon, 180.0), box(-180.0, max_lon)]


def near_boxes(near: Near) -> list[ColumnElement]:
    """Boxes that hold the whole circle: the index narrows to them, the exact
    great-circle distance decides. Right at the poles and across the antimeridian."""
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
        raise FilterError("q", f"has no words to search for in {q!r}", "no_words")
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


# The fields naming areas the events carry (db/migrations 0002: one index each) and the
# fields whose values are a vocabulary's.
AREA_FIELDS = ("country", "admin1", "admin2")
VOCABULARY_FIELDS = tuple(name for name, spec in FILTER_FIELDS.items() if spec.vocabulary)
# The actor filters: the role each matches (None: any).
ACTOR_FIELDS = {"actor": None, "perpetrator": "perpetrator", "target": "target"}


@dataclass(frozen=True)
class ResolvedFilter:
    """An EventFilter with what it names looked up: its places' ids, its actors with
    their members (ActorMatch), its claimants' ids, its external ids' events, its text
    query parsed and its vocabularies checked. Made once per request
    (resolve_event_filter): a page, its total and its rollup are all compiled from it."""

    filter: EventFilter
    places: Mapping[str, tuple[UUID, ...]]  # country, admin1, admin2, place -> ids
    actor_matches: tuple[ActorMatch, ...]  # actor, perpetrator, target (or attribution alone)
    claimants: tuple[UUID, ...]
    external_events: tuple[UUID, ...]
    tsquery: str | None
    all_of: tuple[ResolvedFilter, ...] = ()
    any_of: tuple[ResolvedFilter, ...] = ()
    none_of: ResolvedFilter | None = None
    # What is made from it and depends on nothing else: compile_event_filter's conditions
    # by how they were asked for, and first pages' SQL by order and size
    # (db.queries.common.first_page_rows). A filter resolved at a generation is kept
    # across requests, and so is what is made from it.
    compiled: dict[Any, Any] = field(default_factory=dict, init=False, compare=False, hash=False, repr=False)

    def without_near(self) -> ResolvedFilter:
        return replace(self, filter=replace(self.filter, near=None))


# Filters resolved at a data generation, most recently used last: until a write moves
# the generation, the same names name the same ids, and a request that knows its
# generation (db.cache.answering_request) skips the look-ups (a statement or more per
# name, ~0.4 ms of a page of 50 events in a province). Exact, as the generation
# moves with every write, so it holds under `no-cache` too.
_resolved: OrderedDict[tuple[str, EventFilter], ResolvedFilter] = OrderedDict()
KEPT_RESOLVED_FILTERS = 256


async def resolve_event_filter(conn: AsyncConnection, f: EventFilter | ResolvedFilter, *,
                               members_of_nested: bool = False) -> ResolvedFilter:
    """What `f` names, looked up; every name must name something (FilterError if not).
    `include_members` holds for the filters nested under the one that sets it. A filter
    resolved already is returned as it is."""
    if isinstance(f, ResolvedFilter):
        return f
    generation = request_generation()
    if generation is None or members_of_nested:
        return await _resolve_event_filter(conn, f, members_of_nested=members_of_nested)
    key = (generation, f)
    found = _resolved.get(key)
    if found is not None:
        _resolved.move_to_end(key)
        return found
    found = _resolved[key] = await _resolve_event_filter(conn, f)
    if len(_resolved) > KEPT_RESOLVED_FILTERS:
        _resolved.popitem(last=False)
    return found


async def _resolve_event_filter(conn: AsyncConnection, f: EventFilter, *,
                                members_of_nested: bool = False) -> ResolvedFilter:
    include_members = f.include_members or members_of_nested
    if f.include_members and not members_of_nested and not f.names_actors():
        raise FilterError("include_members", "applies to {actor}, {perpetrator} or {target}, and none is given",
                          "not_applicable", mentions=tuple(ACTOR_FIELDS))
    places = {name: tuple(await resolve_places(conn, name, getattr(f, name), name))
              for name in AREA_FIELDS if getattr(f, name)}
    for name in VOCABULARY_FIELDS:
        table = m.metadata.tables[FILTER_FIELDS[name].vocabulary]
        await check_vocabulary(conn, name, getattr(f, name), table, table.primary_key.columns[0].name)
    if f.place:
        places["place"] = tuple(await resolve_places(conn, "place", f.place, None))
    # attribution applies to the actors named by actor/perpetrator/target, else to any actor
    actor_matches = [await _resolve_actor_match(conn, await resolve_actors(conn, name, getattr(f, name)), role,
                                                include_members, f.attribution)
                     for name, role in ACTOR_FIELDS.items() if getattr(f, name)]
    if f.attribution and not actor_matches:
        actor_matches.append(ActorMatch(spans=(), roles=(), statuses=f.attribution))
    nested = {"members_of_nested": include_members}
    return ResolvedFilter(
        filter=f, places=places, actor_matches=tuple(actor_matches),
        claimants=tuple(await resolve_actors(conn, "claimant", f.claimant)) if f.claimant else (),
        external_events=tuple(await resolve_external_event_ids(conn, f.external_id)) if f.external_id else (),
        tsquery=await parse_text_query(conn, f.q) if f.q is not None else None,
        all_of=tuple([await resolve_event_filter(conn, sub, **nested) for sub in f.all_of]),
        any_of=tuple([await resolve_event_filter(conn, sub, **nested) for sub in f.any_of]),
        none_of=await resolve_event_filter(conn, f.none_of, **nested) if f.none_of is not None else None)


def area_and_type_conditions(resolved: ResolvedFilter, table: Table) -> list[ColumnElement[bool]]:
    """The country/admin1/admin2 and event type filters on a table with the events'
    columns for them (events, or the monthly rollup)."""
    conditions = [table.c[f"{name}_id"].in_(resolved.places[name]) for name in AREA_FIELDS if name in resolved.places]
    return conditions + [table.c[name].in_(values) for name in VOCABULARY_FIELDS
                         if (values := getattr(resolved.filter, name))]


async def compile_event_filter(conn: AsyncConnection, f: EventFilter | ResolvedFilter, *,
                               scan_in_order: bool = True, actor_matches: list[ActorMatch] | None = None
                               ) -> ColumnElement[bool]:
    """The SQL condition on `events` for a filter, its names resolved first unless they
    are (resolve_event_filter). `scan_in_order`: the list's order has an index (false
    for a sort by distance). `actor_matches` receives the actor filters of the top level
    *instead of* their conditions: the caller reads events through one of them
    (ActorMatch.events_by_date) and must AND the conditions of the others. (Both for
    the same filter mislead the planner: it would hash the condition's matches before
    walking the index.)"""
    resolved = await resolve_event_filter(conn, f)
    key = (scan_in_order, actor_matches is not None)
    if key not in resolved.compiled:
        matches: list[ActorMatch] = []
        condition = await _compile_event_filter(conn, resolved, scan_in_order=scan_in_order,
                                                actor_matches=matches if actor_matches is not None else None)
        resolved.compiled[key] = (condition, tuple(matches))
    condition, matches_apart = resolved.compiled[key]
    if actor_matches is not None:
        actor_matches += matches_apart
    return condition


async def _compile_event_filter(conn: AsyncConnection, resolved: ResolvedFilter, *, scan_in_order: bool,
                                actor_matches: list[ActorMatch] | None) -> ColumnElement[bool]:
    f = resolved.filter
    e = m.events.c
    conditions: list[ColumnElement[bool]] = []
    # Interval overlap: an event from March 1 to 31 is inside "from March 15".
    if f.date_from:
        conditions.append(e.date_end >= f.date_from)
    if f.date_to:
        conditions.append(e.date_start <= f.date_to)
    conditions += area_and_type_conditions(resolved, m.events)
    if f.place:
        conditions.append(_inside(resolved.places["place"]))
    if actor_matches is None:
        conditions += [match.condition() for match in resolved.actor_matches]
    else:
        actor_matches += resolved.actor_matches
    if f.claimant:
        conditions.append(exists().where(m.claims.c.event_id == e.id, m.claims.c.claimant_id.in_(resolved.claimants)))
    if f.external_id:
        conditions.append(e.id.in_(resolved.external_events))
    if f.min_fatalities is not None:
        conditions.append(e.fatalities_best >= f.min_fatalities)
    if f.max_fatalities is not None:
        conditions.append(e.fatalities_best <= f.max_fatalities)
    if f.min_civilian_fatalities is not None:
        conditions.append(e.civilian_fatalities_best >= f.min_civilian_fatalities)
    if f.bbox is not None:
        conditions.append(await _geo_condition(conn, _inside_boxes(_boxes(*f.bbox)), scan_in_order))
    if f.near is not None:
        conditions.append(await _geo_condition(conn, _inside_boxes(near_boxes(f.near)), scan_in_order))
        conditions.append(distance_km(f.near) <= f.near.radius_km)
    if resolved.tsquery is not None:
        conditions.append(matches_text(resolved.tsquery))
    for sub in resolved.all_of:
        conditions.append(await compile_event_filter(conn, sub, scan_in_order=scan_in_order))
    if resolved.any_of:
        conditions.append(or_(*[await compile_event_filter(conn, sub, scan_in_order=scan_in_order)
                                for sub in resolved.any_of]))
    if resolved.none_of is not None:
        # the complement: an event with no figure or no coordinates is NOT "at least 1"
        # or "inside the box", so it matches the negation (SQL's NOT NULL would drop it)
        conditions.append((await compile_event_filter(conn, resolved.none_of, scan_in_order=scan_in_order))
                          .is_not(true()))
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


async def resolve_external_event_ids(conn: AsyncConnection, values: tuple[str, ...]) -> list[UUID]:
    pairs = {v: split_external_id(v) for v in values}  # (all of them dataset:id: the model checks)
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
_GRAMMAR = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)
NearWhere = create_model("NearWhere", __config__=_GRAMMAR, **{part.name: (float, ...) for part in fields(Near)})
# The grammar's form of each kind: a type and a default. The values are checked by the
# model (EventFilter), not here: the grammar says what JSON it reads.
_GRAMMAR_FORMS: dict[FilterKind, tuple[Any, Any]] = {
    FilterKind.DATE: (dt.date | None, None), FilterKind.NAMES: (Names, []), FilterKind.CHOICES: (Names, []),
    FilterKind.COUNT: (int | None, None), FilterKind.FLAG: (bool, False), FilterKind.BBOX: (list[float] | None, None),
    FilterKind.NEAR: (NearWhere | None, None), FilterKind.TEXT: (str | None, None)}
_EventWhereFields = create_model("EventWhereFields", __config__=_GRAMMAR,
                                 **{name: _GRAMMAR_FORMS[spec.kind] for name, spec in FILTER_FIELDS.items()})


class EventWhere(_EventWhereFields):  # type: ignore[misc, valid-type]
    """The filter grammar shared by GraphQL `EventWhere` and REST's `where=` JSON:
    keys in camelCase (as in GraphQL) or snake_case, plus `_and`, `_or`, `_not`."""

    and_: list[EventWhere] = Field(default=[], alias="_and")
    or_: list[EventWhere] = Field(default=[], alias="_or")
    not_: EventWhere | None = Field(default=None, alias="_not")

    def values(self) -> dict[str, Any]:
        """The filter's values by its names, nested ones included (filter_of)."""
        given = {name: getattr(self, name) for name in FILTER_FIELDS if name in self.model_fields_set}
        if given.get("near") is not None:
            given["near"] = given["near"].model_dump()
        return {**given, "_and": [w.values() for w in self.and_], "_or": [w.values() for w in self.or_],
                "_not": self.not_.values() if self.not_ is not None else None}

    def to_filter(self) -> EventFilter:
        return filter_of(self.values())
