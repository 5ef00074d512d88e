"""Batches that take their place in commit order at their end: an import's batches are
written by two connections into a serving knowledge base too.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04

A write takes the data generation (its place in commit order, a row lock held until it
commits, migration 0018) at its first statement, and adds its events to the monthly
rollup as each statement ends (0008, the rollup's row locks held as long). For a batch
of 5,000 imported events that is its whole second and a half: a second connection
writing the next batch waited on the first for all of it, and so did every write of the
API meanwhile. A transaction with `conflictkb.generation_at_end` on takes neither as it
goes: its statements stash their rollup deltas in a table of the session's, and its
last steps (db/bulk.py, finish_batch_at_end) take the generation, then add the deltas,
then link (db/linking.py), all in the order every other write takes them (the
generation first), so they can only wait for each other's ends, never deadlock there.

Taking the generation last also dates the batch's history then: its change sets, dated
at its first change as it wrote them, are dated anew when it takes its turn (and so are
its later ones), so the history's order by time is still the commit order (a write that
committed while the batch was being written, maybe on a row the batch then changed, is
before it in time as in generation). A bulk load's batches (`conflictkb.bulk_load`,
which skip the rollup for its rebuild at the end) are dated the same way.
"""

from db.migrations.sql_script import earlier_sql, execute_script, sibling_migration

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_GENERATION_AT_END = ("(coalesce(current_setting('conflictkb.bulk_load', true), '') = 'on' "
                      "OR coalesce(current_setting('conflictkb.generation_at_end', true), '') = 'on')")


# (0008's function, which a transaction taking its generation at its end has stash its
# statements' events for add_stashed_month_counts() instead)
_STASH = """
  IF coalesce(current_setting('conflictkb.generation_at_end', true), '') = 'on' THEN
    IF to_regclass('pg_temp.event_month_counts_stash') IS NULL THEN
      CREATE TEMP TABLE event_month_counts_stash ON COMMIT DELETE ROWS AS
        SELECT {columns}, 0 AS sign FROM events WITH NO DATA;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
      INSERT INTO pg_temp.event_month_counts_stash SELECT {columns}, 1 FROM new_events;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
      INSERT INTO pg_temp.event_month_counts_stash SELECT {columns}, -1 FROM old_events;
    END IF;
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN"""


def _take_generation() -> str:
    """0018's take_generation(), and a transaction taking it at its end has its history
    dated then (and what it writes after)."""
    made = earlier_sql("0018_history_by_statement.py", "CREATE FUNCTION take_generation()", "END $$;")
    changed = made.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1).replace(
        "  taken bigint;\n", "  taken bigint;\n  turn timestamptz;\n", 1).replace(
        "  UPDATE change_sets SET generation = taken WHERE generation IS NULL AND txid = pg_current_xact_id();\n",
        f"""  IF {_GENERATION_AT_END} THEN
    turn := clock_timestamp();
    PERFORM set_config('conflictkb.changed_at', turn::text, true);
  END IF;
  UPDATE change_sets SET generation = taken, at = coalesce(turn, at)
   WHERE generation IS NULL AND txid = pg_current_xact_id();
""", 1)
    assert changed.count("turn") == 4, "0018's take_generation() as this migration knows it"
    return changed


def upgrade() -> None:
    rollup = sibling_migration("0008_rollup_per_statement.py")
    track = rollup.TRACK_EVENT_MONTH_COUNTS_SQL.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    track = track.replace("\n  IF TG_OP = 'INSERT' THEN", _STASH.format(columns=rollup._COLUMNS), 1)
    execute_script(f"""
CREATE OR REPLACE FUNCTION bump_data_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT {_GENERATION_AT_END} THEN
    PERFORM take_generation();
  END IF;
  RETURN NULL;
END $$;

{_take_generation()}
{track}

-- The stashed changes added to the rollup at once, in its key order (after the
-- generation is taken: see the module's docstring).
CREATE FUNCTION add_stashed_month_counts() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF to_regclass('pg_temp.event_month_counts_stash') IS NULL THEN
    RETURN;
  END IF;
  {rollup._DELTA_SQL.format(changes="SELECT * FROM pg_temp.event_month_counts_stash")};
  DELETE FROM pg_temp.event_month_counts_stash;
END $$;
""")


def downgrade() -> None:
    """As 0018 and 0008 made them."""
    rollup = sibling_migration("0008_rollup_per_statement.py")
    execute_script(f"""
DROP FUNCTION add_stashed_month_counts();
{rollup.TRACK_EVENT_MONTH_COUNTS_SQL.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)}
{earlier_sql("0018_history_by_statement.py", "CREATE FUNCTION take_generation()", "END $$;").replace(
        "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)}
{earlier_sql("0018_history_by_statement.py", "CREATE OR REPLACE FUNCTION bump_data_generation()", "END $$;")}
""")
