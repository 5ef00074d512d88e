"""Cross-source matches: pairs of events from different sources that may be one happening.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25

One row per pair (the smaller id first), with the score and its parts (db/linking.py
has the rule); `linked` when the score reaches the link threshold. Rows go with either
event.
"""

from db.migrations.sql_script import execute_script

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
CREATE TABLE event_matches (
  event_id uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
  other_id uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
  score real NOT NULL CHECK (score BETWEEN 0 AND 1),
  time_score real NOT NULL,
  place_score real NOT NULL,
  type_score real NOT NULL,
  actor_score real NOT NULL,
  fatality_score real NOT NULL,
  days_apart integer NOT NULL,
  distance_km real,
  linked boolean NOT NULL,
  PRIMARY KEY (event_id, other_id),
  CHECK (event_id < other_id)
);
CREATE INDEX ix_event_matches_other ON event_matches (other_id);
CREATE TRIGGER tr_event_matches_data_generation BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON event_matches
  FOR EACH STATEMENT EXECUTE FUNCTION bump_data_generation();
""")


def downgrade() -> None:
    execute_script("DROP TABLE event_matches;")
