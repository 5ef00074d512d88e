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


# A field whose values must be a vocabulary's rows carries this in its JSON schema (as
# `json_schema_extra=in_vocabulary(...)`); the OpenAPI document (api/openapi.py) puts the
# rows there as an enum. The rows are seeded by migrations, so they change only with the
# schema, and every write and filter checks its values against them.
VOCABULARY_KEY = "x-vocabulary"


def in_vocabulary(name: str) -> dict[str, str]:
    """The JSON schema mark of a field taking the values of vocabulary `name` (a key of
    `vocabulary_values`)."""
    return {VOCABULARY_KEY: name}


def vocabulary_values(vocabularies: dict) -> dict[str, list[str]]:
    """Each vocabulary's accepted values, from `vocabularies()`'s answer."""
    values = {name: [row.get("code", row.get("name")) for row in rows or []]
              for name, rows in vocabularies.items() if name != "event_types"}
    types = vocabularies.get("event_types") or []
    values["event_types"] = [t["name"] for t in types]
    values["sub_event_types"] = sorted({s["name"] for t in types for s in t["sub_event_types"] or []})
    return values
