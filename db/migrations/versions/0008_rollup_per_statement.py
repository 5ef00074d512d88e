"""The monthly rollup kept per statement instead of per row.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25

Migration 0006 added each changed event to `event_month_counts` in a row trigger: three
upserts per event, 0.37 ms, which made an import of 5,000 events spend 1.8 s on its
insert and as much again when their figures were derived. These triggers see a
statement's changed rows at once (transition tables), sum their deltas per rollup row
(old rows out, new rows in; an update that leaves every counted column alone sums to
nothing and writes nothing) and upsert each rollup row once, in key order, so that
concurrent writers take the rollup's row locks in one order and cannot deadlock.
(PostgreSQL allows transition tables only on single-event triggers: three triggers,
one function.) Bulk loads still skip it and rebuild at the end.
"""

from db.migrations.sql_script import execute_script

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_DELTA_SQL = """
  INSERT INTO event_month_counts AS c
  SELECT level, start_month, end_month, country_id, admin1_id, admin2_id, event_type, sub_event_type,
         sum(sign), sum(sign * low), sum(sign * best), sum(sign * high), sum(sign * civilians), sum(sign * open_high)
    FROM (
      SELECT level, date_trunc('month', e.date_start)::date AS start_month,
             date_trunc('month', e.date_end)::date AS end_month, e.country_id,
             CASE WHEN level >= 1 THEN e.admin1_id END AS admin1_id,
             CASE WHEN level = 2 THEN e.admin2_id END AS admin2_id,
             e.event_type, e.sub_event_type, e.sign,
             coalesce(e.fatalities_low, 0)::bigint AS low, coalesce(e.fatalities_best, 0)::bigint AS best,
             coalesce(e.fatalities_high, 0)::bigint AS high, coalesce(e.civilian_fatalities_best, 0)::bigint AS civilians,
             (e.fatalities_high IS NULL AND coalesce(e.fatalities_low, e.fatalities_best) IS NOT NULL)::int AS open_high
        FROM ({changes}) AS e CROSS JOIN generate_series(0, 2) AS level
    ) AS d
   GROUP BY level, start_month, end_month, country_id, admin1_id, admin2_id, event_type, sub_event_type
  HAVING (sum(sign), sum(sign * low), sum(sign * best), sum(sign * high), sum(sign * civilians),
          sum(sign * open_high)) <> (0, 0, 0, 0, 0, 0)
   ORDER BY level, start_month, end_month, country_id, admin1_id, admin2_id, event_type, sub_event_type
  ON CONFLICT ON CONSTRAINT uq_event_month_counts DO UPDATE SET
    events = c.events + excluded.events,
    fatalities_low = c.fatalities_low + excluded.fatalities_low,
    fatalities_best = c.fatalities_best + excluded.fatalities_best,
    fatalities_high = c.fatalities_high + excluded.fatalities_high,
    civilian_fatalities = c.civilian_fatalities + excluded.civilian_fatalities,
    open_high_events = c.open_high_events + excluded.open_high_events"""

_COLUMNS = ("date_start, date_end, country_id, admin1_id, admin2_id, event_type, sub_event_type, fatalities_low, "
            "fatalities_best, fatalities_high, civilian_fatalities_best")


_INSERTED = f"SELECT {_COLUMNS}, 1 AS sign FROM new_events"
_DELETED = f"SELECT {_COLUMNS}, -1 AS sign FROM old_events"
# (migration 0023 restores it on its way down, and adds to it)
TRACK_EVENT_MONTH_COUNTS_SQL = f"""
CREATE FUNCTION track_event_month_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('conflictkb.bulk_load', true), '') = 'on' THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    {_DELTA_SQL.format(changes=_INSERTED)};
  ELSIF TG_OP = 'DELETE' THEN
    {_DELTA_SQL.format(changes=_DELETED)};
  ELSE
    {_DELTA_SQL.format(changes=_INSERTED + " UNION ALL " + _DELETED)};
  END IF;
  RETURN NULL;
END $$;"""


def upgrade() -> None:
    execute_script(f"""
DROP TRIGGER tr_events_month_counts_insert_delete ON events;
DROP TRIGGER tr_events_month_counts_update ON events;
DROP FUNCTION track_event_month_counts();
DROP FUNCTION add_to_event_month_counts(events, int);
{TRACK_EVENT_MONTH_COUNTS_SQL}

CREATE TRIGGER tr_events_month_counts_insert AFTER INSERT ON events
  REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION track_event_month_counts();
CREATE TRIGGER tr_events_month_counts_update AFTER UPDATE ON events
  REFERENCING OLD TABLE AS old_events NEW TABLE AS new_events
  FOR EACH STATEMENT EXECUTE FUNCTION track_event_month_counts();
CREATE TRIGGER tr_events_month_counts_delete AFTER DELETE ON events
  REFERENCING OLD TABLE AS old_events FOR EACH STATEMENT EXECUTE FUNCTION track_event_month_counts();
""")


def downgrade() -> None:
    execute_script("""
DROP TRIGGER tr_events_month_counts_insert ON events;
DROP TRIGGER tr_events_month_counts_update ON events;
DROP TRIGGER tr_events_month_counts_delete ON events;
DROP FUNCTION track_event_month_counts();

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
""")
