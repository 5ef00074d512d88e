"""The distinct points events are located at, for "nearest first".

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Events are mostly located at their place's coordinates, so a busy town holds tens of
thousands of events at one point, and "nearest first" (sort=distance) means "points
nearest first, each point's events by id". db/queries/events.py reads the points near
the centre from `event_points` (a few thousand rows, GiST-indexed) and, per point, its
events in id order from ix_events_point: a page costs a few index probes instead of
a distance for, and a sort of, every event in the radius.

`event_points` only grows (a point whose events moved away finds none); statement-
level triggers add the points of inserted and updated rows in one statement each.
great_circle_km is redefined without STRICT so PostgreSQL inlines it (a strict SQL
function is called per row, ten times slower).
"""

from db.migrations.sql_script import execute_script

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
CREATE OR REPLACE FUNCTION great_circle_km(a point, lat double precision, lon double precision)
  RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT 2 * 6371.0088 * asin(least(1.0, sqrt(
           sin(radians(lat - a[1]) / 2) ^ 2
           + cos(radians(a[1])) * cos(radians(lat)) * sin(radians(lon - a[0]) / 2) ^ 2)))
$$;

-- No unique key on purpose: with one, two transactions adding points in different
-- orders wait for each other's uncommitted points (a deadlock between parallel
-- loaders was seen). Without, two concurrent writers may both add a new point; the
-- reader takes distinct points.
CREATE TABLE event_points (
  longitude double precision NOT NULL,
  latitude double precision NOT NULL,
  location point NOT NULL
);
INSERT INTO event_points (longitude, latitude, location)
SELECT lon, lat, point(lon, lat)
  FROM (SELECT DISTINCT location[0] AS lon, location[1] AS lat FROM events WHERE location IS NOT NULL) p;
CREATE INDEX ix_event_points_location ON event_points USING gist (location);
CREATE INDEX ix_event_points_point ON event_points (longitude, latitude);
CREATE INDEX ix_events_point ON events ((location[0]), (location[1]), id);

CREATE FUNCTION events_add_points() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO event_points (longitude, latitude, location)
  SELECT lon, lat, point(lon, lat)
    FROM (SELECT DISTINCT location[0] AS lon, location[1] AS lat FROM changed WHERE location IS NOT NULL) p
   WHERE NOT EXISTS (SELECT 1 FROM event_points known WHERE known.longitude = p.lon AND known.latitude = p.lat);
  RETURN NULL;
END $$;
CREATE TRIGGER tr_events_add_points_inserted AFTER INSERT ON events
  REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION events_add_points();
CREATE TRIGGER tr_events_add_points_updated AFTER UPDATE ON events
  REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION events_add_points();
""")


def downgrade() -> None:
    execute_script("""
DROP TRIGGER IF EXISTS tr_events_add_points_inserted ON events;
DROP TRIGGER IF EXISTS tr_events_add_points_updated ON events;
DROP FUNCTION IF EXISTS events_add_points();
DROP INDEX IF EXISTS ix_events_point;
DROP TABLE IF EXISTS event_points;
CREATE OR REPLACE FUNCTION great_circle_km(a point, lat double precision, lon double precision)
  RETURNS double precision LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT 2 * 6371.0088 * asin(least(1.0, sqrt(
           sin(radians(lat - a[1]) / 2) ^ 2
           + cos(radians(a[1])) * cos(radians(lat)) * sin(radians(lon - a[0]) / 2) ^ 2)))
$$;
""")
