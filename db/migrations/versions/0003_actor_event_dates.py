"""Event dates on event_actors, so an actor's events can be read newest first.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

"Events of group X, newest first" used to walk every event newest first and probe
each one's actors: fast for a busy group, slow for a rare one (a coalition's members
counted only while members: 120,000 events walked before the first match). With the
event's dates copied onto its actor rows, (actor, role, date, event) is one index in
the list's order, and db/filters.py (ActorMatch.events_by_date) reads it directly.
The copies are kept by triggers: set from the event on every insert or update of an
actor row, followed when an event's dates change.
"""

from db.migrations.sql_script import execute_script

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
ALTER TABLE event_actors ADD COLUMN date_start date, ADD COLUMN date_end date;
UPDATE event_actors ea SET date_start = e.date_start, date_end = e.date_end FROM events e WHERE e.id = ea.event_id;
ALTER TABLE event_actors ALTER COLUMN date_start SET NOT NULL, ALTER COLUMN date_end SET NOT NULL;

-- The copies are always the event's: whatever an insert or update of a row says, and
-- FOR SHARE waits for a concurrent change of the event's dates to commit (else a row
-- inserted meanwhile would keep the old dates, the other trigger not seeing it).
CREATE FUNCTION event_actors_event_dates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  SELECT e.date_start, e.date_end INTO NEW.date_start, NEW.date_end FROM events e WHERE e.id = NEW.event_id
     FOR SHARE;
  RETURN NEW;
END $$;
CREATE TRIGGER tr_event_actors_event_dates BEFORE INSERT OR UPDATE OF event_id, date_start, date_end ON event_actors
  FOR EACH ROW EXECUTE FUNCTION event_actors_event_dates();

CREATE FUNCTION events_dates_to_actors() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE event_actors SET date_start = NEW.date_start, date_end = NEW.date_end WHERE event_id = NEW.id;
  RETURN NULL;
END $$;
CREATE TRIGGER tr_events_dates_to_actors AFTER UPDATE OF date_start, date_end ON events
  FOR EACH ROW WHEN (OLD.date_start IS DISTINCT FROM NEW.date_start OR OLD.date_end IS DISTINCT FROM NEW.date_end)
  EXECUTE FUNCTION events_dates_to_actors();

-- Per actor and role in the events lists' order; the INCLUDEd columns let a
-- membership window (date_end) and an attribution filter (status) be tested in the
-- index alone.
DROP INDEX ix_event_actors_actor;
CREATE INDEX ix_event_actors_actor_date ON event_actors (actor_id, role, date_start DESC, event_id DESC)
  INCLUDE (date_end, status);
-- An attribution status alone (attribution=contested), in the lists' order.
DROP INDEX ix_event_actors_status;
CREATE INDEX ix_event_actors_status_date ON event_actors (status, date_start DESC, event_id DESC)
  WHERE status IS NOT NULL;
""")


def downgrade() -> None:
    execute_script("""
DROP INDEX IF EXISTS ix_event_actors_status_date;
CREATE INDEX ix_event_actors_status ON event_actors (status, event_id) WHERE status IS NOT NULL;
DROP INDEX IF EXISTS ix_event_actors_actor_date;
CREATE INDEX ix_event_actors_actor ON event_actors (actor_id, role);
DROP TRIGGER IF EXISTS tr_events_dates_to_actors ON events;
DROP FUNCTION IF EXISTS events_dates_to_actors();
DROP TRIGGER IF EXISTS tr_event_actors_event_dates ON event_actors;
DROP FUNCTION IF EXISTS event_actors_event_dates();
ALTER TABLE event_actors DROP COLUMN date_start, DROP COLUMN date_end;
""")
