"""Place reads: lists by name, kind and parent, and place trees as JSON."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select, text, true
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models as m
from db.filters import FilterError, check_vocabulary, ids_named_like
from db.cache import AnswerCache
from db.pagination import CursorCodec, Page, PageRequest, Sort
from db.queries.common import (
    PLACE_TREE,
    TreeLoader,
    keyset_page,
    parse_uuid,
    tree_by_ref,
    tree_loader,
)

p = m.places.c
PLACE_SORT = Sort("name", (p.name, p.id), (str, UUID), descending=False, scope="places")

_PLACE_DETAILS = """,
  'parent', (SELECT json_build_object('id', pp.id, 'name', pp.name, 'kind', pp.kind)
               FROM places pp WHERE pp.id = pl.parent_id),
  'aliases', coalesce((SELECT json_agg(DISTINCT n.name) FROM place_names n
                        WHERE n.place_id = pl.id AND n.name <> pl.name), '[]'::json),
  'external_ids', coalesce((
      SELECT json_agg(json_build_object('dataset', x.dataset, 'id', x.external_id) ORDER BY x.dataset, x.external_id)
        FROM place_external_ids x WHERE x.place_id = pl.id), '[]'::json),
  'created_at', pl.created_at,
  'updated_at', pl.updated_at"""

_PLACE_TREES = text(f"""
SELECT {PLACE_TREE.format(id="page.id", extra=_PLACE_DETAILS)} AS tree
FROM unnest(:ids) WITH ORDINALITY AS page(id, ord)
WHERE EXISTS (SELECT 1 FROM places WHERE places.id = page.id)
ORDER BY page.ord
""")
place_trees = tree_loader(_PLACE_TREES)


async def get_place(conn: AsyncConnection, ref: str) -> dict | None:
    return await tree_by_ref(conn, place_trees, ref)


async def list_places(conn: AsyncConnection, page: PageRequest, codec: CursorCodec,
                      cache: AnswerCache, *, q: str | None = None,
                      kind: tuple[str, ...] = (), parent: str | None = None,
                      trees: TreeLoader = place_trees) -> Page:
    condition = true()
    if q is not None:
        condition = condition & p.id.in_(ids_named_like(m.place_names, q))
    if kind:
        await check_vocabulary(conn, "kind", kind, m.place_kinds)
        condition = condition & p.kind.in_(kind)
    if parent is not None:
        parent_id = parse_uuid(parent)
        if parent_id is None or await conn.scalar(select(p.id).where(p.id == parent_id)) is None:
            raise FilterError("parent", f"no place {parent!r}", "unmatched")
        condition = condition & (p.parent_id == parent_id)
    return await keyset_page(conn, p.id, condition, sort=PLACE_SORT, page=page, codec=codec, cache=cache,
                             trees=trees)
