"""Curation: an editor's verdict on a pair of events (issue 14).

`confirmed`: the two are records of one happening, linked whatever their score;
`rejected`: they are not, never linked (db/linking.py's selection honours both, and the
scorer keeps judged pairs, so a verdict survives re-scoring and re-imports). The
verdict is kept as two rows of event_links, one per event, so each event's history and
change-feed entry show it. In the same transaction the pair is scored (a confirmed pair
need not be a candidate) and the links around it are selected anew: the answer already
shows the pair linked or not, and the happenings regrouped.

Two records of one source may be confirmed too (a dataset that lists one happening
twice): the rule never pairs them, but a confirmed pair is linked and grouped like any
other. A rejection splits a happening the pair held together; the two can still be in
one happening through a third record linked to both (reject that link too).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.linking import relink, score_judged
from db.queries.links import event_link
from db.writes import Checks, FieldError, InvalidInput
from db.writes.records import event_named, lock_record

# Both rows of the pair in one statement (one history entry per event), signed and
# dated as the history records the write (its who and at: the history
# triggers' record_versions(), which dates a write by its first change, as here). A new verdict
# replaces the note too and is signed anew; the same verdict again only takes a new note.
_JUDGE = text("""
WITH stamp AS (
  SELECT coalesce(nullif(current_setting('conflictkb.actor', true), ''), 'database user ' || session_user) AS who,
         coalesce(nullif(current_setting('conflictkb.changed_at', true), ''),
                  set_config('conflictkb.changed_at', clock_timestamp()::text, true))::timestamptz AS at
)
INSERT INTO event_links AS l (event_id, other_id, verdict, note, decided_by, decided_at)
SELECT p.event_id, p.other_id, :verdict, :note, stamp.who, stamp.at
  FROM (VALUES (CAST(:a AS uuid), CAST(:b AS uuid)), (CAST(:b AS uuid), CAST(:a AS uuid))) p (event_id, other_id),
       stamp
ON CONFLICT (event_id, other_id) DO UPDATE SET
  verdict = excluded.verdict,
  note = CASE WHEN l.verdict = excluded.verdict THEN coalesce(excluded.note, l.note) ELSE excluded.note END,
  decided_by = CASE WHEN l.verdict = excluded.verdict THEN l.decided_by ELSE excluded.decided_by END,
  decided_at = CASE WHEN l.verdict = excluded.verdict THEN l.decided_at ELSE excluded.decided_at END
WHERE l.verdict <> excluded.verdict OR (excluded.note IS NOT NULL AND excluded.note IS DISTINCT FROM l.note)
""")


@dataclass(frozen=True)
class Judged:
    pair: dict  # db/queries/links.py event_link
    new_verdict: bool  # false: the same verdict stood already


async def judge_pair(conn: AsyncConnection, ref: str, other_ref: str, verdict: str, note: str | None, *,
                     other_field: str, other_in_path: bool = False) -> Judged:
    """Give the pair of the events `ref` and `other_ref` name (ids or external ids) the
    verdict `confirmed` or `rejected`, in the caller's write transaction. `ref` is a
    resource (unknown: RecordNotFound); `other_ref` is one too if `other_in_path`,
    else a field of the input named `other_field` (unknown: InvalidInput naming it)."""
    event_id = (await lock_record(conn, "event", ref, None))["id"]
    if other_in_path:
        other_id = (await lock_record(conn, "event", other_ref, None))["id"]
    else:
        checks = Checks()
        other_id = await event_named(conn, checks, other_field, other_ref)
        checks.raise_any()
    if other_id == event_id:
        raise InvalidInput([FieldError(other_field, "an event cannot be linked with itself: name another one",
                                       "path" if other_in_path else "body")])
    before = await conn.scalar(text("SELECT verdict FROM event_links WHERE event_id = :a AND other_id = :b"),
                               {"a": event_id, "b": other_id})
    written = (await conn.execute(_JUDGE, {"a": event_id, "b": other_id, "verdict": verdict, "note": note})).rowcount
    if written and before != verdict:
        await score_judged(conn, [event_id, other_id])
        await relink(conn, [event_id, other_id])
    return Judged(await event_link(conn, event_id, other_id), new_verdict=before != verdict)
