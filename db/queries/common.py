"""Pieces shared by the read queries: JSON fragments and keyset paging."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import ColumnElement, Select, TextClause, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.asyncio import AsyncConnection

from db.cache import AnswerCache, generation_reports_wanted, report_generation, statement_key, with_generation
from db.pagination import CursorCodec, Page, PageRequest, Sort

TreeLoader = Callable[[AsyncConnection, list[UUID]], Awaitable[list[dict]]]
RowFetcher = Callable[[Sequence[Any] | None, int], Awaitable[Sequence[Any]]]

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


def tree_loader(statement: TextClause) -> TreeLoader:
    """A function returning the JSON trees of records by id, in the order of the ids.

    `statement` selects a column `tree` for the ids in the array parameter `:ids`."""
    bound = statement.bindparams(bindparam("ids", type_=ARRAY(PG_UUID(as_uuid=True))))

    async def trees(conn: AsyncConnection, ids: list[UUID]) -> list[dict]:
        return [r.tree for r in await conn.execute(bound, {"ids": ids})]

    return trees


async def ids_only(conn: AsyncConnection, ids: list[UUID]) -> list[dict]:
    """A page's records as their ids only (for a caller that builds them its own way:
    the GraphQL planner, db/graph.py)."""
    return [{"id": record_id} for record_id in ids]


async def tree_of(conn: AsyncConnection, trees: TreeLoader, record_id: UUID | None) -> dict | None:
    """One record's tree; None if there is no id or no such record."""
    found = await trees(conn, [record_id]) if record_id else []
    return found[0] if found else None


async def tree_by_ref(conn: AsyncConnection, trees: TreeLoader, ref: str) -> dict | None:
    """One record's tree by its id as a client wrote it; None if malformed or unknown."""
    return await tree_of(conn, trees, parse_uuid(ref))


def _records_of(records: dict[Any, str]) -> TreeLoader:
    async def trees(conn: AsyncConnection, ids: list[UUID]) -> list[dict]:
        return [{"id": record_id, "record": records[record_id]} for record_id in ids]

    return trees


async def first_page_rows(conn: AsyncConnection, statement: Callable[[], Select],
                          compiled: dict[Any, tuple[str, list[Any]]], key: Any,
                          extend: Callable[[str], str] | None = None) -> list[tuple]:
    """The rows of a page's statement(), its SQL compiled once and kept in `compiled` under
    `key` (a dict that lives as long as what the statement was made from: a filter
    resolved at a data generation), then run on the asyncpg connection itself: building
    the statement, its cache key and SQLAlchemy's execution were 0.2 ms of CPU a page,
    four times the query's own. Its values are written into the SQL when they can be (as
    SQLAlchemy renders literals): a statement without parameters is planned once per
    connection, where PostgreSQL planned the parameterized one anew at every call (0.17
    ms, three times its run). `extend(sql)` makes a statement of more columns of it.
    For a request answering on a guessed generation, the statement reports the one it
    ran at (db.cache.with_generation)."""
    reporting = generation_reports_wanted()
    key = (key, reporting)
    if key not in compiled:
        try:
            sql, arguments = str(statement().compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})), []
        except CompileError:  # a value with no literal form: sent as a parameter
            made = statement().compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
            values = made.construct_params()
            sql, arguments = str(made), [values[name] for name in made.positiontup]
        sql = extend(sql) if extend else sql
        compiled[key] = (with_generation(sql) if reporting else sql, arguments)
    sql, arguments = compiled[key]
    driver = (await conn.get_raw_connection()).driver_connection
    try:
        rows = [tuple(row) for row in await driver.fetch(sql, *arguments)]
    except asyncpg.InternalClientError:
        # (a connection a restart broke mid-statement: SQLAlchemy, not having run the
        # statement, would give it to the next request again)
        await conn.invalidate()
        raise
    return report_generation(rows) if reporting else rows


async def keyset_page(conn: AsyncConnection, id_column: ColumnElement, condition: ColumnElement[bool], *,
                      sort: Sort, page: PageRequest, codec: CursorCodec, cache: AnswerCache, trees: TreeLoader,
                      annotate: dict[str, ColumnElement] | None = None, fetch_rows: RowFetcher | None = None,
                      count: Callable[[], Awaitable[int]] | None = None,
                      compiled: dict[Any, tuple[str, list[Any]]] | None = None,
                      with_records: tuple[Hashable, Callable[[str], str]] | None = None) -> Page:
    """One page of trees in `sort` order after the page's cursor (and the total, if asked).
    `annotate` adds per-row values computed by the page query (a distance) to the trees.
    `fetch_rows(after, n)` replaces the page query by a faster one of the same rows (id,
    the `annotate` values, the sort key); `condition` still defines the total, unless
    `count()` gives it faster (from a rollup). `compiled`: where the first page's
    statement, compiled to SQL, is kept for the next request (see first_page_rows);
    `with_records` (a key and a function extending that SQL: db.graph.with_records)
    then brings each row's record along, as `{"id", "record"}` in the page's rows,
    instead of `trees`."""
    annotate = annotate or {}
    after = codec.decode(page.cursor, sort) if page.cursor is not None else None
    if fetch_rows is None:
        def statement() -> Select:
            stmt = select(id_column, *annotate.values(), *sort.columns).where(condition)
            return sort.apply(stmt, after).limit(page.limit + 1)

        rows: Sequence[Any]
        if compiled is not None and after is None:
            extend = with_records[1] if with_records else None
            rows = await first_page_rows(conn, statement, compiled,
                                         (sort.key, page.limit, with_records[0] if with_records else None), extend)
            if extend is not None:  # (each row: its columns, its position, its record)
                records = {row[0]: row[-1] for row in rows}
                rows = [row[:-2] for row in rows]
                trees = _records_of(records)
        else:
            rows = (await conn.execute(statement())).all()
    else:
        rows = await fetch_rows(after, page.limit + 1)
    more = len(rows) > page.limit
    rows = rows[:page.limit]
    total = None
    if page.count:
        # exact, so it reads every match: cached per data generation (db/cache.py)
        statement = select(func.count()).select_from(id_column.table).where(condition)
        total = await cache.get_or_compute(statement_key("total", statement),
                                           count or (lambda: conn.scalar(statement)))
    found = await trees(conn, [r[0] for r in rows])
    for tree, row in zip(found, rows):
        for i, name in enumerate(annotate, start=1):
            tree[name] = row[i]
    key_start = 1 + len(annotate)
    return Page(rows=found, keys=[list(r[key_start:]) for r in rows], has_next=more, sort=sort, codec=codec,
                total=total)
