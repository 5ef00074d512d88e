"""Claim reads, across events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import bindparam, text, true
from sqlalchemy.dialects.postgresql import ARRAY, UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models as m
from db.filters import FilterError, resolve_actors
from db.pagination import CursorCodec, Page, Sort
from db.queries.common import keyset_page, parse_uuid
from db.queries.events import CLAIM_TREE, resolve_event_id

c = m.claims.c
CLAIM_SORT = Sort("created", (c.created_at, c.id), (dt.datetime.fromisoformat, UUID), descending=False)

_CLAIM_TREES = text(f"""
SELECT {CLAIM_TREE} AS tree
FROM unnest(:ids) WITH ORDINALITY AS page(id, ord)
JOIN claims c ON c.id = page.id
ORDER BY page.ord
""").bindparams(bindparam("ids", type_=ARRAY(PG_UUID(as_uuid=True))))


@dataclass(frozen=True)
class ClaimFilter:
    event: str | None = None
    claimant: tuple[str, ...] = ()
    stance: tuple[str, ...] = ()
    predicate: tuple[str, ...] = ()


async def claim_trees(conn: AsyncConnection, ids: list[UUID]) -> list[dict]:
    return [r.tree for r in await conn.execute(_CLAIM_TREES, {"ids": ids})]


async def get_claim(conn: AsyncConnection, ref: str) -> dict | None:
    claim_id = parse_uuid(ref)
    trees = await claim_trees(conn, [claim_id]) if claim_id else []
    return trees[0] if trees else None


async def list_claims(conn: AsyncConnection, f: ClaimFilter, *, limit: int, cursor: str | None,
                      codec: CursorCodec, count: bool = False) -> Page:
    condition = true()
    if f.event is not None:
        event_id = await resolve_event_id(conn, f.event)
        if event_id is None:
            raise FilterError("event", f"no event {f.event!r}")
        condition = condition & (c.event_id == event_id)
    if f.claimant:
        condition = condition & c.claimant_id.in_(await resolve_actors(conn, "claimant", f.claimant))
    if f.stance:
        condition = condition & c.stance.in_(f.stance)
    if f.predicate:
        condition = condition & c.predicate.in_(f.predicate)
    ids, cursors, more, total = await keyset_page(conn, c.id, condition, sort=CLAIM_SORT, limit=limit,
                                                cursor=cursor, codec=codec, count=count)
    return Page(rows=await claim_trees(conn, ids), cursors=cursors, has_next=more, total=total)
