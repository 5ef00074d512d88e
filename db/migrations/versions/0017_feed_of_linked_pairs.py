"""The change feed follows linked pairs only, not every candidate's score.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03

An event's answer shows the records linked to it (`linked_events`, with their scores),
not its candidates: those are read from `/v1/events/{id}/matches`. Yet every write to
`event_matches` (an import's batch scores tens of thousands of candidate pairs, and
selects their statuses anew) entered both events in the feed, so a mirror fetched them
again for nothing, and recording it took a quarter of the match statement's time in an
import (record_versions() makes every row JSON before it can look at it).

`event_matches` gets its own trigger function: a pair counts when it is linked after
the change or was before it (a pair unlinked is a change of both events), and only
those rows are made JSON and recorded, as record_versions() records any table's rows
(migration 0013; event_matches keeps no versions, only feed entries).
"""

from db.migrations.sql_script import execute_script

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_TRIGGERS = """
DROP TRIGGER tr_event_matches_versions_insert ON event_matches;
DROP TRIGGER tr_event_matches_versions_update ON event_matches;
DROP TRIGGER tr_event_matches_versions_delete ON event_matches;
CREATE TRIGGER tr_event_matches_versions_insert AFTER INSERT ON event_matches
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function};
CREATE TRIGGER tr_event_matches_versions_update AFTER UPDATE ON event_matches
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function};
CREATE TRIGGER tr_event_matches_versions_delete AFTER DELETE ON event_matches
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {function};
"""


def upgrade() -> None:
    execute_script("""
CREATE FUNCTION record_linked_pair_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  gen bigint;
  who text := coalesce(nullif(current_setting('conflictkb.actor', true), ''), 'database user ' || session_user);
  changed_at timestamptz := nullif(current_setting('conflictkb.changed_at', true), '')::timestamptz;
  images jsonb[];
BEGIN
  IF TG_OP = 'INSERT' THEN
    images := ARRAY(SELECT to_jsonb(r) FROM new_rows r WHERE r.linked);
  ELSIF TG_OP = 'UPDATE' THEN  -- linked after or before, and its score or status changed
    -- (set operations, hashed: a join of the transition tables, which have no
    -- statistics, was planned as a nested loop over every pair of rows)
    images := ARRAY(SELECT to_jsonb(x) FROM (
      (SELECT event_id, other_id, score, linked FROM new_rows WHERE linked
       EXCEPT SELECT event_id, other_id, score, linked FROM old_rows WHERE linked)
      UNION
      (SELECT event_id, other_id, score, linked FROM old_rows WHERE linked
       EXCEPT SELECT event_id, other_id, score, linked FROM new_rows WHERE linked)) x);
  ELSE
    images := ARRAY(SELECT to_jsonb(r) FROM old_rows r WHERE r.linked);
  END IF;
  IF cardinality(images) = 0 THEN
    RETURN NULL;
  END IF;
  -- the transaction's generation and the time of its first change, as record_versions()
  IF coalesce(current_setting('conflictkb.bulk_load', true), '') <> 'on' THEN
    SELECT generation INTO gen FROM data_generation;
  END IF;
  IF changed_at IS NULL THEN
    changed_at := clock_timestamp();
    PERFORM set_config('conflictkb.changed_at', changed_at::text, true);
  END IF;
  PERFORM record_row_changes(images, gen, changed_at, who, TG_TABLE_NAME,
                             CASE TG_OP WHEN 'INSERT' THEN 'created' WHEN 'UPDATE' THEN 'updated' ELSE 'deleted' END,
                             'event_id,other_id', '', 'event:event_id,event:other_id', false);
  RETURN NULL;
END $$;
""" + _TRIGGERS.format(function="record_linked_pair_changes()"))


def downgrade() -> None:
    execute_script(_TRIGGERS.format(
        function="record_versions('event_id,other_id', '', 'event:event_id,event:other_id', 'feed only')")
        + "DROP FUNCTION record_linked_pair_changes();")
