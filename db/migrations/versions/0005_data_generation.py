"""A data generation, bumped by every write in the writing transaction.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

Cached answers (db/cache.py) are keyed by the generation they were computed at, so an
answer is never served after a write that could change it has committed: the write's
own transaction moves the generation, and the next reader's key is new. The bump is a
statement-level trigger on every table of the knowledge base (one row update per
statement, not per row); a table added later must get the same trigger. It fires
before the statement, so a writer holds the generation's row lock before any row lock
of its own: concurrent writers queue at their first write instead of deadlocking (one
holding a row the other needs, the other holding the generation). Bulk loaders
(db/generate.py) set `conflictkb.bulk_load` in their transactions, so their parallel
batches do not queue on the generation's row lock, and bump it once when done.
"""

from db.migrations.sql_script import execute_script

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("actor_external_ids", "actor_kinds", "actor_lineage", "actor_memberships", "actor_names", "actors",
          "claims", "datasets", "date_precisions", "documents", "event_actors", "event_external_ids",
          "event_roles", "event_types", "events", "geo_precisions", "place_external_ids", "place_kinds",
          "place_lineage", "place_names", "places", "predicates", "stances", "sub_event_types")


# As this migration made it (0018 restores it on its way down).
BUMP_DATA_GENERATION_SQL = """
CREATE FUNCTION bump_data_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Once per transaction: readers see the new generation only at commit anyway, and
  -- updating one row again and again in one transaction grows a chain of versions
  -- that every further update walks.
  IF coalesce(current_setting('conflictkb.bulk_load', true), '') <> 'on'
     AND coalesce(current_setting('conflictkb.generation_bumped', true), '') <> 'on' THEN
    UPDATE data_generation SET generation = generation + 1;
    PERFORM set_config('conflictkb.generation_bumped', 'on', true);
  END IF;
  RETURN NULL;
END $$;
"""


def upgrade() -> None:
    execute_script("""
-- `epoch` tells this table apart from an earlier one (a downgrade and upgrade restart
-- the count); db/cache.py adds the database's oid, so copies of a database (a test
-- template, a restore) sharing one Redis never share keys.
CREATE TABLE data_generation (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  epoch uuid NOT NULL DEFAULT gen_random_uuid(),
  generation bigint NOT NULL
);
INSERT INTO data_generation (generation) VALUES (1);
""" + BUMP_DATA_GENERATION_SQL + "".join(f"""
CREATE TRIGGER tr_{table}_data_generation BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
  FOR EACH STATEMENT EXECUTE FUNCTION bump_data_generation();""" for table in TABLES))


def downgrade() -> None:
    execute_script("".join(f"""
DROP TRIGGER IF EXISTS tr_{table}_data_generation ON {table};""" for table in TABLES) + """
DROP FUNCTION IF EXISTS bump_data_generation();
DROP TABLE IF EXISTS data_generation;
""")
