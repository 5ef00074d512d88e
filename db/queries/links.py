"""A pair of events as curation shows it: the editor's verdict on it, and what the
linking rule (db/linking.py) makes of it: its score part by part, its status, and
whether the two are in one happening."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_EVENT_LINK = text("""
SELECT json_build_object(
  'event', p.a, 'other', p.b,
  'verdict', l.verdict, 'note', l.note, 'decided_by', l.decided_by, 'decided_at', l.decided_at,
  'status', coalesce(m.status, 'candidate'), 'score', m.score,
  'parts', json_build_object('time', m.time_score, 'place', m.place_score, 'type', m.type_score,
                             'actors', m.actor_score, 'fatalities', m.fatality_score,
                             'claimants', m.claimant_score, 'text', m.text_score),
  'days_apart', m.days_apart, 'distance_km', m.distance_km,
  -- (a record linked to none is a happening of its own, with its own id)
  'happening_id', CASE WHEN coalesce(ha.happening_id, p.a) = coalesce(hb.happening_id, p.b)
                       THEN coalesce(ha.happening_id, p.a) END)
  FROM (SELECT CAST(:a AS uuid) AS a, CAST(:b AS uuid) AS b) p
  LEFT JOIN event_links l ON (l.event_id, l.other_id) = (p.a, p.b)
  LEFT JOIN event_matches m ON (m.event_id, m.other_id) = (least(p.a, p.b), greatest(p.a, p.b))
  LEFT JOIN happening_members ha ON ha.event_id = p.a
  LEFT JOIN happening_members hb ON hb.event_id = p.b
""")


async def event_link(conn: AsyncConnection, event_id: UUID, other_id: UUID) -> dict:
    """The pair: `verdict` (confirmed, rejected, or null), its note and who gave it
    when; `status` (linked, contender, candidate), `score` and `parts` as /matches
    has them (null score: the pair was never scored); `happening_id`: the happening
    both are in, null if they are in two."""
    return await conn.scalar(_EVENT_LINK, {"a": event_id, "b": other_id})
