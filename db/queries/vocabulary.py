"""The vocabularies (ACLED taxonomy, precisions, kinds, predicates, stances) as data."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_VOCABULARIES = text("""
SELECT json_build_object(
  'event_types', (SELECT json_agg(json_build_object(
        'name', t.name, 'description', t.description,
        'sub_event_types', (SELECT json_agg(json_build_object('name', s.name, 'description', s.description)
                                             ORDER BY s.name)
                              FROM sub_event_types s WHERE s.event_type = t.name)) ORDER BY t.name)
      FROM event_types t),
  'date_precisions', (SELECT json_agg(row_to_json(x) ORDER BY x.rank) FROM date_precisions x),
  'geo_precisions', (SELECT json_agg(row_to_json(x) ORDER BY x.rank) FROM geo_precisions x),
  'place_kinds', (SELECT json_agg(row_to_json(x) ORDER BY x.level) FROM place_kinds x),
  'actor_kinds', (SELECT json_agg(row_to_json(x) ORDER BY x.code) FROM actor_kinds x),
  'predicates', (SELECT json_agg(row_to_json(x) ORDER BY x.code) FROM predicates x),
  'stances', (SELECT json_agg(row_to_json(x) ORDER BY x.code) FROM stances x),
  'event_roles', (SELECT json_agg(row_to_json(x) ORDER BY x.code) FROM event_roles x),
  'datasets', (SELECT json_agg(row_to_json(x) ORDER BY x.code) FROM datasets x)
)""")


async def vocabularies(conn: AsyncConnection) -> dict:
    return await conn.scalar(_VOCABULARIES)
