"""The change feed follows what events' answers show of linking: linked pairs and
happenings, not every candidate's score.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03

An event's answer shows the records linked to it (`linked_events`, with their scores)
and its happening (`{id, record_count}`), not its candidates: those are read from
`/v1/events/{id}/matches`. Until now:
- every write to `event_matches` (an import's batch scores tens of thousands of
  candidate pairs, and selects their statuses anew) entered both events in the feed,
  so a mirror fetched them again for nothing, and recording it took a quarter of the
  match statement's time (record_versions() makes every row JSON before anything);
- a record joining or leaving a happening changed the answer of every record in it
  (its size, maybe its id), but only the pair's two events were in the feed: a mirror
  kept the old size for the others.

Now `event_matches` records a pair only when it is linked after the change or was
before it, and `happening_members` records every record of each happening that gained,
lost or renumbered a member, and the records that moved. Both stay feed only (derived
rows keep no versions), entered as record_versions() enters them (migration 0013);
their own trigger functions replace its calls.
"""

from db.migrations.sql_script import execute_script

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def _statement_triggers(table: str, name: str, function: str) -> str:
    """AFTER INSERT, UPDATE and DELETE triggers on `table`, per statement, with its
    transition tables, named tr_<table>_<name>_<op>."""
    tables = {"insert": "NEW TABLE AS new_rows", "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
              "delete": "OLD TABLE AS old_rows"}
    return "".join(f"""
CREATE TRIGGER tr_{table}_{name}_{op} AFTER {op.upper()} ON {table}
  REFERENCING {transition} FOR EACH STATEMENT EXECUTE FUNCTION {function};""" for op, transition in tables.items())


def _drop_triggers(table: str, name: str) -> str:
    return "".join(f"\nDROP TRIGGER tr_{table}_{name}_{op} ON {table};" for op in ("insert", "update", "delete"))


# what the tables' triggers called before (migrations 0013 and 0015)
_PAIRS_FEED_ONLY = "record_versions('event_id,other_id', '', 'event:event_id,event:other_id', 'feed only')"
_MEMBERS_FEED_ONLY = "record_versions('event_id', '', 'event:event_id', 'feed only')"


# As this migration made it (0018 restores it on its way down).
RECORD_EVENT_UPDATES_SQL = """
-- These events changed in this transaction (an update each, in the feed only),
-- stamped as record_versions() stamps: the transaction's generation, the time of its
-- first change, who made it.
CREATE FUNCTION record_event_updates(event_ids uuid[], source_table text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  gen bigint;
  who text := coalesce(nullif(current_setting('conflictkb.actor', true), ''), 'database user ' || session_user);
  changed_at timestamptz := nullif(current_setting('conflictkb.changed_at', true), '')::timestamptz;
BEGIN
  IF cardinality(event_ids) = 0 THEN
    RETURN;
  END IF;
  IF coalesce(current_setting('conflictkb.bulk_load', true), '') <> 'on' THEN
    SELECT generation INTO gen FROM data_generation;
  END IF;
  IF changed_at IS NULL THEN
    changed_at := clock_timestamp();
    PERFORM set_config('conflictkb.changed_at', changed_at::text, true);
  END IF;
  PERFORM record_row_changes(ARRAY(SELECT jsonb_build_object('event_id', e) FROM unnest(event_ids) e),
                             gen, changed_at, who, source_table, 'updated', 'event_id', '', 'event:event_id', false);
END $$;
"""


def upgrade() -> None:
    execute_script("""
""" + RECORD_EVENT_UPDATES_SQL + """
-- A pair is in both events' answers while it is linked: it counts when it is linked
-- after the change or was before it, and its score or status changed.
CREATE FUNCTION record_linked_pair_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM record_event_updates(ARRAY(SELECT event_id FROM new_rows WHERE linked
                                       UNION SELECT other_id FROM new_rows WHERE linked), TG_TABLE_NAME);
  ELSIF TG_OP = 'UPDATE' THEN
    -- (set operations, hashed: a join of the transition tables, which have no
    -- statistics, was planned as a nested loop over every pair of rows)
    PERFORM record_event_updates(ARRAY(
      SELECT unnest(ARRAY[event_id, other_id]) FROM (
        (SELECT event_id, other_id, score, linked FROM new_rows WHERE linked
         EXCEPT SELECT event_id, other_id, score, linked FROM old_rows WHERE linked)
        UNION
        (SELECT event_id, other_id, score, linked FROM old_rows WHERE linked
         EXCEPT SELECT event_id, other_id, score, linked FROM new_rows WHERE linked)) changed), TG_TABLE_NAME);
  ELSE
    PERFORM record_event_updates(ARRAY(SELECT event_id FROM old_rows WHERE linked
                                       UNION SELECT other_id FROM old_rows WHERE linked), TG_TABLE_NAME);
  END IF;
  RETURN NULL;
END $$;

-- Every record of a happening that gained, lost or renumbered a member (its size and
-- maybe its id are in their answers), and the records that moved.
CREATE FUNCTION record_happening_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM record_event_updates(ARRAY(
      SELECT h.event_id FROM happening_members h WHERE h.happening_id IN (SELECT happening_id FROM new_rows)
      UNION SELECT event_id FROM new_rows), TG_TABLE_NAME);
  ELSIF TG_OP = 'UPDATE' THEN
    PERFORM record_event_updates(ARRAY(
      SELECT h.event_id FROM happening_members h
       WHERE h.happening_id IN (SELECT happening_id FROM new_rows UNION SELECT happening_id FROM old_rows)
      UNION SELECT event_id FROM new_rows UNION SELECT event_id FROM old_rows), TG_TABLE_NAME);
  ELSE
    PERFORM record_event_updates(ARRAY(
      SELECT h.event_id FROM happening_members h WHERE h.happening_id IN (SELECT happening_id FROM old_rows)
      UNION SELECT event_id FROM old_rows), TG_TABLE_NAME);
  END IF;
  RETURN NULL;
END $$;

""" + _drop_triggers("happening_members", "versions")
      + _statement_triggers("happening_members", "versions", "record_happening_changes()")
      + _drop_triggers("event_matches", "versions")
      + _statement_triggers("event_matches", "versions", "record_linked_pair_changes()"))


def downgrade() -> None:
    execute_script(_drop_triggers("happening_members", "versions") + _drop_triggers("event_matches", "versions")
                   + _statement_triggers("happening_members", "versions", _MEMBERS_FEED_ONLY)
                   + _statement_triggers("event_matches", "versions", _PAIRS_FEED_ONLY) + """
DROP FUNCTION record_happening_changes();
DROP FUNCTION record_linked_pair_changes();
DROP FUNCTION record_event_updates(uuid[], text);
""")
