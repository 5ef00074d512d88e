"""Document reads."""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from sqlalchemy import bindparam, func, text, true
from sqlalchemy.dialects.postgresql import ARRAY, UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models as m
from db.pagination import CursorCodec, Page, Sort, decode_date
from db.queries.common import keyset_page, parse_uuid

d = m.documents.c
# Undated documents sort last among the newest-first.
DOCUMENT_SORT = Sort("-published_at", (func.coalesce(d.published_at, dt.date(1, 1, 1)), d.id),
                     (decode_date, UUID), descending=True)

_DOCUMENT_TREES = text("""
SELECT json_build_object(
  'id', doc.id, 'publisher', doc.publisher, 'title', doc.title, 'url', doc.url,
  'published_at', doc.published_at, 'language', doc.language, 'excerpt', doc.excerpt,
  'claim_count', (SELECT count(*) FROM claims c WHERE c.document_id = doc.id),
  'created_at', doc.created_at, 'updated_at', doc.updated_at
) AS tree
FROM unnest(:ids) WITH ORDINALITY AS page(id, ord)
JOIN documents doc ON doc.id = page.id
ORDER BY page.ord
""").bindparams(bindparam("ids", type_=ARRAY(PG_UUID(as_uuid=True))))


async def document_trees(conn: AsyncConnection, ids: list[UUID]) -> list[dict]:
    return [r.tree for r in await conn.execute(_DOCUMENT_TREES, {"ids": ids})]


async def get_document(conn: AsyncConnection, ref: str) -> dict | None:
    document_id = parse_uuid(ref)
    trees = await document_trees(conn, [document_id]) if document_id else []
    return trees[0] if trees else None


async def list_documents(conn: AsyncConnection, *, limit: int, cursor: str | None, codec: CursorCodec,
                         count: bool = False) -> Page:
    ids, cursors, more, total = await keyset_page(conn, d.id, true(), sort=DOCUMENT_SORT, limit=limit,
                                                cursor=cursor, codec=codec, count=count)
    return Page(rows=await document_trees(conn, ids), cursors=cursors, has_next=more, total=total)
