"""A monthly rollup of events per area and type, kept up to date on every write.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25

Stats (db/queries/stats.py) over months or years, countries, admin1 or admin2 areas
and event types, filtered by those alone, sum this table instead of reading every
event: a chart of air strikes by province and month over all time reads twenty
thousand rows instead of two hundred thousand events. Totals of lists filtered that
way (`count=true`) use it too.

A row counts the events that start in `start_month` and end in `end_month` (most
events start and end in one month), with those types, in one area at one of three
levels: a country (level 0), an admin1 (1) or an admin2 (2); a reader sums the
coarsest level that has what it asks for (at a million events: ~35,000, 157,000 and
339,000 rows).
Keeping both months makes the interval-overlap date filter exact for month-aligned
bounds. A row trigger on events adds each change as a delta (old row out, new row
in); rows that fall to zero events stay, and readers skip them; TRUNCATE of events
empties it. Bulk loads (`conflictkb.bulk_load`, db/generate.py) skip the trigger and
call rebuild_event_month_counts() once when done; it replaces the rows in one
transaction, so readers see the old rows until it commits (and, while a load runs,
stats and totals from the rollup leave out what it has loaded so far).
"""

from db.migrations.sql_script import execute_script

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
CREATE TABLE event_month_counts (
  -- 0: per country, 1: per admin1, 2: per admin2 (the finer ids are null above their level)
  level smallint NOT NULL CHECK (level IN (0, 1, 2)),
  start_month date NOT NULL,
  end_month date NOT NULL,
  country_id uuid,
  admin1_id uuid,
  admin2_id uuid,
  event_type text NOT NULL,
  sub_event_type text NOT NULL,
  events bigint NOT NULL,
  -- sums of the figures events have (an event without one adds nothing)
  fatalities_low bigint NOT NULL,
  fatalities_best bigint NOT NULL,
  fatalities_high bigint NOT NULL,
  civilian_fatalities bigint NOT NULL,
  -- events with a figure but an open upper bound ("over two dozen"): a group holding
  -- one has no upper bound either
  open_high_events integer NOT NULL,
  CONSTRAINT uq_event_month_counts UNIQUE NULLS NOT DISTINCT
    (level, start_month, end_month, country_id, admin1_id, admin2_id, event_type, sub_event_type)
);
CREATE INDEX ix_event_month_counts_sub_type ON event_month_counts (level, sub_event_type, start_month);
CREATE INDEX ix_event_month_counts_country ON event_month_counts (level, country_id, start_month);
CREATE INDEX ix_event_month_counts_admin1 ON event_month_counts (level, admin1_id, start_month);
CREATE INDEX ix_event_month_counts_admin2 ON event_month_counts (level, admin2_id, start_month);

CREATE FUNCTION add_to_event_month_counts(e events, sign int) RETURNS void LANGUAGE sql AS $$
  INSERT INTO event_month_counts AS c
  SELECT level, date_trunc('month', e.date_start)::date, date_trunc('month', e.date_end)::date, e.country_id,
         CASE WHEN level >= 1 THEN e.admin1_id END, CASE WHEN level = 2 THEN e.admin2_id END,
         e.event_type, e.sub_event_type, sign,
         sign * coalesce(e.fatalities_low, 0), sign * coalesce(e.fatalities_best, 0),
         sign * coalesce(e.fatalities_high, 0), sign * coalesce(e.civilian_fatalities_best, 0),
         sign * (e.fatalities_high IS NULL AND coalesce(e.fatalities_low, e.fatalities_best) IS NOT NULL)::int
    FROM generate_series(0, 2) AS level
  ON CONFLICT ON CONSTRAINT uq_event_month_counts DO UPDATE SET
    events = c.events + excluded.events,
    fatalities_low = c.fatalities_low + excluded.fatalities_low,
    fatalities_best = c.fatalities_best + excluded.fatalities_best,
    fatalities_high = c.fatalities_high + excluded.fatalities_high,
    civilian_fatalities = c.civilian_fatalities + excluded.civilian_fatalities,
    open_high_events = c.open_high_events + excluded.open_high_events
$$;

CREATE FUNCTION track_event_month_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('conflictkb.bulk_load', true), '') = 'on' THEN
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM add_to_event_month_counts(OLD, -1);
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    PERFORM add_to_event_month_counts(NEW, 1);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER tr_events_month_counts_insert_delete AFTER INSERT OR DELETE ON events
  FOR EACH ROW EXECUTE FUNCTION track_event_month_counts();
CREATE TRIGGER tr_events_month_counts_update AFTER UPDATE ON events
  FOR EACH ROW WHEN ((OLD.date_start, OLD.date_end, OLD.country_id, OLD.admin1_id, OLD.admin2_id, OLD.event_type,
                      OLD.sub_event_type, OLD.fatalities_low, OLD.fatalities_best, OLD.fatalities_high,
                      OLD.civilian_fatalities_best)
                     IS DISTINCT FROM
                     (NEW.date_start, NEW.date_end, NEW.country_id, NEW.admin1_id, NEW.admin2_id, NEW.event_type,
                      NEW.sub_event_type, NEW.fatalities_low, NEW.fatalities_best, NEW.fatalities_high,
                      NEW.civilian_fatalities_best))
  EXECUTE FUNCTION track_event_month_counts();

-- The whole table again from events (after a bulk load, or to check the trigger): the
-- three levels in one pass over the events.
CREATE FUNCTION rebuild_event_month_counts() RETURNS void LANGUAGE sql AS $$
  DELETE FROM event_month_counts;
  INSERT INTO event_month_counts
  SELECT CASE WHEN GROUPING(admin1_id) = 1 THEN 0 WHEN GROUPING(admin2_id) = 1 THEN 1 ELSE 2 END,
         date_trunc('month', date_start)::date, date_trunc('month', date_end)::date,
         country_id, admin1_id, admin2_id, event_type, sub_event_type, count(*),
         coalesce(sum(fatalities_low), 0), coalesce(sum(fatalities_best), 0),
         coalesce(sum(fatalities_high), 0), coalesce(sum(civilian_fatalities_best), 0),
         count(*) FILTER (WHERE fatalities_high IS NULL AND coalesce(fatalities_low, fatalities_best) IS NOT NULL)
    FROM events
   GROUP BY date_trunc('month', date_start), date_trunc('month', date_end), country_id, event_type, sub_event_type,
            GROUPING SETS ((), (admin1_id), (admin1_id, admin2_id))
   -- stored in the order of the index by type, the usual filter of a chart: such a
   -- scan then reads consecutive pages
   ORDER BY 1, sub_event_type, 2;
$$;

SELECT rebuild_event_month_counts();

-- TRUNCATE fires no row trigger: the rollup goes with the events.
CREATE FUNCTION truncate_event_month_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE event_month_counts;
  RETURN NULL;
END $$;
CREATE TRIGGER tr_events_month_counts_truncate AFTER TRUNCATE ON events
  FOR EACH STATEMENT EXECUTE FUNCTION truncate_event_month_counts();

-- Set (and committed) before a bulk load, cleared when its rollup is rebuilt: a load
-- that died in between is finished by the next `conflictkb seed`, `serve` or
-- `generate` (db/cache.py, finish_interrupted_bulk_load).
ALTER TABLE data_generation ADD COLUMN rollup_stale boolean NOT NULL DEFAULT false;

CREATE TRIGGER tr_event_month_counts_data_generation BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON event_month_counts FOR EACH STATEMENT EXECUTE FUNCTION bump_data_generation();
""")


def downgrade() -> None:
    execute_script("""
ALTER TABLE data_generation DROP COLUMN IF EXISTS rollup_stale;
DROP TRIGGER IF EXISTS tr_events_month_counts_truncate ON events;
DROP FUNCTION IF EXISTS truncate_event_month_counts();
DROP TRIGGER IF EXISTS tr_events_month_counts_update ON events;
DROP TRIGGER IF EXISTS tr_events_month_counts_insert_delete ON events;
DROP FUNCTION IF EXISTS track_event_month_counts();
DROP FUNCTION IF EXISTS add_to_event_month_counts(events, int);
DROP FUNCTION IF EXISTS rebuild_event_month_counts();
DROP TABLE IF EXISTS event_month_counts;
""")
