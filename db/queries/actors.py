"""Actor reads: lists by name or alias and kind, and actor trees as JSON."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import text, true
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models as m
from db.filters import check_vocabulary, ids_named_like
from db.cache import AnswerCache
from db.pagination import CursorCodec, Page, PageRequest, Sort
from db.queries.common import ACTOR_REF, TreeLoader, keyset_page, tree_by_ref, tree_loader

a = m.actors.c
ACTOR_SORT = Sort("name", (a.name, a.id), (str, UUID), descending=False, scope="actors")

_ACTOR_TREES = text(f"""
SELECT json_build_object(
  'id', act.id,
  'name', act.name,
  'kind', act.kind,
  'description', act.description,
  'parent', {ACTOR_REF.format(id="act.parent_id")},
  'aliases', coalesce((SELECT json_agg(DISTINCT n.name) FROM actor_names n
                        WHERE n.actor_id = act.id AND n.name <> act.name), '[]'::json),
  'memberships', coalesce((
      SELECT json_agg(json_build_object('group', {ACTOR_REF.format(id="ms.group_id")}, 'relation', ms.relation,
                                          'valid_from', ms.valid_from, 'valid_to', ms.valid_to)
                       ORDER BY ms.valid_from NULLS FIRST, ms.id)
        FROM actor_memberships ms WHERE ms.member_id = act.id), '[]'::json),
  'members', coalesce((
      SELECT json_agg(json_build_object('member', {ACTOR_REF.format(id="ms.member_id")}, 'relation', ms.relation,
                                          'valid_from', ms.valid_from, 'valid_to', ms.valid_to)
                       ORDER BY ms.valid_from NULLS FIRST, ms.id)
        FROM actor_memberships ms WHERE ms.group_id = act.id), '[]'::json),
  'external_ids', coalesce((
      SELECT json_agg(json_build_object('dataset', x.dataset, 'id', x.external_id) ORDER BY x.dataset, x.external_id)
        FROM actor_external_ids x WHERE x.actor_id = act.id), '[]'::json),
  'created_at', act.created_at,
  'updated_at', act.updated_at
) AS tree
FROM unnest(:ids) WITH ORDINALITY AS page(id, ord)
JOIN actors act ON act.id = page.id
ORDER BY page.ord
""")
actor_trees = tree_loader(_ACTOR_TREES)


async def get_actor(conn: AsyncConnection, ref: str) -> dict | None:
    return await tree_by_ref(conn, actor_trees, ref)


async def list_actors(conn: AsyncConnection, page: PageRequest, codec: CursorCodec,
                      cache: AnswerCache, *, q: str | None = None,
                      kind: tuple[str, ...] = (), trees: TreeLoader = actor_trees) -> Page:
    condition = true()
    if q is not None:
        condition = condition & a.id.in_(ids_named_like(m.actor_names, q))
    if kind:
        await check_vocabulary(conn, "kind", kind, m.actor_kinds)
        condition = condition & a.kind.in_(kind)
    return await keyset_page(conn, a.id, condition, sort=ACTOR_SORT, page=page, codec=codec, cache=cache,
                             trees=trees)
