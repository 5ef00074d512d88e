"""History of created rows read from their columns, not from JSON made of them.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04

A creation keeps no image (migration 0018): its change set needs each row's key and
event, its feed entries the ids of the records it changes. record_versions() made every
new row a JSON object of those columns first, then took them apart again in
record_change_set() and record_feed_entries(): for a bulk batch of claims that was two
thirds of the trigger's time (186 ms for 17,614 claims). Now one statement, made from the
trigger's arguments, reads the columns of the new rows and writes the change set and the
feed entries; updates and deletes, which keep the rows' images, are as before.
"""

import re

from db.migrations.sql_script import execute_script, sibling_migration, split_statements

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


# A record's net change in a transaction (migration 0013's rule, as 0018's
# record_feed_entries() applies it): deleted or merged wins;
# created again after a deletion is an update; a creation stays one. An entry that would
# stay as it is is not written again (the claims of an event created in the same
# transaction each name it).
_NET_CHANGE = """CASE
    WHEN excluded.op IN ('deleted', 'merged') THEN excluded.op
    WHEN f.op IN ('deleted', 'merged') THEN CASE WHEN excluded.op = 'created' THEN 'updated' ELSE f.op END
    WHEN f.op = 'created' THEN 'created'
    ELSE excluded.op END"""
_ON_CONFLICT = (f"ON CONFLICT ON CONSTRAINT uq_changes_per_transaction DO UPDATE SET op = {_NET_CHANGE} "
                f"WHERE f.op IS DISTINCT FROM {_NET_CHANGE}")

_FUNCTIONS = """
-- The statement that records rows created by one statement (in the transition table
-- new_rows; $1 the generation, $2 the time, $3 who) as record_versions()'s arguments
-- name them: the change set (keys and events, in key order, no images) when the table
-- keeps versions, and the feed entries.
CREATE FUNCTION creation_history_statement(source_table text, keys text, event_column text, feeds text,
                                           versioned boolean)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT format($f$
    WITH created AS MATERIALIZED (SELECT %1$s AS key, %2$s AS event_id, %3$s FROM new_rows),
    change_set AS (
      INSERT INTO change_sets (generation, at, who, table_name, op, keys, event_ids, events_touched)
      SELECT $1, $2, $3, %4$L, 'created', array_agg(key ORDER BY key), %5$s, %6$s
        FROM created
       WHERE %7$s
      HAVING count(*) > 0)
    INSERT INTO changes AS f (at, record_type, record_id, op)
    SELECT $2, entry.record_type, entry.record_id, entry.op
      FROM created CROSS JOIN LATERAL (VALUES %8$s) AS entry(record_type, record_id, op, n)
     WHERE entry.record_id IS NOT NULL
     GROUP BY entry.record_type, entry.record_id, entry.op
     -- the feed lists a write's records in the order it touched them: a claim, then its event
     ORDER BY min(entry.n), entry.record_id
    %9$s$f$,
    -- the key: its columns' text joined by '/' (as record_change_set() made it)
    (SELECT string_agg(format('%I::text', k), ' || ''/'' || ') FROM unnest(string_to_array(keys, ',')) k),
    CASE WHEN event_column <> '' THEN quote_ident(event_column) ELSE 'NULL::uuid' END,
    (SELECT string_agg(format('%1$I AS %2$I', c, 'feed_' || n), ', ')
       FROM unnest(string_to_array(feeds, ',')) WITH ORDINALITY AS p(pair, n), split_part(pair, ':', 2) c),
    source_table,
    CASE WHEN event_column <> '' THEN 'array_agg(event_id ORDER BY key)' ELSE 'NULL::uuid[]' END,
    CASE WHEN event_column <> '' THEN 'ARRAY(SELECT DISTINCT event_id FROM created WHERE event_id IS NOT NULL)'
         ELSE 'NULL::uuid[]' END,
    CASE WHEN versioned THEN 'true' ELSE 'false' END,
    -- a change to a record's own parts (an event's roles) is an update of the record
    (SELECT string_agg(format('(%L, %I, %L, %s)', split_part(pair, ':', 1), 'feed_' || n,
                              CASE WHEN split_part(pair, ':', 2) = 'id' AND keys = 'id' THEN 'created'
                                   ELSE 'updated' END, n), ', ')
       FROM unnest(string_to_array(feeds, ',')) WITH ORDINALITY AS p(pair, n)),
    '""" + _ON_CONFLICT.replace("'", "''") + """')
$$;

"""


def _from_0018(function: str) -> str:
    """Migration 0018's statement that creates `function`, as it made it."""
    found = [statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
             for statement in split_statements(sibling_migration("0018_history_by_statement.py")._FUNCTIONS)
             if any(line.startswith("CREATE") and f"FUNCTION {function}(" in line for line in statement.splitlines())]
    assert len(found) == 1, f"migration 0018 creates {function}() once"
    return found[0]


# Migration 0018's record_versions() with its creations recorded by the statement above;
# updates and deletes, which keep the rows' images, as they were.
_INSERT_BRANCH_0018 = re.compile(r"(  IF TG_OP = 'INSERT' THEN\n).*?(?=  ELSIF TG_OP = 'UPDATE' THEN)", re.S)
_INSERT_BRANCH = """    -- a creation keeps no image: its columns are read where they are
    EXECUTE creation_history_statement(TG_TABLE_NAME, TG_ARGV[0], TG_ARGV[1], TG_ARGV[2], versioned)
      USING gen, changed_at, who;
"""


def _record_versions() -> str:
    before = _from_0018("record_versions")
    after = _INSERT_BRANCH_0018.sub(lambda match: match.group(1) + _INSERT_BRANCH, before)
    assert after != before, "migration 0018's record_versions() has its INSERT branch"
    return after


def upgrade() -> None:
    execute_script(_FUNCTIONS + "\n" + _record_versions())


def downgrade() -> None:
    execute_script(_from_0018("record_versions") + """
DROP FUNCTION creation_history_statement(text, text, text, text, boolean);
""")
