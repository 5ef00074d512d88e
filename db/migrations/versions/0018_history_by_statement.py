"""History by statement: one row per statement and table, the rows before the change.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04

Migration 0013 kept a version per row changed: the row after the change, as jsonb,
with who and when. On a million generated events that was 8.2 million versions and
11 GB, more than the knowledge base itself, and writing them was half of a bulk
load's time: most of it the image of a row just created, which is the row itself.

`change_sets` keeps one row per statement and table (what the statement triggers
already see at once): who, when, the generation, the operation, and per changed row
its key, the event it is part of and the row as it was BEFORE the change. A creation
keeps no image at all; the row after a change is the next change's before, or the row
as it is now. So:

- a record's state at a time T is the `before` of its first change after T (none if
  that change created it), or the current row if nothing changed it since T;
- an event's history lists its rows' changes with the before and the after, as before.

An update that moves a row to another event (a merge moves claims) keeps the event of
the row after it too (`events_after`, NULL when no row of the statement moved), and
`events_touched` holds every event a statement's rows were part of before or after, so
an event's changes are found by one GIN lookup whichever side of a move it was on.

The versions of 0013 are converted: each transaction's versions of one table and
operation become a change set, each version's `before` the version before it.

Generations by transaction: each writing transaction's generation is written once, in
`write_generations` (by `take_generation()`, which moves the generation), not on every
feed entry. The feed reads its entries through it, in (generation, seq) order as
before. A bulk load's batch takes its generation as its last step, so parallel batches
do not queue on the generation's row lock for longer than their commit, and its entries
are in the feed as it commits: nothing is left to stamp at the end (0013 updated every
entry of a load then, a second copy of each row: on a million events a statement that
ran into the 30 s budget and doubled the feed's size).
"""

from __future__ import annotations

from alembic import op as alembic_op

from db.migrations.sql_script import execute_script, sibling_migration

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


_FUNCTIONS = """
-- The feed entries of one statement's rows (`images`: after the change; deleted rows:
-- before it), per record and transaction (migration 0013's rules; the generation is
-- the transaction's, in write_generations).
CREATE FUNCTION record_feed_entries(images jsonb[], changed_at timestamptz, change text, keys text, feeds text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO changes AS f (at, record_type, record_id, op)
  SELECT DISTINCT changed_at, split_part(pair, ':', 1), (j ->> split_part(pair, ':', 2))::uuid,
         -- a change to a record's own parts (an event's roles) is an update of the record
         CASE WHEN split_part(pair, ':', 2) = 'id' AND keys = 'id' THEN change ELSE 'updated' END
    FROM unnest(images) j CROSS JOIN unnest(string_to_array(feeds, ',')) pair
   WHERE j ->> split_part(pair, ':', 2) IS NOT NULL
  -- the record's net change in this transaction (a cascade may report parts after the whole)
  ON CONFLICT ON CONSTRAINT uq_changes_per_transaction DO UPDATE SET op = CASE
    WHEN excluded.op IN ('deleted', 'merged') THEN excluded.op
    WHEN f.op IN ('deleted', 'merged') THEN CASE WHEN excluded.op = 'created' THEN 'updated' ELSE f.op END
    WHEN f.op = 'created' THEN 'created'
    ELSE excluded.op END
  -- (an entry that stays as it is is not written again: the claims of an event created
  -- in the same transaction each name it)
  WHERE f.op IS DISTINCT FROM CASE
    WHEN excluded.op IN ('deleted', 'merged') THEN excluded.op
    WHEN f.op IN ('deleted', 'merged') THEN CASE WHEN excluded.op = 'created' THEN 'updated' ELSE f.op END
    WHEN f.op = 'created' THEN 'created'
    ELSE excluded.op END;
END $$;

-- One statement's change to one table as a change set: `changed` the rows before the
-- change (created: after it, and no image is kept), `afters` an update's rows after it
-- (to see which moved to another event).
CREATE FUNCTION record_change_set(changed jsonb[], afters jsonb[], gen bigint, changed_at timestamptz, writer text,
                                  source_table text, change text, keys text, event_column text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  WITH changed_rows AS (
    SELECT CASE WHEN strpos(keys, ',') = 0 THEN j ->> keys  -- (most tables: one key column)
                ELSE array_to_string(ARRAY(SELECT j ->> k FROM unnest(string_to_array(keys, ',')) k), '/') END AS key,
           CASE WHEN event_column <> '' THEN (j ->> event_column)::uuid END AS event_id, j AS image
      FROM unnest(changed) j
  ), moved AS (
    SELECT array_to_string(ARRAY(SELECT j ->> k FROM unnest(string_to_array(keys, ',')) k), '/') AS key,
           (j ->> event_column)::uuid AS event_after
      FROM unnest(afters) j
     WHERE event_column NOT IN ('', 'id')
  ), paired AS (
    SELECT r.key, r.event_id, r.image, coalesce(m.event_after, r.event_id) AS event_after
      FROM changed_rows r LEFT JOIN moved m USING (key)
  )
  INSERT INTO change_sets (generation, at, who, table_name, op, keys, event_ids, events_after, befores, events_touched)
  SELECT gen, changed_at, writer, source_table, change, array_agg(key ORDER BY key),
         CASE WHEN event_column <> '' THEN array_agg(event_id ORDER BY key) END,
         CASE WHEN bool_or(event_after IS DISTINCT FROM event_id) THEN array_agg(event_after ORDER BY key) END,
         CASE WHEN change <> 'created' THEN array_agg(image ORDER BY key) END,
         CASE WHEN event_column <> '' THEN
           ARRAY(SELECT DISTINCT e FROM paired, LATERAL (VALUES (event_id), (event_after)) v(e) WHERE e IS NOT NULL)
         END
    FROM paired
  HAVING count(*) > 0;
  -- (a bulk load's, without a generation yet, get it from take_generation())
END $$;

-- Moves the data generation for this transaction, once (the first call; later ones
-- return it), and writes it down for the feed and the history: the generation is the
-- transaction's place in commit order (its row lock is held until commit). A bulk
-- load's batch calls it last: its history, written without a generation, gets it here.
CREATE FUNCTION take_generation() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  taken bigint;
BEGIN
  IF coalesce(current_setting('conflictkb.generation_bumped', true), '') = 'on' THEN
    RETURN current_setting('conflictkb.generation')::bigint;
  END IF;
  UPDATE data_generation SET generation = generation + 1 RETURNING generation INTO taken;
  INSERT INTO write_generations (txid, generation) VALUES (pg_current_xact_id(), taken);
  UPDATE change_sets SET generation = taken WHERE generation IS NULL AND txid = pg_current_xact_id();
  PERFORM set_config('conflictkb.generation_bumped', 'on', true), set_config('conflictkb.generation', taken::text, true);
  RETURN taken;
END $$;

-- (migration 0005's, now through take_generation)
CREATE OR REPLACE FUNCTION bump_data_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('conflictkb.bulk_load', true), '') <> 'on' THEN
    PERFORM take_generation();
  END IF;
  RETURN NULL;
END $$;

-- The trigger's arguments (as migration 0013 set them): key columns (comma-separated);
-- the column naming the event the row is part of (or ''); the feed records a change of
-- the row is a change of, as type:column pairs; 'versions' or 'feed only'.
CREATE OR REPLACE FUNCTION record_versions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  -- this transaction's (taken before its first row; none yet in a bulk load's batch)
  gen bigint := nullif(current_setting('conflictkb.generation', true), '')::bigint;
  who text := coalesce(nullif(current_setting('conflictkb.actor', true), ''), 'database user ' || session_user);
  -- When the transaction's first change was made: after it took its turn on the
  -- generation, so a write that waited for another is not dated before that one
  -- committed (now(), the transaction's start, would be). as_of reads by this time.
  changed_at timestamptz := nullif(current_setting('conflictkb.changed_at', true), '')::timestamptz;
  versioned boolean := TG_ARGV[3] = 'versions';
  afters jsonb[];    -- the rows after the change (inserted, or updated and changed)
  befores jsonb[];   -- the rows before it (updated and changed, or deleted)
BEGIN
  IF changed_at IS NULL THEN
    changed_at := clock_timestamp();
    PERFORM set_config('conflictkb.changed_at', changed_at::text, true);
  END IF;
  IF TG_OP = 'INSERT' THEN
    -- A creation keeps no image: only the columns that key the rows, name their event
    -- and their feed records are read, not each whole row as JSON (a third of what a
    -- bulk insert of claims cost).
    EXECUTE format('SELECT ARRAY(SELECT jsonb_build_object(%s) FROM new_rows)',
                   (SELECT string_agg(format('%L, %I', c, c), ', ')
                      FROM (SELECT DISTINCT c FROM unnest(string_to_array(TG_ARGV[0], ',')
                                                         || nullif(TG_ARGV[1], '')
                                                         || ARRAY(SELECT split_part(p, ':', 2)
                                                                    FROM unnest(string_to_array(TG_ARGV[2], ',')) p)) c
                             WHERE c IS NOT NULL) named))
      INTO afters;
    IF versioned AND cardinality(afters) > 0 THEN
      PERFORM record_change_set(afters, NULL, gen, changed_at, who, TG_TABLE_NAME, 'created', TG_ARGV[0], TG_ARGV[1]);
    END IF;
    PERFORM record_feed_entries(afters, changed_at, 'created', TG_ARGV[0], TG_ARGV[2]);
  ELSIF TG_OP = 'UPDATE' THEN
    -- an update that leaves a row as it was (but for derived columns) is no change
    afters := ARRAY(SELECT to_jsonb(r) - 'search_vector' - 'location' FROM new_rows r
                    EXCEPT ALL SELECT to_jsonb(o) - 'search_vector' - 'location' FROM old_rows o);
    IF cardinality(afters) = 0 THEN
      RETURN NULL;
    END IF;
    IF versioned THEN
      befores := ARRAY(SELECT to_jsonb(o) - 'search_vector' - 'location' FROM old_rows o
                       EXCEPT ALL SELECT to_jsonb(r) - 'search_vector' - 'location' FROM new_rows r);
      PERFORM record_change_set(befores, afters, gen, changed_at, who, TG_TABLE_NAME, 'updated', TG_ARGV[0],
                                TG_ARGV[1]);
    END IF;
    PERFORM record_feed_entries(afters, changed_at, 'updated', TG_ARGV[0], TG_ARGV[2]);
  ELSE
    befores := ARRAY(SELECT to_jsonb(o) - 'search_vector' - 'location' FROM old_rows o);
    IF cardinality(befores) = 0 THEN
      RETURN NULL;
    END IF;
    IF versioned THEN
      PERFORM record_change_set(befores, NULL, gen, changed_at, who, TG_TABLE_NAME, 'deleted', TG_ARGV[0], TG_ARGV[1]);
    END IF;
    PERFORM record_feed_entries(befores, changed_at, 'deleted', TG_ARGV[0], TG_ARGV[2]);
  END IF;
  RETURN NULL;
END $$;

-- (migration 0017's, now entering its events through record_feed_entries)
CREATE OR REPLACE FUNCTION record_event_updates(event_ids uuid[], source_table text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  changed_at timestamptz := nullif(current_setting('conflictkb.changed_at', true), '')::timestamptz;
BEGIN
  IF cardinality(event_ids) = 0 THEN
    RETURN;
  END IF;
  IF changed_at IS NULL THEN
    changed_at := clock_timestamp();
    PERFORM set_config('conflictkb.changed_at', changed_at::text, true);
  END IF;
  PERFORM record_feed_entries(ARRAY(SELECT jsonb_build_object('event_id', e) FROM unnest(event_ids) e),
                              changed_at, 'updated', 'event_id', 'event:event_id');
END $$;

DROP FUNCTION record_row_changes(jsonb[], bigint, timestamptz, text, text, text, text, text, text, boolean);
"""


def upgrade() -> None:
    execute_script("""
-- Each writing transaction's generation (see take_generation()).
CREATE TABLE write_generations (
  txid xid8 PRIMARY KEY,
  generation bigint NOT NULL
);
CREATE INDEX ix_write_generations_order ON write_generations (generation, txid);

CREATE TABLE change_sets (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  txid xid8 DEFAULT pg_current_xact_id(),  -- the writing transaction
  generation bigint,            -- NULL until a bulk load's batch takes its generation, last
  at timestamptz NOT NULL,
  who text NOT NULL,
  table_name text NOT NULL,
  op text NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
  keys text[] NOT NULL,         -- per row changed: its key columns' values, joined by '/'
  event_ids uuid[],             -- per row: the event it was part of (tables of an event's parts)
  events_after uuid[],          -- per row: its event after an update that moved some; else NULL
  befores jsonb[],              -- per row: the row before the change (derived columns left out); NULL when created
  events_touched uuid[]         -- the events of event_ids and events_after, once each
);
CREATE INDEX ix_change_sets_events ON change_sets USING gin (events_touched);
-- a table as it stood at a time reads the changes made to it since
CREATE INDEX ix_change_sets_table_at ON change_sets (table_name, at);
-- what take_generation() stamps: a bulk load's batch
CREATE INDEX ix_change_sets_unstamped ON change_sets (id) WHERE generation IS NULL;

-- Each transaction's versions of a table and operation (0013) as one change set, each
-- version's before the version before it.
INSERT INTO change_sets (generation, at, who, table_name, op, keys, event_ids, events_after, befores, events_touched)
SELECT generation, at, who, table_name, op, array_agg(record_key ORDER BY id),
       CASE WHEN bool_or(event_after IS NOT NULL) THEN array_agg(event_before ORDER BY id) END,
       CASE WHEN bool_or(event_after IS DISTINCT FROM event_before) THEN array_agg(event_after ORDER BY id) END,
       CASE WHEN op <> 'created' THEN array_agg(before ORDER BY id) END,
       CASE WHEN bool_or(event_after IS NOT NULL) THEN
         array_remove(ARRAY(SELECT DISTINCT unnest(array_agg(event_before) || array_agg(event_after))), NULL)
       END
  FROM (SELECT v.id, v.generation, v.at, v.who, v.table_name, v.record_key, v.op,
               -- a created version's event is its own; a later one's is the version before's
               CASE WHEN v.op = 'created' THEN v.event_id
                    ELSE lag(v.event_id) OVER versions END AS event_before,
               CASE WHEN v.op = 'deleted' THEN lag(v.event_id) OVER versions ELSE v.event_id END AS event_after,
               lag(v.image) OVER versions AS before
          FROM record_versions v
        WINDOW versions AS (PARTITION BY v.table_name, v.record_key ORDER BY v.generation NULLS LAST, v.id)) v
 GROUP BY generation, at, who, table_name, op;
-- The feed's generations, once per transaction; a bulk load that never finished
-- left its entries without one: they are in the feed from now on.
INSERT INTO write_generations (txid, generation)
SELECT txid, max(generation) FROM changes WHERE generation IS NOT NULL GROUP BY txid;
UPDATE data_generation SET generation = generation + 1
 WHERE EXISTS (SELECT 1 FROM changes WHERE generation IS NULL);
INSERT INTO write_generations (txid, generation)
SELECT DISTINCT c.txid, d.generation FROM changes c, data_generation d
 WHERE c.generation IS NULL AND NOT EXISTS (SELECT 1 FROM write_generations w WHERE w.txid = c.txid);
UPDATE change_sets SET generation = (SELECT generation FROM data_generation) WHERE generation IS NULL;
ALTER TABLE changes DROP CONSTRAINT changes_pkey;
DROP INDEX ix_changes_feed;
DROP INDEX ix_changes_unstamped;
DROP INDEX ix_changes_record;
ALTER TABLE changes DROP COLUMN generation;
-- the feed's order within a transaction, and its key
ALTER TABLE changes ADD PRIMARY KEY (txid, seq);
-- a deleted record's tombstone (db/queries/history.py)
CREATE INDEX ix_changes_gone ON changes (record_type, record_id, seq) WHERE op IN ('deleted', 'merged');
""" + _FUNCTIONS + """
DROP TABLE record_versions;
""")
    alembic_op.execute("ANALYZE change_sets")


def _current_images() -> str:
    """Every versioned table's rows now, as (table_name, record_key, event_id, image)."""
    tracked = sibling_migration("0013_history.py").TRACKED | {"event_links": ("event_id,other_id", "event_id", "", True)}
    selects = []
    for table, (keys, event_column, _feeds, versioned) in tracked.items():
        if versioned:
            key = " || '/' || ".join(f"t.{c}::text" for c in keys.split(","))
            event = f"t.{event_column}" if event_column else "NULL::uuid"
            selects.append(f"SELECT '{table}', {key}, {event}, to_jsonb(t) - 'search_vector' - 'location' FROM {table} t")
    return "\n  UNION ALL ".join(selects)


def downgrade() -> None:
    functions = sibling_migration("0013_history.py").RECORD_FUNCTIONS_SQL.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
    event_updates = sibling_migration("0017_feed_of_links_and_happenings.py").RECORD_EVENT_UPDATES_SQL.replace(
        "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
    bump = sibling_migration("0005_data_generation.py").BUMP_DATA_GENERATION_SQL.replace(
        "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
    execute_script("""
ALTER TABLE changes ADD COLUMN generation bigint;
UPDATE changes c SET generation = w.generation FROM write_generations w WHERE w.txid = c.txid;
ALTER TABLE changes DROP CONSTRAINT changes_pkey;
ALTER TABLE changes ADD PRIMARY KEY (seq);
DROP INDEX ix_changes_gone;
CREATE INDEX ix_changes_feed ON changes (generation, seq);
CREATE INDEX ix_changes_record ON changes (record_type, record_id, seq);
CREATE INDEX ix_changes_unstamped ON changes (seq) WHERE generation IS NULL;

CREATE TABLE record_versions (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  generation bigint,
  at timestamptz NOT NULL DEFAULT now(),
  who text NOT NULL,
  table_name text NOT NULL,
  record_key text NOT NULL,
  op text NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
  event_id uuid,
  image jsonb
);
CREATE INDEX ix_record_versions_unstamped ON record_versions (id) WHERE generation IS NULL;
CREATE INDEX ix_record_versions_event ON record_versions (event_id, id) WHERE event_id IS NOT NULL;

-- each change's after: the next change's before, or the row now
INSERT INTO record_versions (generation, at, who, table_name, record_key, op, event_id, image)
SELECT c.generation, c.at, c.who, c.table_name, c.key, c.op,
       CASE WHEN c.op = 'deleted' THEN c.event_id ELSE coalesce(c.event_after, c.event_id) END,
       CASE WHEN c.op = 'deleted' THEN NULL
            ELSE coalesce(lead(c.before) OVER later, now.image) END
  FROM (SELECT s.id, s.generation, s.at, s.who, s.table_name, s.op, k.key, k.event_id, k.event_after, k.before, k.n
          FROM change_sets s, unnest(s.keys, s.event_ids, s.events_after, s.befores) WITH ORDINALITY
                              AS k(key, event_id, event_after, before, n)) c
  LEFT JOIN (""" + _current_images() + """) AS now(table_name, key, event_id, image)
         ON now.table_name = c.table_name AND now.key = c.key
WINDOW later AS (PARTITION BY c.table_name, c.key ORDER BY c.at, c.id, c.n)
 ORDER BY c.generation NULLS LAST, c.id, c.n;
""" + functions + event_updates + bump + """
DROP FUNCTION take_generation();
DROP FUNCTION record_change_set(jsonb[], jsonb[], bigint, timestamptz, text, text, text, text, text);
DROP FUNCTION record_feed_entries(jsonb[], timestamptz, text, text, text);
DROP TABLE change_sets;
DROP TABLE write_generations;
""")
