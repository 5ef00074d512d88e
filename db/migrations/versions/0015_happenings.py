"""Happenings: the parts of a match's score from claims, one-to-one selection, curation
verdicts and the happening each linked record belongs to.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

- `event_matches` gains the parts of the evidence from claims (`claimant_score`, the
  same source reporting both; `text_score`, the words of their quotes, titles and
  summaries) and a `status`: `linked` (chosen one-to-one for its pair of sources, or
  confirmed by an editor), `contender` (scored over the link threshold but another
  pair won), `candidate` (under it). A part that cannot be measured (no figures on one
  side, no named actors) is NULL and counts as neutral (db/linking.py has the rule).
- `event_links`: an editor's verdict on a pair, `confirmed` or `rejected`, kept as two
  rows (one per event) so each event's history and feed entry show it. It overrides
  the score and survives re-imports and re-scoring.
- `happening_members`: the happening (a stable id: its earliest record's id) of every
  record linked to another; a record linked to none is a happening of its own, with its
  own id, and has no row.
"""

from db.migrations.sql_script import execute_script

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _history_triggers(table: str, keys: str, event_column: str, feeds: str, versioned: bool) -> str:
    """The statement triggers of migration 0013 that record a table's versions and feed entries."""
    argv = f"'{keys}', '{event_column}', '{feeds}', '{'versions' if versioned else 'feed only'}'"
    return f"""
CREATE TRIGGER tr_{table}_versions_insert AFTER INSERT ON {table}
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_versions({argv});
CREATE TRIGGER tr_{table}_versions_update AFTER UPDATE ON {table}
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_versions({argv});
CREATE TRIGGER tr_{table}_versions_delete AFTER DELETE ON {table}
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION record_versions({argv});
CREATE TRIGGER tr_{table}_data_generation BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
  FOR EACH STATEMENT EXECUTE FUNCTION bump_data_generation();"""


def upgrade() -> None:
    execute_script("""
ALTER TABLE event_matches
  ADD COLUMN claimant_score real,
  ADD COLUMN text_score real,
  ADD COLUMN status text NOT NULL DEFAULT 'candidate'
    CONSTRAINT ck_event_matches_status CHECK (status IN ('linked', 'contender', 'candidate')),
  ALTER COLUMN actor_score DROP NOT NULL,
  ALTER COLUMN fatality_score DROP NOT NULL;
UPDATE event_matches SET status = 'linked' WHERE linked;
ALTER TABLE event_matches ADD CONSTRAINT ck_event_matches_linked CHECK (linked = (status = 'linked'));

CREATE TABLE event_links (
  event_id uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
  other_id uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
  verdict text NOT NULL CONSTRAINT ck_event_links_verdict CHECK (verdict IN ('confirmed', 'rejected')),
  note text,
  decided_by text NOT NULL,
  decided_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (event_id, other_id),
  CONSTRAINT ck_event_links_pair CHECK (event_id <> other_id)
);
CREATE INDEX ix_event_links_other ON event_links (other_id);

CREATE TABLE happening_members (
  event_id uuid PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
  happening_id uuid NOT NULL
);
CREATE INDEX ix_happening_members_happening ON happening_members (happening_id);
""" + _history_triggers("event_links", "event_id,other_id", "event_id", "event:event_id", True)
        # an event's answer names its happening: a change of it is a change of the event
        + _history_triggers("happening_members", "event_id", "", "event:event_id", False))


def downgrade() -> None:
    execute_script("""
DROP TABLE happening_members;
DROP TABLE event_links;
ALTER TABLE event_matches DROP CONSTRAINT ck_event_matches_linked;
DELETE FROM event_matches WHERE actor_score IS NULL OR fatality_score IS NULL;
ALTER TABLE event_matches DROP COLUMN claimant_score, DROP COLUMN text_score, DROP COLUMN status,
  ALTER COLUMN actor_score SET NOT NULL, ALTER COLUMN fatality_score SET NOT NULL;
""")
