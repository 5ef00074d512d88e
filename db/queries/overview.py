"""What the knowledge base holds, for the front page (api/pages.py): events per source
dataset, the dates they span, the latest imports.

One statement building the answer as JSON. Counting events per source reads every event
once (a hash join with their external ids; measured: 37 ms on the 16,580 shipped events,
0.13 s on 250,000 generated ones, so about half a second or more at a million), so the
front page keeps the answer in the answer cache under the data generation
(db/cache.AnswerCache): it is computed once per write, not once per visit. The dates are
two index lookups; the imports, a table of one row per file.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.linking import sources_of

# How many of the latest imported files the page lists.
RECENT_IMPORTS = 5

_OVERVIEW = text(f"""
WITH per_source AS (
  SELECT s.source, count(*) AS events FROM ({sources_of("(SELECT id FROM events)")}) s GROUP BY s.source
)
SELECT json_build_object(
  'events', (SELECT coalesce(sum(p.events), 0) FROM per_source p),
  'sources', (SELECT coalesce(json_agg(json_build_object(
                  'dataset', p.source, 'name', d.name, 'url', d.url, 'licence', d.licence, 'events', p.events)
                ORDER BY p.events DESC, p.source NULLS LAST), '[]')
                FROM per_source p LEFT JOIN datasets d ON d.code = p.source),
  'first_date', (SELECT min(date_start) FROM events),
  'last_date', (SELECT max(date_end) FROM events),
  'imports', (SELECT coalesce(json_agg(json_build_object(
                  'dataset', f.dataset, 'file_name', f.file_name,
                  'imported_at', to_char(f.imported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                  'summary', f.summary) ORDER BY f.imported_at DESC), '[]')
                FROM (SELECT * FROM dataset_files ORDER BY imported_at DESC LIMIT {RECENT_IMPORTS}) f)
)""")


async def overview(conn: AsyncConnection) -> dict:
    """`events` (all of them), `sources` (per source dataset, as db/linking.SOURCE_OF: the
    dataset of a record's external ids; `dataset` null for records written through the
    API), `first_date` / `last_date` (ISO dates, null without events) and `imports` (the
    latest imported files, newest first)."""
    return await conn.scalar(_OVERVIEW)
