"""Event stats: how many events, and their fatality sums, per place, period, type,
perpetrator or claimant, under any event filter.

Counting rule: an event is counted once, in the period that holds its first day inside
the asked dates: its start, or `date_from` when it began earlier (an event of March 28
to April 3 is a March event, or an April one when asked from April 1). So the groups
of a single-valued grouping (place, period, type) add up to the total of the same
list. An event with several perpetrators (or claimants) is counted under each of them;
one with none under null.

Sums add the figures events have (an event without a figure adds nothing); the
figures are each event's derived ones (README, "How figures are derived"). A group
holding an event whose upper bound is open ("over two dozen": low 25, no high) has no
upper bound either: its fatalities_high is null.

Collapsed by happening (`collapse=happening`), each happening counts once, as the
event that represents it: the first of its matching records in the default order of
the event list (newest first, then id), so the groups of a single-valued grouping add
up to the collapsed list's total; its sums are that record's figures (a happening's
other records add nothing: nothing is counted twice), and it is grouped by that
record's place, period, type, perpetrators and claimants.

Filters on dates, country/admin1/admin2 and types alone, with dates on month bounds,
and groupings by those areas, years, months and types are summed from the monthly
rollup (migration 0006) instead of the events; anything else (collapsed stats
included: the rollup counts events, not happenings) reads the events.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import hashlib
from dataclasses import dataclass

import orjson
from sqlalchemy import BigInteger, ColumnElement, Date, Integer, LargeBinary, Text, and_, case, cast, func, literal, select, true
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models as m
from db.cache import AnswerCache
from db.filters import (
    Collapse,
    EventFilter,
    FilterError,
    ResolvedFilter,
    area_and_type_conditions,
    compile_event_filter,
    first_of_its_happening,
    resolve_event_filter,
)

PERIODS = ("year", "month", "week", "day")
PLACE_DIMENSIONS = ("country", "admin1", "admin2")
ACTOR_DIMENSIONS = ("perpetrator", "claimant")
DIMENSIONS = ("country", "admin1", "admin2", "year", "month", "week", "day", "event_type", "sub_event_type",
              "perpetrator", "claimant")
MEASURES = ("events", "fatalities_low", "fatalities_best", "fatalities_high", "civilian_fatalities")
# An answer larger than this is refused (a chart has no use for it): narrow the filter
# or group more coarsely.
MAX_ROWS = 50_000

_ROLLUP_DIMENSIONS = {"country", "admin1", "admin2", "year", "month", "event_type", "sub_event_type"}
_ROLLUP_FILTERS = {"date_from", "date_to", "country", "admin1", "admin2", "event_type", "sub_event_type"}


def parse_group_by(values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """`group_by` as written (comma-separated, or repeated): each a known dimension, once."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    for name in names:
        if name not in DIMENSIONS:
            raise FilterError("group_by", f"unknown dimension {name!r}; one of {', '.join(DIMENSIONS)}",
                              "not_one_of")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise FilterError("group_by", f"names {repeated[0]!r} twice", "repeated")
    return tuple(names)


@dataclass(frozen=True)
class StatsRequest:
    group_by: tuple[str, ...]
    fill: bool = False
    collapse: Collapse | None = None

    def cache_key(self, f: EventFilter) -> str:
        return "stats:" + hashlib.sha256(repr((f, self.group_by, self.fill, self.collapse)).encode()).hexdigest()[:32]


def _month_aligned(f: EventFilter) -> bool:
    return ((f.date_from is None or f.date_from.day == 1)
            and (f.date_to is None or f.date_to.day == calendar.monthrange(f.date_to.year, f.date_to.month)[1]))


def rollup_answers(f: EventFilter, group_by: tuple[str, ...] = ()) -> bool:
    """Whether the monthly rollup holds the exact answer for this filter and grouping."""
    return (f.given() <= _ROLLUP_FILTERS and set(group_by) <= _ROLLUP_DIMENSIONS and _month_aligned(f))


def _rollup_level(f: EventFilter, group_by: tuple[str, ...]) -> int:
    """The coarsest level of the rollup (0 country, 1 admin1, 2 admin2) with the areas
    the filter and the grouping name."""
    if "admin2" in group_by or f.admin2:
        return 2
    return 1 if "admin1" in group_by or f.admin1 else 0


def _rollup_condition(resolved: ResolvedFilter, group_by: tuple[str, ...] = ()) -> ColumnElement[bool]:
    """The filter on the rollup's rows (rollup_answers(f) holds), with the ids its names
    were resolved to for the request (the events' condition uses the same)."""
    f = resolved.filter
    r = m.event_month_counts.c
    conditions: list[ColumnElement[bool]] = [r.level == _rollup_level(f, group_by), r.events != 0]
    # interval overlap on month bounds: ends in or after date_from's month, starts by date_to's
    if f.date_from:
        conditions.append(r.end_month >= f.date_from)
    if f.date_to:
        conditions.append(r.start_month <= f.date_to.replace(day=1))
    return and_(*conditions, *area_and_type_conditions(resolved, m.event_month_counts))


async def count_from_rollup(conn: AsyncConnection, f: EventFilter | ResolvedFilter) -> int:
    """The number of events matching `f` (rollup_answers(f) holds); its names resolved
    unless they are."""
    r = m.event_month_counts.c
    condition = _rollup_condition(await resolve_event_filter(conn, f))
    stmt = select(func.coalesce(func.bigint_sum(r.events), 0)).where(condition)
    return int(await conn.scalar(stmt))


# Periods group by their first day; labels are made once per group, not per event.
def _period_label(name: str, first_day: ColumnElement) -> ColumnElement:
    if name == "year":
        return cast(func.extract("year", first_day), Integer)
    return func.to_char(first_day, {"month": "YYYY-MM", "week": 'IYYY-"W"IW', "day": "YYYY-MM-DD"}[name])


async def _grouped(conn: AsyncConnection, f: EventFilter, group_by: tuple[str, ...],
                   collapse: Collapse | None = None):
    """The grouping statement: one column per dimension (ids for places and actors),
    then the measures."""
    resolved = await resolve_event_filter(conn, f)
    if collapse is None and rollup_answers(f, group_by):
        r = m.event_month_counts.c
        source = m.event_month_counts
        where = _rollup_condition(resolved, group_by)
        start = r.start_month
        keys: dict[str, ColumnElement] = {"country": r.country_id, "admin1": r.admin1_id, "admin2": r.admin2_id,
                                          "event_type": r.event_type, "sub_event_type": r.sub_event_type}
        # (bigint_sum: migration 0007; sum(bigint) would go through numeric)
        measures = [func.bigint_sum(r[name], type_=BigInteger) for name in MEASURES]
        open_high = func.bigint_sum(r.open_high_events, type_=BigInteger)
    else:
        e = m.events.c
        source = m.events
        where = await compile_event_filter(conn, resolved)
        if collapse is Collapse.HAPPENING:
            # (the key of GET /v1/events' default order, newest first: db/queries/events.py)
            where = and_(where, first_of_its_happening(where, (e.date_start, e.id), descending=True))
        start = e.date_start
        keys = {"country": e.country_id, "admin1": e.admin1_id, "admin2": e.admin2_id,
                "event_type": e.event_type, "sub_event_type": e.sub_event_type}
        measures = [func.count(), *(func.coalesce(func.sum(column), 0) for column in (
            e.fatalities_low, e.fatalities_best, e.fatalities_high, e.civilian_fatalities_best))]
        open_high = func.count().filter(and_(e.fatalities_high.is_(None),
                                             func.coalesce(e.fatalities_low, e.fatalities_best).is_not(None)))
        if "perpetrator" in group_by:
            ea = m.event_actors.alias("perpetrators")
            source = source.outerjoin(ea, and_(ea.c.event_id == e.id, ea.c.role == "perpetrator"))
            keys["perpetrator"] = ea.c.actor_id
        if "claimant" in group_by:
            claimants = (select(m.claims.c.claimant_id).where(m.claims.c.event_id == e.id).distinct()
                         .lateral("claimants"))
            source = source.outerjoin(claimants, true())
            keys["claimant"] = claimants.c.claimant_id
    # the counting rule: the period of the event's first day inside the asked dates
    first_day = func.greatest(start, literal(f.date_from, Date)) if f.date_from else start
    keys.update({name: cast(func.date_trunc(name, first_day), Date) for name in PERIODS})
    if source is m.event_month_counts and not f.date_from:
        keys["month"] = start  # already the first of its month
    # a group with an open upper bound (an event "over two dozen") has none either
    measures[MEASURES.index("fatalities_high")] = case((open_high > 0, None),
                                                       else_=measures[MEASURES.index("fatalities_high")])
    columns = [keys[name].label(name) for name in group_by]
    stmt = select(*columns, *(measure.label(name) for measure, name in zip(measures, MEASURES))).select_from(source)
    return stmt.where(where).group_by(*columns)


def _json_text(value: ColumnElement) -> ColumnElement:
    """A value as JSON text ('null' for null)."""
    return func.coalesce(cast(func.to_json(value), Text), literal("null"))


def _json_member(name: str, value: ColumnElement) -> ColumnElement:
    return literal(f'"{name}":') + value


async def _rows_json(conn: AsyncConnection, f: EventFilter, group_by: tuple[str, ...],
                     collapse: Collapse | None = None) -> bytes:
    """The groups as a JSON array, in group_by order (names in code-point order, nulls
    last), written by PostgreSQL as one text. A chart of all air strikes by province
    and month is 16,000 groups: each group's JSON is put together from text pieces,
    and what repeats (a province's name and id) is made once per province, not per
    group (json_build_object per group cost twice as much; Python objects more)."""
    grouped = (await _grouped(conn, f, group_by, collapse)).cte("grouped")
    members: list[ColumnElement] = []
    order: list[ColumnElement] = []
    source = grouped
    for name in group_by:
        key = grouped.c[name]
        if name in PLACE_DIMENSIONS or name in ACTOR_DIMENSIONS:
            table = m.places if name in PLACE_DIMENSIONS else m.actors
            # the places of the level (an event's area ids are always of their kind: its
            # place trigger, migration 0002), else the actors found: ranking a province's
            # hundred names costs less than picking them out of 16,000 groups first
            named_here = table.c.kind == name if name in PLACE_DIMENSIONS else table.c.id.in_(select(key))
            named = (select(table.c.id,
                            (_json_member(name, _json_text(table.c.name)) + literal(f',"{name}_id":')
                             + _json_text(table.c.id)).label("json"),
                            func.row_number().over(order_by=(table.c.name.collate("C"), table.c.id)).label("rank"))
                     .where(named_here).subquery(f"{name}_named"))
            source = source.outerjoin(named, named.c.id == key)
            members.append(func.coalesce(named.c.json, literal(f'"{name}":null,"{name}_id":null')))
            order.append(named.c.rank.asc().nulls_last())
        elif name in PERIODS:  # digits and dashes: nothing to escape
            members.append(_json_member(name, cast(func.extract("year", key), Integer).cast(Text) if name == "year"
                                        else literal('"') + _period_label(name, key) + literal('"')))
            order.append(key)
        else:
            members.append(_json_member(name, _json_text(key)))
            order.append(key.collate("C"))
    members += [_json_member(name, func.coalesce(cast(grouped.c[name], Text), literal("null"))
                             if name == "fatalities_high" else cast(grouped.c[name], Text)) for name in MEASURES]
    row = literal("{") + functools.reduce(lambda left, right: left + literal(",") + right, members) + literal("}")
    separator = literal(",")
    # (PostgreSQL's ORDER BY of an aggregate follows its last argument)
    rows = func.string_agg(row, aggregate_order_by(separator, *order) if order else separator)
    # as UTF-8 bytes (bytea): the 3 MB of a large answer are neither decoded nor encoded again
    body = func.convert_to(literal("[") + func.coalesce(rows, literal("")) + literal("]"), literal("UTF8"),
                           type_=LargeBinary)
    groups, json_rows = (await conn.execute(select(func.count(), body).select_from(source))).one()
    if groups > MAX_ROWS:
        raise FilterError("group_by", f"gives more than {MAX_ROWS:,} groups; narrow the filters or group "
                                      "more coarsely", "too_large")
    return json_rows


def _sort_key(group_by: tuple[str, ...]):
    """The order _rows_json gives (for rows fill adds): each dimension in turn, named
    groups by name (then id: two provinces may share a name), nulls last."""
    def key(row: dict) -> tuple:
        parts = []
        for name in group_by:
            parts.append((row[name] is None, row[name] if row[name] is not None else ""))
            if name in PLACE_DIMENSIONS or name in ACTOR_DIMENSIONS:
                parts.append(row[f"{name}_id"] or "")
        return tuple(parts)

    return key


def _periods(period: str, first: dt.date, last: dt.date) -> list[str | int]:
    """Every period label from the one holding `first` to the one holding `last`
    (counted before any is made: a fill too large is refused, not built)."""
    if period == "year":
        count = last.year - first.year + 1
    elif period == "month":
        count = (last.year - first.year) * 12 + last.month - first.month + 1
    else:
        step = 7 if period == "week" else 1
        first = first - dt.timedelta(days=first.weekday()) if period == "week" else first
        count = (last - first).days // step + 1
    if count > MAX_ROWS:
        raise FilterError("fill", f"would give more than {MAX_ROWS:,} rows; narrow the dates or the groups",
                          "too_large")
    if period == "year":
        return list(range(first.year, last.year + 1))
    if period == "month":
        months = (first.year * 12 + first.month - 1 + i for i in range(count))
        return [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in months]
    days = (first + dt.timedelta(days=i * step) for i in range(count))  # never past `last`
    if period == "week":
        return [f"{d.isocalendar().year:04d}-W{d.isocalendar().week:02d}" for d in days]
    return [d.isoformat() for d in days]


def _period_start(period: str, label: str | int) -> dt.date:
    if period == "year":
        return dt.date(int(label), 1, 1)
    if period == "month":
        return dt.date.fromisoformat(f"{label}-01")
    if period == "week":
        year, week = str(label).split("-W")
        return dt.date.fromisocalendar(int(year), int(week), 1)
    return dt.date.fromisoformat(str(label))


def _filled(rows: list[dict], f: EventFilter, group_by: tuple[str, ...]) -> list[dict]:
    """Zero rows for the periods without events, between date_from and date_to (or
    the first and last period found), for each combination of the other groups."""
    periods = [name for name in group_by if name in PERIODS]
    if len(periods) != 1:
        raise FilterError("fill", "needs exactly one of year, month, week, day in {group_by}", "not_applicable",
                          mentions=("group_by",))
    period = periods[0]
    starts = [_period_start(period, row[period]) for row in rows]
    first = f.date_from or (min(starts) if starts else None)
    last = f.date_to or (max(starts) if starts else None)
    if first is None or last is None:
        return rows
    others = [key for name in group_by if name != period
              for key in ((name, f"{name}_id") if name in (*PLACE_DIMENSIONS, *ACTOR_DIMENSIONS) else (name,))]
    combinations = {tuple(row[key] for key in others) for row in rows}
    if not others:
        combinations = {()}  # the period alone: every period, found or not
    labels = _periods(period, first, last)
    if len(labels) * len(combinations) > MAX_ROWS:
        raise FilterError("fill", f"would give more than {MAX_ROWS:,} rows; narrow the dates or the groups",
                          "too_large")
    seen = {(tuple(row[key] for key in others), row[period]) for row in rows}
    zeros = [{**dict(zip(others, combination)), period: label, **dict.fromkeys(MEASURES, 0)}
             for combination in combinations for label in labels if (combination, label) not in seen]
    return rows + zeros


async def event_stats(conn: AsyncConnection, cache: AnswerCache | None, f: EventFilter, request: StatsRequest
                      ) -> bytes:
    """The groups (see the module) as a JSON array, cached per data generation in
    `cache` (None: not cached here, the caller caches whole answers)."""
    if request.fill and not any(name in PERIODS for name in request.group_by):
        raise FilterError("fill", "needs one of year, month, week, day in {group_by}", "not_applicable",
                          mentions=("group_by",))

    async def compute() -> bytes:
        rows = await _rows_json(conn, f, request.group_by, request.collapse)
        if not request.fill:
            return rows
        return orjson.dumps(sorted(_filled(orjson.loads(rows), f, request.group_by), key=_sort_key(request.group_by)))

    if cache is None:
        return await compute()
    return (await cache.answer(request.cache_key(f), compute, encode=bytes, decode=bytes)).value
