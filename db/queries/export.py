"""Exports: every event matching a filter, in a stable order, read in chunks through a
server-side cursor, so an export of a million events holds one chunk in memory.

One flat row per event carries what every export format needs (the formats in
api/exports.py only write rows differently): the event's own columns, its place and
the areas above it by name and id, its external ids, its actors with role and
attribution status, and the names of the sources that made claims about it. Ids are
read as text (they are written as text in every format).

Each row is put together from indexed lookups per event (actors, sources, external
ids), in the order of an index where the sort has one, so the first rows leave before
the last are read. Where the work goes, measured on 200,000 generated events (NDJSON):
PostgreSQL spends about 35 us of CPU per row, most of it looking up actors and
sources; Python about 20 us making and writing the record (CSV about 35). Building
each row's JSON in PostgreSQL instead (to_json per row) cost it 10 us more per row to
save Python 14: fewer CPU-seconds in all, but a longer critical path, PostgreSQL being
the slower side with a core of its own. So rows come as columns, and the formats are
written in Python while PostgreSQL reads the next chunk (stream_rows).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence

import anyio
from sqlalchemy import JSON, ColumnElement, Row, Select, Text, cast, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models as m
from db.filters import EventFilter, compile_event_filter
from db.queries.events import event_sort

# Rows per fetch from the cursor, and per chunk handed to a format: enough that a round
# trip costs little beside them, few enough that writing one out (10-20 ms) holds the
# event loop, and other requests, only briefly; a chunk is a few hundred kilobytes.
EXPORT_CHUNK_ROWS = 500

e = m.events.c

# Actors in a stable order: perpetrators, targets, participants; within a role the
# firmest attribution first (confirmed, alleged, contested, unknown), then by name.
_EVENT_ACTORS = literal_column("""(
  SELECT json_agg(json_build_object('role', ea.role, 'status', ea.status, 'id', a.id, 'name', a.name,
                                    'kind', a.kind)
                  ORDER BY array_position(ARRAY['perpetrator', 'target', 'participant'], ea.role),
                           array_position(ARRAY['confirmed', 'alleged', 'contested', 'unknown'], ea.status),
                           a.name, a.id)
    FROM event_actors ea JOIN actors a ON a.id = ea.actor_id
   WHERE ea.event_id = events.id)""", JSON)
# The sources: every actor that made a claim about the event, once, by name.
_EVENT_SOURCES = literal_column("""(
  SELECT array_agg(DISTINCT a.name)
    FROM claims c JOIN actors a ON a.id = c.claimant_id
   WHERE c.event_id = events.id)""")
# dataset:id, the form every read of the API accepts (`/v1/events/ucdp-ged:214797`).
_EVENT_EXTERNAL_IDS = literal_column("""(
  SELECT array_agg(x.dataset || ':' || x.external_id ORDER BY x.dataset, x.external_id)
    FROM event_external_ids x
   WHERE x.event_id = events.id)""")


def _as_text(column: ColumnElement) -> ColumnElement[str]:
    return cast(column, Text)


_place, _admin2, _admin1, _country = (m.places.alias(name) for name in ("place", "admin2", "admin1", "country"))
_EXPORT_COLUMNS = (
    _as_text(e.id).label("id"),
    _EVENT_EXTERNAL_IDS.label("external_ids"),
    e.event_type, e.sub_event_type, e.type_of_violence,
    e.date_start, e.date_end, e.date_precision,
    _as_text(_country.c.id).label("country_id"), _country.c.name.label("country"), _country.c.iso3.label("iso3"),
    _as_text(_admin1.c.id).label("admin1_id"), _admin1.c.name.label("admin1"),
    _as_text(_admin2.c.id).label("admin2_id"), _admin2.c.name.label("admin2"),
    _as_text(_place.c.id).label("place_id"), _place.c.name.label("place"), _place.c.kind.label("place_kind"),
    # the event's own point, else its place's (as every read of the API gives it)
    func.coalesce(e.latitude, _place.c.latitude).label("latitude"),
    func.coalesce(e.longitude, _place.c.longitude).label("longitude"),
    e.geo_precision,
    e.fatalities_low, e.fatalities_best, e.fatalities_high,
    e.civilian_fatalities_low, e.civilian_fatalities_best, e.civilian_fatalities_high,
    e.summary,
    _EVENT_ACTORS.label("actors"),
    _EVENT_SOURCES.label("sources"),
    e.updated_at,
)
_EXPORT_FROM = (m.events.join(_place, _place.c.id == e.place_id)
                .outerjoin(_admin2, _admin2.c.id == e.admin2_id)
                .outerjoin(_admin1, _admin1.c.id == e.admin1_id)
                .outerjoin(_country, _country.c.id == e.country_id))
# The names of an export row's values, in order (plain str, as JSON keys want them).
EXPORT_FIELDS = tuple(str(column.name) for column in _EXPORT_COLUMNS)


async def export_statement(conn: AsyncConnection, f: EventFilter, sort: str = "-date",
                           fields: Collection[str] | None = None) -> Select:
    """The export rows of the events matching `f`, in `sort` order (the list's sorts;
    ties by id), names in the filter resolved now: a bad filter raises FilterError
    here, before anything is written. A row holds EXPORT_FIELDS, or only `fields` of
    them (in EXPORT_FIELDS' order): a row that leaves out the actors and sources costs
    PostgreSQL a fraction of a whole one."""
    order = event_sort(sort, f)
    # Every match is read, so an area's events are best found through the spatial
    # index and sorted, never by scanning the whole order for them.
    condition = await compile_event_filter(conn, f, scan_in_order=False)
    columns = _EXPORT_COLUMNS if fields is None else [c for c in _EXPORT_COLUMNS if c.name in fields]
    return order.apply(select(*columns).select_from(_EXPORT_FROM).where(condition), None)


async def export_size(conn: AsyncConnection, statement: Select, cap: int) -> int:
    """How many rows the export statement will give, counted up to `cap`: in no order
    and without its columns (PostgreSQL drops a subquery's unused outputs), so it costs
    a fraction of the export (30 ms for the 16,580 events of the shipped data)."""
    rows = statement.order_by(None).limit(cap).subquery()
    return await conn.scalar(select(func.count()).select_from(rows))


async def stream_rows(conn: AsyncConnection, statement: Select,
                      chunk_rows: int | None = None) -> AsyncIterator[Sequence[Row]]:
    """The statement's rows in chunks (of EXPORT_CHUNK_ROWS unless said), from a
    server-side cursor inside the connection's transaction (begun here if none is open).

    The next chunk is asked for before this one is handed out, so PostgreSQL reads it
    (in its own process) while the caller writes this one out: two chunks are held at
    most, whatever the size of the whole. A caller that may stop early closes this
    (contextlib.aclosing) before the connection."""
    chunk_rows = chunk_rows or EXPORT_CHUNK_ROWS
    result = await conn.stream(statement.execution_options(yield_per=chunk_rows))
    ahead: asyncio.Future | None = None
    try:
        ahead = asyncio.ensure_future(result.fetchmany(chunk_rows))
        while chunk := await ahead:
            ahead = asyncio.ensure_future(result.fetchmany(chunk_rows))
            await asyncio.sleep(0)  # the fetch sends its request now, before the caller is busy
            yield chunk
    finally:
        # Stopped early (a client gone, a failed write): the fetch under way finishes
        # first, or the connection's rollback would find it busy. Shielded, since a
        # client gone is a cancellation that AnyIO (under Starlette) delivers again at
        # every await until the streaming ends. What the fetch got or raised is of no use.
        if ahead is not None:
            with anyio.CancelScope(shield=True):
                await asyncio.wait([ahead])
            if not ahead.cancelled():
                ahead.exception()
        await result.close()
