"""Columns and indexes for the query surface: place ancestry, location, text search.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Events carry the ids of their country, admin1 and admin2 (kept by a trigger from the
place lineage), so "everything in Syria, newest first" is one index range scan on
(country_id, date_start, id) rather than a join through thousands of places. Each
event also carries its effective location as a core `point` (GiST-indexed: no PostGIS
needed) and a `tsvector` over its summary, claim quotes and place and actor names.
"""


from db.migrations.sql_script import execute_script

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
ALTER TABLE events
  ADD COLUMN country_id uuid REFERENCES places (id),
  ADD COLUMN admin1_id uuid REFERENCES places (id),
  ADD COLUMN admin2_id uuid REFERENCES places (id),
  ADD COLUMN location point,
  ADD COLUMN search_vector tsvector;

-- The place's country / admin1 / admin2 and the event's coordinates (its own, or its
-- place's), written on every insert and on every change of place or coordinates.
CREATE FUNCTION events_place_context() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ancestry record;
BEGIN
  SELECT (array_agg(a.id) FILTER (WHERE a.kind = 'country'))[1] AS country_id,
         (array_agg(a.id) FILTER (WHERE a.kind = 'admin1'))[1] AS admin1_id,
         (array_agg(a.id) FILTER (WHERE a.kind = 'admin2'))[1] AS admin2_id
    INTO ancestry
    FROM place_lineage l JOIN places a ON a.id = l.ancestor_id
   WHERE l.descendant_id = NEW.place_id;
  NEW.country_id := ancestry.country_id;
  NEW.admin1_id := ancestry.admin1_id;
  NEW.admin2_id := ancestry.admin2_id;
  IF NEW.geo_precision IN ('region', 'country', 'water_airspace') THEN
    -- a country's centroid is not where the event was: keep it out of bbox and near
    NEW.location := NULL;
  ELSIF NEW.latitude IS NOT NULL THEN
    NEW.location := point(NEW.longitude, NEW.latitude);
  ELSE
    NEW.location := (SELECT CASE WHEN p.latitude IS NOT NULL THEN point(p.longitude, p.latitude) END
                       FROM places p WHERE p.id = NEW.place_id);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER tr_events_place_context BEFORE INSERT OR UPDATE OF place_id, latitude, longitude, geo_precision ON events
  FOR EACH ROW EXECUTE FUNCTION events_place_context();

-- A place moved or re-located: its events' context follows (rare; touches only them).
CREATE FUNCTION places_refresh_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE events SET place_id = place_id
   WHERE place_id IN (SELECT descendant_id FROM place_lineage WHERE ancestor_id = NEW.id);
  RETURN NULL;
END $$;
-- Named to fire after tr_places_lineage_move (triggers fire in name order).
CREATE TRIGGER tr_places_move_events AFTER UPDATE OF parent_id, latitude, longitude, kind ON places
  FOR EACH ROW EXECUTE FUNCTION places_refresh_events();

UPDATE events SET place_id = place_id;

-- Concatenation of tsvectors as an aggregate (db/derive.py builds search text from
-- per-place and per-actor vectors computed once per batch).
CREATE AGGREGATE tsvector_agg (tsvector) (SFUNC = tsvector_concat, STYPE = tsvector, INITCOND = '');

-- Great-circle distance in km between a (lon, lat) point and a latitude/longitude
-- (haversine on the mean Earth radius; the clamp guards rounding at antipodes).
CREATE FUNCTION great_circle_km(a point, lat double precision, lon double precision)
  RETURNS double precision LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT 2 * 6371.0088 * asin(least(1.0, sqrt(
           sin(radians(lat - a[1]) / 2) ^ 2
           + cos(radians(a[1])) * cos(radians(lat)) * sin(radians(lon - a[0]) / 2) ^ 2)))
$$;

DROP INDEX ix_events_date_end;
DROP INDEX ix_events_fatalities;
CREATE INDEX ix_events_country_date ON events (country_id, date_start DESC, id DESC);
CREATE INDEX ix_events_admin1_date ON events (admin1_id, date_start DESC, id DESC);
CREATE INDEX ix_events_admin2_date ON events (admin2_id, date_start DESC, id DESC);
CREATE INDEX ix_events_fatalities ON events ((coalesce(fatalities_best, -1)) DESC, id DESC);
CREATE INDEX ix_events_location ON events USING gist (location);
CREATE INDEX ix_events_search ON events USING gin (search_vector);
CREATE INDEX ix_event_actors_status ON event_actors (status, event_id) WHERE status IS NOT NULL;
-- The orders of the other lists (db/queries): each page is an index range scan.
CREATE INDEX ix_claims_created ON claims (created_at, id);
DROP INDEX ix_documents_published;
CREATE INDEX ix_documents_published ON documents ((coalesce(published_at, DATE '0001-01-01')) DESC, id DESC);
CREATE INDEX ix_places_name ON places (name, id);
""")


def downgrade() -> None:
    execute_script("""
DROP INDEX IF EXISTS ix_event_actors_status;
DROP INDEX IF EXISTS ix_claims_created;
DROP INDEX IF EXISTS ix_places_name;
DROP INDEX IF EXISTS ix_documents_published;
CREATE INDEX ix_documents_published ON documents (published_at DESC, id DESC);
DROP FUNCTION IF EXISTS great_circle_km(point, double precision, double precision);
DROP AGGREGATE IF EXISTS tsvector_agg (tsvector);
DROP TRIGGER IF EXISTS tr_places_move_events ON places;
DROP FUNCTION IF EXISTS places_refresh_events();
DROP TRIGGER IF EXISTS tr_events_place_context ON events;
DROP FUNCTION IF EXISTS events_place_context();
DROP INDEX IF EXISTS ix_events_fatalities;
ALTER TABLE events DROP COLUMN country_id, DROP COLUMN admin1_id, DROP COLUMN admin2_id,
  DROP COLUMN location, DROP COLUMN search_vector;
CREATE INDEX ix_events_date_end ON events (date_end);
CREATE INDEX ix_events_fatalities ON events (fatalities_best DESC NULLS LAST, id DESC);
""")
