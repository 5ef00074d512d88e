"""Staged rows arrive finished: an event's place context and a role's dates are
computed in staging, and a claim's value kind is checked once per statement.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04

Three row triggers cost a batch of 5,000 imported events ~180 ms of its ~2.2 s:

- events' place context (its country, admin1 and admin2 from the place's lineage, its
  point): one lineage query per row through PL/pgSQL, 76 ms;
- a role's dates, copied from its event (and the event locked FOR SHARE), 42 ms;
- a claim's value checked against its predicate's kind, 64 ms for ~20,000 claims.

The first two now have their rule in one SQL function each, event_place_context() and
the role's event's dates, which db/derive.py applies to staged rows in one statement,
and the triggers fire only where rows are not finished already: they are made plain
ENABLE again (migration 0019 had made them ALWAYS), so an insert under
session_replication_role = replica (insert_staged_events, after its batch's checks, or
a logical replica, whose rows were finished on the primary) keeps the values it brings.
Every other write, in the default role, has them computed as before. The value check
fires always, once per statement over its transition table, with the same error.
"""

from db.migrations.sql_script import earlier_sql, execute_script

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

# A claim's value must be of its predicate's kind (or none): the rule of 0001's
# claims_check_value(), over a statement's rows.
_VALUE_CHECK = """
CREATE FUNCTION claims_check_values() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad record;
BEGIN
  SELECT c.predicate, p.value_kind AS kind, array_to_string(c.given, ', ') AS given INTO bad
    FROM (SELECT n.predicate, array_remove(ARRAY[
            CASE WHEN coalesce(n.value_low, n.value_best, n.value_high) IS NOT NULL THEN 'number' END,
            CASE WHEN n.value_actor_id IS NOT NULL THEN 'actor' END,
            CASE WHEN n.value_place_id IS NOT NULL THEN 'place' END,
            CASE WHEN n.value_date IS NOT NULL THEN 'date' END,
            CASE WHEN n.value_text IS NOT NULL THEN 'text' END], NULL) AS given
            FROM new_rows n) AS c
    JOIN predicates p ON p.code = c.predicate
   WHERE cardinality(c.given) > 1 OR (cardinality(c.given) = 1 AND c.given[1] <> p.value_kind)
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'a % claim takes a value of kind %, not %', bad.predicate, bad.kind, bad.given
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER tr_claims_check_values_insert AFTER INSERT ON claims
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION claims_check_values();
CREATE TRIGGER tr_claims_check_values_update AFTER UPDATE ON claims
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION claims_check_values();
ALTER TABLE claims ENABLE ALWAYS TRIGGER tr_claims_check_values_insert;
ALTER TABLE claims ENABLE ALWAYS TRIGGER tr_claims_check_values_update;
"""

# 0002's events_place_context(), its rule now a function that staging applies too. (A
# SQL function of one SELECT: inlined where it is called.)
_PLACE_CONTEXT = """
CREATE FUNCTION event_place_context(at_place uuid, at_latitude double precision, at_longitude double precision,
                                    at_precision text)
RETURNS TABLE (country_id uuid, admin1_id uuid, admin2_id uuid, location point) LANGUAGE sql STABLE AS $$
  SELECT (array_agg(a.id) FILTER (WHERE a.kind = 'country'))[1],
         (array_agg(a.id) FILTER (WHERE a.kind = 'admin1'))[1],
         (array_agg(a.id) FILTER (WHERE a.kind = 'admin2'))[1],
         -- a country's centroid is not where the event was: kept out of bbox and near
         CASE WHEN at_precision IN ('region', 'country', 'water_airspace') THEN NULL
              WHEN at_latitude IS NOT NULL THEN point(at_longitude, at_latitude)
              ELSE (SELECT CASE WHEN p.latitude IS NOT NULL THEN point(p.longitude, p.latitude) END
                      FROM places p WHERE p.id = at_place) END
    FROM place_lineage l JOIN places a ON a.id = l.ancestor_id
   WHERE l.descendant_id = at_place
$$;
CREATE OR REPLACE FUNCTION events_place_context() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  SELECT c.country_id, c.admin1_id, c.admin2_id, c.location INTO NEW.country_id, NEW.admin1_id, NEW.admin2_id, NEW.location
    FROM event_place_context(NEW.place_id, NEW.latitude, NEW.longitude, NEW.geo_precision) c;
  RETURN NEW;
END $$;
"""

def upgrade() -> None:
    execute_script(f"""
DROP TRIGGER tr_claims_check_value ON claims;
DROP FUNCTION claims_check_value();
{_VALUE_CHECK}
{_PLACE_CONTEXT}
ALTER TABLE events ENABLE TRIGGER tr_events_place_context;
ALTER TABLE event_actors ENABLE TRIGGER tr_event_actors_event_dates;
""")


def downgrade() -> None:
    """As 0002 and 0001 made them, and 0019 enabled them."""
    row_place_context = earlier_sql("0002_query_indexes.py", "CREATE FUNCTION events_place_context()", "END $$;")
    row_value_check = (earlier_sql("0001_knowledge_base.py", "CREATE FUNCTION claims_check_value()", "END $$;") + "\n"
                       + earlier_sql("0001_knowledge_base.py", "CREATE TRIGGER tr_claims_check_value "))
    execute_script(f"""
ALTER TABLE events ENABLE ALWAYS TRIGGER tr_events_place_context;
ALTER TABLE event_actors ENABLE ALWAYS TRIGGER tr_event_actors_event_dates;
{row_place_context.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)}
DROP FUNCTION event_place_context(uuid, double precision, double precision, text);
DROP TRIGGER tr_claims_check_values_insert ON claims;
DROP TRIGGER tr_claims_check_values_update ON claims;
DROP FUNCTION claims_check_values();
{row_value_check}
ALTER TABLE claims ENABLE ALWAYS TRIGGER tr_claims_check_value;
""")
