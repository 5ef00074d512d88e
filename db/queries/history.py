"""Reads of the past (migration 0018): an event's history, the knowledge base as it
stood at a time (`as_of`), the change feed and tombstones.

The history is in `change_sets`: one per statement and table, with each changed row's
key and the row as it was before the change (none when the statement created it). The
row after a change is the next change's before, or the row as it is now. So a row as it
stood at a time T is the before of its first change after T (absent if that change
created it), or the row now if nothing changed it since. Changes are ordered by
(generation, change set, row): generations are handed out in commit order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any
from uuid import UUID

from sqlalchemy import CTE, TIMESTAMP, and_, bindparam, column, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models as m
from db.cache import AnswerCache
from db.filters import ActorMatch, Collapse, EventFilter, FilterError, compile_event_filter
from db.pagination import CursorCodec, Page, PageRequest, Sort
from db.queries.common import keyset_page
from db.queries.events import (
    ATTRIBUTION_SQL,
    EVENT_LIST_TREE_SQL,
    EVENT_TREE_SQL,
    event_sort,
    event_id_of,
)

cs = m.change_sets.c
ch = m.changes.c

# The record types of the feed and the tables that hold them.
TABLE_OF_TYPE = {"event": "events", "claim": "claims", "actor": "actors", "place": "places",
                 "document": "documents"}


class _Part:
    """A table an event's history lists: what the history calls its rows, the columns
    that key a row (as the history triggers were given them, migrations 0013 and 0015)
    and the column naming the event."""

    def __init__(self, name: str, key_columns: str, event_column: str):
        self.name, self.event_column = name, event_column
        self.key_columns = key_columns.split(",")

    def key(self, alias: str) -> str:
        """SQL for a row's key as the history writes it: the columns' text joined by '/'."""
        return " || '/' || ".join(f"{alias}.{c}::text" for c in self.key_columns)


# The rows that make up an event (its state at a time is made of them) ...
_PART_OF_EVENT = {"events": _Part("event", "id", "id"), "claims": _Part("claim", "id", "event_id"),
                  "event_actors": _Part("event_actor", "event_id,actor_id,role", "event_id"),
                  "event_external_ids": _Part("external_id", "dataset,external_id", "event_id")}
# ... and what else its history lists: an editor's verdict on the event and another
# (migration 0015; the key: this event/the other), which no state of the event holds.
_IN_HISTORY = {**_PART_OF_EVENT, "event_links": _Part("link", "event_id,other_id", "event_id")}
# Columns no reader needs to see change: they move with every write.
_NOT_COMPARED = frozenset({"updated_at"})

# Every row a change set changed, in order: its key, the event it was part of before the
# change and after it (an update may move a row to another event), its before.
_CHANGED_ROWS = ("unnest(s.keys, s.event_ids, s.events_after, s.befores) WITH ORDINALITY "
                 "AS k(key, event_id, event_after, before, n)")


def _table_list(tables) -> str:
    return ", ".join(f"'{t}'" for t in tables)


# The rows of one event's tables as they stood at :as_of, under the tables' own names:
# a CTE shadows the table it is named after, so the event tree's SQL reads the past
# unchanged. Actors, places and documents are read as they are now (their names).
# (A row moved here from another event since is the other's then: its before says so.)
_STATE_AS_OF = f"""WITH later_changes AS MATERIALIZED (  -- each row's first change after :as_of
  SELECT DISTINCT ON (s.table_name, k.key) s.table_name, k.key, s.op, k.before
    FROM change_sets s, {_CHANGED_ROWS}
   WHERE s.events_touched && :ids AND s.at > :as_of AND s.table_name IN ({_table_list(_PART_OF_EVENT)})
     AND (k.event_id = ANY(:ids) OR k.event_after = ANY(:ids))
   ORDER BY s.table_name, k.key, s.at, s.id, k.n
)""" + "".join(f""",
{table} AS MATERIALIZED (
  SELECT t.* FROM public.{table} t
   WHERE t.{part.event_column} = ANY(:ids)
     AND NOT EXISTS (SELECT 1 FROM later_changes l WHERE l.table_name = '{table}' AND l.key = {part.key("t")})
  UNION ALL
  SELECT r.* FROM later_changes l, jsonb_populate_record(NULL::public.{table}, l.before) r
   WHERE l.table_name = '{table}' AND l.op <> 'created' AND r.{part.event_column} = ANY(:ids)
)""" for table, part in _PART_OF_EVENT.items()) + "\n"

_AS_OF_PARAMS = (bindparam("ids", type_=ARRAY(PG_UUID(as_uuid=True))),
                 bindparam("as_of", type_=TIMESTAMP(timezone=True)))
_EVENT_TREES_AS_OF = text(_STATE_AS_OF + EVENT_TREE_SQL).bindparams(*_AS_OF_PARAMS)
_EVENT_LIST_TREES_AS_OF = text(_STATE_AS_OF + EVENT_LIST_TREE_SQL).bindparams(*_AS_OF_PARAMS)

# A table as it stood at :as_of_<table>, every row of it (for lists as of a time): the
# rows no change since has touched, and the befores of the first changes since. It
# reads the table and the changes made since :as_of, so it costs what the table's size
# and the changes since do, not what the page's.
_TABLE_AS_OF = """
WITH later_changes AS MATERIALIZED (
  SELECT DISTINCT ON (k.key) k.key, s.op, k.before
    FROM change_sets s, {changed_rows}
   WHERE s.table_name = '{table}' AND s.at > :as_of_{table}
   ORDER BY k.key, s.at, s.id, k.n
)
SELECT t.* FROM public.{table} t WHERE NOT EXISTS (SELECT 1 FROM later_changes l WHERE l.key = {key})
UNION ALL
SELECT r.* FROM later_changes l, jsonb_populate_record(NULL::public.{table}, l.before) r WHERE l.op <> 'created'"""
# What an event list reads that has a history (places and actors are read as they are now).
_LISTED_TABLES = (m.events, m.claims, m.event_actors, m.event_external_ids)
# Filters on what the history does not keep (search text and points are derived).
_NOT_AS_OF = {"q": "full-text search", "near": "distances", "bbox": "boxes"}
_ATTRIBUTION_AS_OF = text(_STATE_AS_OF + ATTRIBUTION_SQL).bindparams(*_AS_OF_PARAMS)
_ATTRIBUTION_NOW = text(ATTRIBUTION_SQL).bindparams(_AS_OF_PARAMS[0])


async def event_as_of(conn: AsyncConnection, event_id: UUID, as_of: dt.datetime) -> dict | None:
    """The event's tree as it stood at `as_of`; None if it did not exist then."""
    rows = (await conn.execute(_EVENT_TREES_AS_OF, {"ids": [event_id], "as_of": _checked(as_of)})).all()
    return rows[0].tree if rows else None


def _checked(as_of: dt.datetime) -> dt.datetime:
    """A time the knowledge base can be read at (PostgreSQL's timestamps end at 294276,
    Python's in 9999, and a zone offset near either end overflows); without an offset,
    UTC."""
    if not 1000 <= as_of.year <= 2999:
        raise FilterError("as_of", "must be a time between the years 1000 and 2999", "out_of_range")
    return as_of if as_of.tzinfo is not None else as_of.replace(tzinfo=dt.timezone.utc)


def tables_as_of(as_of: dt.datetime) -> list[CTE]:
    """CTEs named like the tables they stand for, so a statement that reads the tables
    reads them as they stood at `as_of` (add them with `add_cte`)."""
    return [text(_TABLE_AS_OF.format(table=table.name, key=_PART_OF_EVENT[table.name].key("t"),
                                     changed_rows=_CHANGED_ROWS))
            .bindparams(bindparam(f"as_of_{table.name}", as_of, type_=TIMESTAMP(timezone=True)))
            .columns(*(column(c.name, c.type) for c in table.c)).cte(table.name).prefix_with("MATERIALIZED")
            for table in _LISTED_TABLES]


async def list_events_as_of(conn: AsyncConnection, page: PageRequest, codec: CursorCodec, cache: AnswerCache,
                            f: EventFilter, as_of: dt.datetime, *, sort: str = "-date",
                            with_claims: bool = False, collapse: Collapse | None = None) -> Page:
    """A page of the events that matched the filter at `as_of`, as they stood then
    (with their claims then, if asked)."""
    if collapse is not None:
        raise FilterError("collapse", "cannot be combined with {as_of}: the history keeps no happenings",
                          "not_applicable", mentions=("as_of",))
    for name, what in _NOT_AS_OF.items():
        if name in f.given():
            raise FilterError(name, f"{what} cannot be combined with {{as_of}}: the history keeps no derived "
                                    "search text or points", "not_applicable", mentions=("as_of",))
    as_of = _checked(as_of)
    order = event_sort(sort, f)
    actor_matches: list[ActorMatch] = []
    condition = await compile_event_filter(conn, f, actor_matches=actor_matches)
    everything = and_(condition, *(match.condition() for match in actor_matches))
    shadows = tables_as_of(as_of)
    e = m.events.c

    async def rows_then(after, limit: int):
        stmt = order.apply(select(e.id, *order.columns).where(everything), after).limit(limit)
        return (await conn.execute(stmt.add_cte(*shadows))).all()

    trees_statement = _EVENT_TREES_AS_OF if with_claims else _EVENT_LIST_TREES_AS_OF

    async def trees_then(conn: AsyncConnection, ids: list[UUID]) -> list[dict]:
        return [r.tree for r in await conn.execute(trees_statement, {"ids": ids, "as_of": as_of})]

    # (the total is counted here: keyset_page's cached totals are keyed without as_of)
    result = await keyset_page(conn, e.id, everything, sort=order, page=replace(page, count=False), codec=codec,
                               cache=cache, trees=trees_then, fetch_rows=rows_then)
    if page.count:
        result.total = await conn.scalar(
            select(func.count()).select_from(m.events).where(everything).add_cte(*shadows))
    return result


async def get_event_as_of(conn: AsyncConnection, ref: str, as_of: dt.datetime) -> dict | None:
    """The event `ref` names (an id or external id; one deleted since, by its id) as it
    stood at `as_of`; None if it did not exist then."""
    event_id = await event_id_of(conn, ref)
    return await event_as_of(conn, event_id, as_of) if event_id else None


async def event_attribution(conn: AsyncConnection, event_id: UUID, as_of: dt.datetime | None = None) -> list[dict]:
    """Per actor and role: the attribution status and the claims that made it so (now,
    or as it stood at `as_of`)."""
    if as_of is None:
        return await conn.scalar(_ATTRIBUTION_NOW, {"ids": [event_id]})
    return await conn.scalar(_ATTRIBUTION_AS_OF, {"ids": [event_id], "as_of": _checked(as_of)})


async def existed_at(conn: AsyncConnection, event_id: UUID, as_of: dt.datetime) -> bool:
    """Whether the event existed at `as_of`: its first change since did not create it,
    or nothing changed it since and it exists now."""
    return bool(await conn.scalar(text(f"""
        SELECT coalesce(
          (SELECT s.op <> 'created' FROM change_sets s, {_CHANGED_ROWS}
            WHERE s.events_touched @> ARRAY[CAST(:event AS uuid)] AND s.table_name = 'events' AND s.at > :as_of
              AND k.key = CAST(:event AS text)
            ORDER BY s.at, s.id, k.n LIMIT 1),
          EXISTS (SELECT 1 FROM events WHERE id = :event))"""), {"event": event_id, "as_of": _checked(as_of)}))


HISTORY_ORDER = Sort("committed", (cs.generation, cs.id, column("n")), (int, int, int), descending=False,
                     scope="history")

# An event's changes: those after which the row is the event's (a row moved here is
# listed here, with its before from the other event), each with the row after it: the
# next change's before (found among the changes of the event's rows, the next being
# the event's row before it), or the row as it is now. Changes of a bulk load still
# running (no generation yet) are not listed, but are the next change of a row.
_HISTORY = text(f"""
WITH changed AS MATERIALIZED (
  SELECT s.generation, s.id, k.n, s.at, s.who, s.table_name, k.key, s.op, k.before,
         CASE WHEN s.op = 'deleted' THEN k.event_id ELSE coalesce(k.event_after, k.event_id) END AS event_after
    FROM change_sets s, {_CHANGED_ROWS}
   WHERE s.events_touched @> ARRAY[CAST(:event AS uuid)] AND s.table_name IN ({_table_list(_IN_HISTORY)})
     AND (k.event_id = :event OR k.event_after = :event)
), now_rows AS (
  {" UNION ALL ".join(f"SELECT '{table}' AS table_name, {part.key('t')} AS key, "
                      f"to_jsonb(t) - 'search_vector' - 'location' AS image FROM {table} t "
                      f"WHERE t.{part.event_column} = :event" for table, part in _IN_HISTORY.items())}
), listed AS (
  SELECT c.*, CASE WHEN c.op = 'deleted' THEN NULL
                   WHEN lead(c.id) OVER later IS NULL THEN (SELECT image FROM now_rows n
                                                             WHERE n.table_name = c.table_name AND n.key = c.key)
                   ELSE lead(c.before) OVER later END AS after
    FROM changed c
  WINDOW later AS (PARTITION BY c.table_name, c.key ORDER BY c.at, c.id, c.n)
)
SELECT * FROM listed
 WHERE event_after = :event AND generation IS NOT NULL
   AND (generation, id, n) > (:after_generation, :after_id, :after_n)
 ORDER BY generation, id, n
 LIMIT :limit
""")


def _changed_fields(before: dict | None, after: dict | None) -> list[str]:
    keys = set(before or {}) | set(after or {})
    return sorted(k for k in keys - _NOT_COMPARED if (before or {}).get(k) != (after or {}).get(k))


async def event_history(conn: AsyncConnection, event_id: UUID, page: PageRequest, codec: CursorCodec) -> Page:
    """Every change to the event and its claims, roles, external ids and curation
    verdicts, oldest first: who, when, the row before and after, and which fields changed."""
    after = codec.decode(page.cursor, HISTORY_ORDER) if page.cursor else (-1, -1, -1)
    rows = (await conn.execute(_HISTORY, {"event": event_id, "after_generation": after[0], "after_id": after[1],
                                          "after_n": after[2], "limit": page.limit + 1})).all()
    more = len(rows) > page.limit
    rows = rows[:page.limit]
    entries = [{"at": r.at, "who": r.who, "op": r.op,
                "record": {"type": _IN_HISTORY[r.table_name].name, "key": r.key},
                "changed": _changed_fields(r.before, r.after), "before": r.before, "after": r.after}
               for r in rows]
    return Page(rows=entries, keys=[(r.generation, r.id, r.n) for r in rows], has_next=more, sort=HISTORY_ORDER,
                codec=codec)


# What the change feed lists (REST's Change and GraphQL's Change are made from these):
# the writes, and the kinds of record.
CHANGE_OPS = ("created", "updated", "deleted", "merged")
FEED_RECORD_TYPES = ("event", "claim", "actor", "place", "document")

wg = m.write_generations.c
FEED_ORDER = Sort("committed", (wg.generation, ch.seq), (int, int), descending=False, scope="changes")


async def list_changes(conn: AsyncConnection, since: str | None, limit: int, codec: CursorCodec) -> dict[str, Any]:
    """Changes in commit order after the cursor `since` (from the beginning without one):
    `next_cursor` is where to go on from, even when nothing was new, so a mirror polls
    with the cursor of its last answer. (An entry is read through its transaction's
    generation: one taken by a transaction that committed.)"""
    after = codec.decode(since, FEED_ORDER) if since else None
    stmt = select(ch.op, ch.record_type, ch.record_id, ch.at, ch.merged_into, wg.generation, ch.seq).select_from(
        m.write_generations.join(m.changes, ch.txid == wg.txid))
    if after is not None:  # (the transactions before the cursor's are not read at all)
        stmt = stmt.where(wg.generation >= after[0])
    rows = (await conn.execute(FEED_ORDER.apply(stmt, after).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    data = []
    for r in rows:
        entry = {"op": r.op, "type": r.record_type, "id": str(r.record_id), "at": r.at}
        if r.merged_into is not None:
            entry["merged_into"] = str(r.merged_into)
        data.append(entry)
    if rows:
        next_cursor = codec.encode(FEED_ORDER, (rows[-1].generation, rows[-1].seq))
    else:
        next_cursor = since or codec.encode(FEED_ORDER, (0, 0))
    return {"data": data, "next_cursor": next_cursor, "has_more": more}


async def tombstone(conn: AsyncConnection, record_type: str, record_id: UUID) -> dict | None:
    """What is left of a deleted or merged record: when, and the survivor of a merge;
    None if it was never deleted. (Asked of records that are not there: one deleted and
    made again is in its table, and has no tombstone.)"""
    row = (await conn.execute(
        select(ch.op, ch.at, ch.merged_into).select_from(m.changes.join(m.write_generations, ch.txid == wg.txid))
        .where(ch.record_type == record_type, ch.record_id == record_id, ch.op.in_(("deleted", "merged")))
        .order_by(ch.seq.desc()).limit(1))).first()
    if row is None:
        return None
    stone: dict[str, Any] = {"type": record_type, "id": str(record_id), "deleted": True, "deleted_at": row.at}
    if row.op == "merged":
        stone["merged_into"] = str(row.merged_into)
    return stone
