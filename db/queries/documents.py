"""Document reads."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import func, literal_column, text, true
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models as m
from db.cache import AnswerCache
from db.pagination import CursorCodec, Page, PageRequest, Sort, decode_date
from db.queries.common import TreeLoader, keyset_page, tree_by_ref, tree_loader

d = m.documents.c
# Undated documents sort last among the newest-first.
DOCUMENT_SORT = Sort("-published_at", (func.coalesce(d.published_at, literal_column("DATE '0001-01-01'")), d.id),
                     (decode_date, UUID), descending=True, scope="documents")

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
""")
document_trees = tree_loader(_DOCUMENT_TREES)


async def get_document(conn: AsyncConnection, ref: str) -> dict | None:
    return await tree_by_ref(conn, document_trees, ref)


async def list_documents(conn: AsyncConnection, page: PageRequest, codec: CursorCodec,
                         cache: AnswerCache, trees: TreeLoader = document_trees) -> Page:
    return await keyset_page(conn, d.id, true(), sort=DOCUMENT_SORT, page=page, codec=codec, cache=cache,
                             trees=trees)
