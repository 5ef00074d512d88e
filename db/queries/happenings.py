"""Happenings: the records of one happening from several sources, read as one.

Records linked together (db/linking.py) are one happening, kept in
`happening_members` under the id of its earliest record; a record linked to none is
a happening of its own under its own id. So the happening of any event is
`coalesce(happening_members.happening_id, events.id)`.

A happening's answer holds every record's tree (with its claims) and what is derived
from all their claims together, by the rules of db/derive.py applied to the
happening as the group: fatalities low/best/high with the claims used, and per
actor and role (perpetrator, target) the attribution status with its claims, an
actor named in several records being one row (SANA's assertion in one record and the
actor's denial in another make it contested). Its dates are the span of its
records' (the earliest start to the latest end), which always exists, where an
overlap may not (records a few days apart are linked). It is computed when read
(and the answer cached like any other), not stored.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.derive import attribution_ctes, fatality_ctes
from db.linking import SOURCE_OF
from db.queries.common import parse_uuid, tree_loader, tree_of
from db.queries.events import EVENT_TREE_JSON, resolve_event_id

# Every claim of every record, under its happening (the group of db/derive.py's rules).
_MEMBERS_CLAIMS = "(SELECT mb.group_id, c.* FROM members mb JOIN claims c ON c.event_id = mb.event_id)"
# An actor named in several records is one (actor, role) of the happening.
_MEMBERS_ROLES = """(SELECT DISTINCT mb.group_id, ea.actor_id, ea.role
         FROM members mb JOIN event_actors ea ON ea.event_id = mb.event_id
        WHERE ea.role IN ('perpetrator', 'target'))"""

_HAPPENING_TREES = f"""
WITH wanted AS (
  SELECT h.id, h.ord FROM unnest(:ids) WITH ORDINALITY AS h (id, ord)
), members AS (   -- (group_id: the happening) a record linked to none is its own happening
  SELECT w.id AS group_id, hm.event_id FROM wanted w JOIN happening_members hm ON hm.happening_id = w.id
  UNION ALL
  SELECT w.id, e.id FROM wanted w JOIN events e ON e.id = w.id
   WHERE NOT EXISTS (SELECT 1 FROM happening_members hm WHERE hm.event_id = w.id OR hm.happening_id = w.id)
), {fatality_ctes(_MEMBERS_CLAIMS, "(SELECT id AS group_id FROM wanted)")},
{attribution_ctes(_MEMBERS_CLAIMS, _MEMBERS_ROLES)}
SELECT json_build_object(
  'id', w.id,
  'record_count', r.record_count,
  'sources', coalesce((
      SELECT json_agg(DISTINCT x.dataset ORDER BY x.dataset)
        FROM members mb JOIN event_external_ids x ON x.event_id = mb.event_id
       WHERE mb.group_id = w.id), '[]'::json),
  'date_start', r.date_start,
  'date_end', r.date_end,
  'fatalities', json_build_object(
      'low', d.low, 'best', d.best, 'high', d.high,
      'civilians', d.civilians_best, 'civilians_low', d.civilians_low, 'civilians_high', d.civilians_high,
      'claim_ids', to_json(d.claim_ids)),
  'attribution', coalesce((
      SELECT json_agg(json_build_object(
                 'actor', json_build_object('id', a.id, 'name', a.name, 'kind', a.kind),
                 'role', dc.role, 'status', dc.status, 'claim_ids', to_json(dc.claim_ids))
               ORDER BY array_position(ARRAY['perpetrator', 'target'], dc.role), a.name, a.id)
        FROM decided dc JOIN actors a ON a.id = dc.actor_id
       WHERE dc.group_id = w.id), '[]'::json),
  'records', r.records
) AS tree
FROM wanted w
JOIN derived d ON d.group_id = w.id
CROSS JOIN LATERAL (
  SELECT count(*) AS record_count, min(e.date_start) AS date_start, max(e.date_end) AS date_end,
         json_agg({EVENT_TREE_JSON} ORDER BY {SOURCE_OF.format(id="e.id")} NULLS LAST, e.date_start, e.id) AS records
    FROM members mb
    JOIN events e ON e.id = mb.event_id
    LEFT JOIN places p ON p.id = e.place_id
   WHERE mb.group_id = w.id
  HAVING count(*) > 0
) r
ORDER BY w.ord
"""

# The trees of the happenings :ids (happening ids; an id that is not one has no tree).
happening_trees = tree_loader(text(_HAPPENING_TREES))

_HAPPENING_OF_EVENT = text("SELECT coalesce((SELECT happening_id FROM happening_members WHERE event_id = :id), :id)")
_IS_HAPPENING = text("SELECT EXISTS (SELECT 1 FROM happening_members WHERE happening_id = :id)")


async def resolve_happening_id(conn: AsyncConnection, ref: str) -> UUID | None:
    """The happening `ref` names: a happening id, or the id or an external id
    (`ucdp-ged:259233`) of any of its records; None if none."""
    event_id = await resolve_event_id(conn, ref)
    if event_id is not None:
        return await conn.scalar(_HAPPENING_OF_EVENT, {"id": event_id})
    # a happening keeps its id when its earliest record is deleted (until it is regrouped)
    happening_id = parse_uuid(ref)
    if happening_id is not None and await conn.scalar(_IS_HAPPENING, {"id": happening_id}):
        return happening_id
    return None


async def get_happening(conn: AsyncConnection, ref: str) -> dict | None:
    """The happening `ref` names (resolve_happening_id), under its canonical id; None if none."""
    return await tree_of(conn, happening_trees, await resolve_happening_id(conn, ref))
