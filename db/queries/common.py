"""Pieces shared by the read queries: JSON fragments and keyset paging."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pagination import CursorCodec, Sort

# A reference to an actor: {id, name, kind}, or NULL. `{id}` is a SQL expression.
ACTOR_REF = """(SELECT json_build_object('id', ar.id, 'name', ar.name, 'kind', ar.kind)
                  FROM actors ar WHERE ar.id = {id})"""

# A place with its ancestors from the country down; `{extra}` adds keys (", 'k', expr").
PLACE_TREE = """(SELECT json_build_object(
    'id', pl.id, 'name', pl.name, 'kind', pl.kind, 'iso2', pl.iso2, 'iso3', pl.iso3,
    'latitude', pl.latitude, 'longitude', pl.longitude,
    'ancestors', coalesce((
        SELECT json_agg(json_build_object('id', an.id, 'name', an.name, 'kind', an.kind, 'iso3', an.iso3)
                         ORDER BY l.depth DESC)
          FROM place_lineage l JOIN places an ON an.id = l.ancestor_id
         WHERE l.descendant_id = pl.id AND l.depth > 0), '[]'::json){extra})
  FROM places pl WHERE pl.id = {id})"""


def parse_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


async def keyset_page(conn: AsyncConnection, id_column: ColumnElement, condition: ColumnElement[bool], *,
                      sort: Sort, limit: int, cursor: str | None, codec: CursorCodec,
                      count: bool = False) -> tuple[list[UUID], list[str], bool, int | None]:
    """One page in `sort` order after `cursor`: its ids, each row's cursor, whether more
    rows follow, and (if asked) the total number of matches."""
    after = codec.decode(cursor, sort) if cursor else None
    stmt = sort.apply(select(id_column, *sort.columns).where(condition), after).limit(limit + 1)
    rows: Sequence[Any] = (await conn.execute(stmt)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    cursors = [codec.encode(sort, list(r[1:])) for r in rows]
    total = None
    if count:
        table = id_column.table
        total = await conn.scalar(select(func.count()).select_from(table).where(condition))
    return [r[0] for r in rows], cursors, more, total
