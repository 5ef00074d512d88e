"""Merging two records that turned out to be one: duplicate events of one happening, or
two entries for one actor.

Everything that referred to the merged record refers to the survivor afterwards (claims,
roles, external ids, names, memberships; an event's curation verdicts, unless the
survivor has its own on the same pair), the merged record is deleted, and the change
feed lists it as `merged` into the survivor, so a mirror and a reader of the old id
(GET answers 308 to the survivor) both know where it went.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.derive import recompute_events
from db.linking import match_events, relink
from db.writes import Checks
from db.writes.records import lock_record, paired_or_grouped

_MOVE_EVENT = [
    "UPDATE claims SET event_id = :survivor WHERE event_id = :merged",
    "UPDATE event_external_ids SET event_id = :survivor WHERE event_id = :merged",
    # verdicts on the merged record are the survivor's (the two were one record), but
    # where the survivor has its own on the same pair, and but on the pair of the two
    """INSERT INTO event_links (event_id, other_id, verdict, note, decided_by, decided_at)
       SELECT CASE WHEN event_id = :merged THEN :survivor ELSE event_id END,
              CASE WHEN other_id = :merged THEN :survivor ELSE other_id END, verdict, note, decided_by, decided_at
         FROM event_links WHERE :merged IN (event_id, other_id) AND :survivor NOT IN (event_id, other_id)
       ON CONFLICT DO NOTHING""",
    # roles the survivor lacks (attribution is derived again below)
    """INSERT INTO event_actors (event_id, actor_id, role, dataset, date_start, date_end)
       SELECT :survivor, ea.actor_id, ea.role, ea.dataset, s.date_start, s.date_end
         FROM event_actors ea, events s
        WHERE ea.event_id = :merged AND s.id = :survivor
       ON CONFLICT DO NOTHING""",
    "DELETE FROM events WHERE id = :merged",
]

_MOVE_ACTOR = [
    "UPDATE claims SET claimant_id = :survivor WHERE claimant_id = :merged",
    "UPDATE claims SET via_id = :survivor WHERE via_id = :merged",
    "UPDATE claims SET value_actor_id = :survivor WHERE value_actor_id = :merged",
    """INSERT INTO event_actors (event_id, actor_id, role, dataset, date_start, date_end)
       SELECT event_id, :survivor, role, dataset, date_start, date_end FROM event_actors WHERE actor_id = :merged
       ON CONFLICT DO NOTHING""",
    "DELETE FROM event_actors WHERE actor_id = :merged",
    "UPDATE documents SET publisher_actor_id = :survivor WHERE publisher_actor_id = :merged",
    "UPDATE actors SET parent_id = :survivor WHERE parent_id = :merged",
    # memberships the survivor does not have already
    """UPDATE actor_memberships m SET member_id = :survivor
        WHERE m.member_id = :merged AND m.group_id <> :survivor AND NOT EXISTS (
              SELECT 1 FROM actor_memberships s WHERE s.member_id = :survivor AND s.group_id = m.group_id
                 AND s.relation = m.relation AND s.valid_from IS NOT DISTINCT FROM m.valid_from)""",
    """UPDATE actor_memberships m SET group_id = :survivor
        WHERE m.group_id = :merged AND m.member_id <> :survivor AND NOT EXISTS (
              SELECT 1 FROM actor_memberships s WHERE s.group_id = :survivor AND s.member_id = m.member_id
                 AND s.relation = m.relation AND s.valid_from IS NOT DISTINCT FROM m.valid_from)""",
    # the merged actor's names become the survivor's aliases
    """INSERT INTO actor_names (actor_id, name, name_norm)
       SELECT :survivor, name, name_norm FROM actor_names WHERE actor_id = :merged ON CONFLICT DO NOTHING""",
    "UPDATE actor_external_ids SET actor_id = :survivor WHERE actor_id = :merged",
    "DELETE FROM actors WHERE id = :merged",
]

# The feed lists the merged record's deletion as a merge into the survivor.
_AS_MERGED = text("""
UPDATE changes SET op = 'merged', merged_into = :survivor
 WHERE txid = pg_current_xact_id() AND record_type = :type AND record_id = :merged""")


async def _survivor(conn: AsyncConnection, record_type: str, merged: dict, into: str) -> dict:
    survivor = await lock_record(conn, record_type, into, None)
    checks = Checks()
    if survivor["id"] == merged["id"]:
        checks.fail("into", f"a {record_type} cannot be merged into itself")
    if record_type == "actor" and await conn.scalar(text("""
            SELECT 1 FROM actor_lineage WHERE (ancestor_id, descendant_id) IN ((:a, :b), (:b, :a)) AND depth > 0"""),
            {"a": merged["id"], "b": survivor["id"]}):
        checks.fail("into", "an actor cannot be merged into one above or below it in the actor tree")
    checks.raise_any()
    return survivor


async def merge_events(conn: AsyncConnection, ref: str, into: str, if_match: str | None) -> UUID:
    merged = await lock_record(conn, "event", ref, if_match)
    survivor = await _survivor(conn, "event", merged, into)
    params = {"merged": merged["id"], "survivor": survivor["id"]}
    neighbours = await paired_or_grouped(conn, merged["id"])
    for statement in _MOVE_EVENT:
        await conn.execute(text(statement), params)
    await conn.execute(_AS_MERGED, {**params, "type": "event"})
    await recompute_events(conn, [survivor["id"]])
    await match_events(conn, [survivor["id"]])
    await relink(conn, neighbours)
    return survivor["id"]


async def merge_actors(conn: AsyncConnection, ref: str, into: str, if_match: str | None) -> UUID:
    merged = await lock_record(conn, "actor", ref, if_match)
    survivor = await _survivor(conn, "actor", merged, into)
    params = {"merged": merged["id"], "survivor": survivor["id"]}
    touched = list(await conn.scalars(text("""
        SELECT event_id FROM claims WHERE :merged IN (claimant_id, via_id, value_actor_id)
        UNION SELECT event_id FROM event_actors WHERE actor_id = :merged"""), params))
    for statement in _MOVE_ACTOR:
        await conn.execute(text(statement), params)
    await conn.execute(_AS_MERGED, {**params, "type": "actor"})
    await recompute_events(conn, touched)
    return survivor["id"]
