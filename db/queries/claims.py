"""Claim reads, across events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import text, true
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models as m
from db.filters import FilterError, check_vocabulary, resolve_actors
from db.cache import AnswerCache
from db.pagination import CursorCodec, Page, PageRequest, Sort
from db.queries.common import TreeLoader, keyset_page, tree_by_ref, tree_loader
from db.queries.events import CLAIM_TREE, resolve_event_id

c = m.claims.c
CLAIM_SORT = Sort("created", (c.created_at, c.id), (dt.datetime.fromisoformat, UUID), descending=False,
                  scope="claims")

_CLAIM_TREES = text(f"""
SELECT {CLAIM_TREE} AS tree
FROM unnest(:ids) WITH ORDINALITY AS page(id, ord)
JOIN claims c ON c.id = page.id
ORDER BY page.ord
""")
claim_trees = tree_loader(_CLAIM_TREES)


@dataclass(frozen=True)
class ClaimFilter:
    event: str | None = None
    claimant: tuple[str, ...] = ()
    stance: tuple[str, ...] = ()
    predicate: tuple[str, ...] = ()


async def get_claim(conn: AsyncConnection, ref: str) -> dict | None:
    return await tree_by_ref(conn, claim_trees, ref)


async def list_claims(conn: AsyncConnection, page: PageRequest, codec: CursorCodec,
                      cache: AnswerCache, f: ClaimFilter, trees: TreeLoader = claim_trees) -> Page:
    condition = true()
    if f.event is not None:
        event_id = await resolve_event_id(conn, f.event)
        if event_id is None:
            raise FilterError("event", f"no event {f.event!r}", "unmatched")
        condition = condition & (c.event_id == event_id)
    if f.claimant:
        condition = condition & c.claimant_id.in_(await resolve_actors(conn, "claimant", f.claimant))
    if f.stance:
        await check_vocabulary(conn, "stance", f.stance, m.stances)
        condition = condition & c.stance.in_(f.stance)
    if f.predicate:
        await check_vocabulary(conn, "predicate", f.predicate, m.predicates)
        condition = condition & c.predicate.in_(f.predicate)
    return await keyset_page(conn, c.id, condition, sort=CLAIM_SORT, page=page, codec=codec, cache=cache,
                             trees=trees)
