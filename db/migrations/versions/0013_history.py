"""History of every record, the change feed, and idempotent POSTs.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25

`record_versions` keeps every row version of the knowledge base's tables (who, when,
the row after the change; the row before is the previous version), so an event's
history and its state at any past time (`as_of`) can be read back. `changes` is the
feed a mirror follows: one entry per record (event, claim, actor, place, document) and
writing transaction, a change to a record's own parts (an event's participants and
external ids, an actor's names) listed as an update of the record.

Both are written by statement triggers from transition tables, so every writer is
recorded (the API, imports, the seed, psql) at the cost of one INSERT ... SELECT per
statement, not a trigger call per row.

Commit order: every writing transaction moves the data generation (migration 0005)
before its first row and holds that row lock until it commits, so generations are
handed out in commit order and (generation, seq) orders the feed exactly as the
transactions committed. A reader that has seen generation g has seen every earlier
one: a cursor never skips a change that commits later. Bulk loads leave the
generation alone while their parallel batches run; their changes wait with no
generation, invisible to the feed, until finish_bulk_load stamps them.

Rows that existed before this migration are recorded as created, at their
`created_at` where the table has one, so a mirror started from the beginning of the
feed gets everything and `as_of` reads of them work.
"""

from db.migrations.sql_script import execute_script

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# table: (key columns, the column naming the event the row is part of, the feed records
# a change of the row is a change of (type:column, ...), whether its versions are kept)
TRACKED = {
    "events": ("id", "id", "event:id", True),
    # an event's answer embeds its claims, a document's counts them: a claim's change is theirs too
    "claims": ("id", "event_id", "claim:id,event:event_id,document:document_id", True),
    "event_actors": ("event_id,actor_id,role", "event_id", "event:event_id", True),
    "event_external_ids": ("dataset,external_id", "event_id", "event:event_id", True),
    # linked events are in both events' answers; the pairs themselves are derived (no history)
    "event_matches": ("event_id,other_id", "", "event:event_id,event:other_id", False),
    "actors": ("id", "", "actor:id", True),
    "actor_names": ("actor_id,name_norm", "", "actor:actor_id", True),
    "actor_external_ids": ("dataset,external_id", "", "actor:actor_id", True),
    # both sides' answers list the membership
    "actor_memberships": ("id", "", "actor:member_id,actor:group_id", True),
    # an actor's or a place's answer names what it lies in (derived: no history)
    "actor_lineage": ("ancestor_id,descendant_id", "", "actor:descendant_id", False),
    "places": ("id", "", "place:id", True),
    "place_names": ("place_id,name_norm", "", "place:place_id", True),
    "place_lineage": ("ancestor_id,descendant_id", "", "place:descendant_id", False),
    "place_external_ids": ("dataset,external_id", "", "place:place_id", True),
    "documents": ("id", "", "document:id", True),
}

# Derived columns a version leaves out (here and in record_versions()): the search
# text is rebuilt from the rest, and the point is the coordinates again.
_LEFT_OUT = "- 'search_vector' - 'location'"


# The functions the triggers call (as this migration made them: 0018 restores them on
# its way down).
RECORD_FUNCTIONS_SQL = """
-- Records rows as versions and feed entries; `images` are the rows (jsonb, derived
-- columns left out); the other arguments as record_versions() below takes them. Static
-- SQL in PL/pgSQL: its plans are made once per session, where a dynamic statement per
-- trigger call was planned anew each time (an executemany, one statement per row, paid
-- ~300 us a row).
CREATE FUNCTION record_row_changes(images jsonb[], gen bigint, changed_at timestamptz, writer text,
                                   source_table text, change text, keys text, event_column text, feeds text,
                                   versioned boolean)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF versioned THEN
    INSERT INTO record_versions (generation, at, who, table_name, record_key, op, event_id, image)
    SELECT gen, changed_at, writer, source_table,
           array_to_string(ARRAY(SELECT j ->> k FROM unnest(string_to_array(keys, ',')) k), '/'), change,
           CASE WHEN event_column <> '' THEN (j ->> event_column)::uuid END, CASE WHEN change <> 'deleted' THEN j END
      FROM unnest(images) j;
  END IF;
  INSERT INTO changes AS f (generation, at, record_type, record_id, op)
  SELECT DISTINCT gen, changed_at, split_part(pair, ':', 1), (j ->> split_part(pair, ':', 2))::uuid,
         -- a change to a record's own parts (an event's roles) is an update of the record
         CASE WHEN split_part(pair, ':', 2) = 'id' AND keys = 'id' THEN change ELSE 'updated' END
    FROM unnest(images) j CROSS JOIN unnest(string_to_array(feeds, ',')) pair
   WHERE j ->> split_part(pair, ':', 2) IS NOT NULL
  -- the record's net change in this transaction (a cascade may report parts after the whole)
  ON CONFLICT ON CONSTRAINT uq_changes_per_transaction DO UPDATE SET op = CASE
    WHEN excluded.op IN ('deleted', 'merged') THEN excluded.op
    WHEN f.op IN ('deleted', 'merged') THEN CASE WHEN excluded.op = 'created' THEN 'updated' ELSE f.op END
    WHEN f.op = 'created' THEN 'created'
    ELSE excluded.op END;
END $$;

-- The trigger's arguments: key columns (comma-separated); the column naming the event
-- the row is part of (or ''); the feed records a change of the row is a change of, as
-- type:column pairs; 'versions' or 'feed only'.
CREATE FUNCTION record_versions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  gen bigint;
  who text := coalesce(nullif(current_setting('conflictkb.actor', true), ''), 'database user ' || session_user);
  -- When the transaction's first change was made: after it took its turn on the
  -- generation, so a write that waited for another is not dated before that one
  -- committed (now(), the transaction's start, would be). as_of reads by this time.
  changed_at timestamptz := nullif(current_setting('conflictkb.changed_at', true), '')::timestamptz;
  images jsonb[];
BEGIN
  IF coalesce(current_setting('conflictkb.bulk_load', true), '') <> 'on' THEN
    SELECT generation INTO gen FROM data_generation;  -- this transaction's (moved before its first row)
  END IF;
  IF changed_at IS NULL THEN
    changed_at := clock_timestamp();
    PERFORM set_config('conflictkb.changed_at', changed_at::text, true);
  END IF;
  IF TG_OP = 'INSERT' THEN
    images := ARRAY(SELECT to_jsonb(r) - 'search_vector' - 'location' FROM new_rows r);
  ELSIF TG_OP = 'UPDATE' THEN
    -- an update that leaves a row as it was (but for derived columns) is no change
    images := ARRAY(SELECT to_jsonb(r) - 'search_vector' - 'location' FROM new_rows r
                    EXCEPT ALL SELECT to_jsonb(o) - 'search_vector' - 'location' FROM old_rows o);
  ELSE
    images := ARRAY(SELECT to_jsonb(r) - 'search_vector' - 'location' FROM old_rows r);
  END IF;
  IF cardinality(images) > 0 THEN
    PERFORM record_row_changes(images, gen, changed_at, who, TG_TABLE_NAME,
                               CASE TG_OP WHEN 'INSERT' THEN 'created' WHEN 'UPDATE' THEN 'updated' ELSE 'deleted' END,
                               TG_ARGV[0], TG_ARGV[1], TG_ARGV[2], TG_ARGV[3] = 'versions');
  END IF;
  RETURN NULL;
END $$;
"""


def upgrade() -> None:
    backfill = []
    for table, (keys, event_column, feeds, versioned) in TRACKED.items():
        at = "t.created_at" if table in ("events", "claims", "actors", "places", "documents") else "now()"
        key = " || '/' || ".join(f"t.{c}::text" for c in keys.split(","))
        own_type = feeds.split(",")[0].split(":")[0]
        if keys == "id":
            backfill.append(f"""
INSERT INTO changes (generation, at, record_type, record_id, op)
SELECT (SELECT generation FROM data_generation), {at}, '{own_type}', t.id, 'created' FROM {table} t ORDER BY t.id;""")
        if not versioned:
            continue
        backfill.append(f"""
INSERT INTO record_versions (generation, at, who, table_name, record_key, op, event_id, image)
SELECT (SELECT generation FROM data_generation), {at}, 'before history', '{table}', {key}, 'created',
       {f't.{event_column}' if event_column else 'NULL'}, to_jsonb(t) {_LEFT_OUT}
  FROM {table} t;""")
    triggers = []
    for table, (keys, event_column, feeds, versioned) in TRACKED.items():
        argv = f"'{keys}', '{event_column}', '{feeds}', '{'versions' if versioned else 'feed only'}'"
        triggers.append(f"""
CREATE TRIGGER tr_{table}_versions_insert AFTER INSERT ON {table}
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_versions({argv});
CREATE TRIGGER tr_{table}_versions_update AFTER UPDATE ON {table}
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_versions({argv});
CREATE TRIGGER tr_{table}_versions_delete AFTER DELETE ON {table}
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION record_versions({argv});""")
    execute_script("""
CREATE TABLE record_versions (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  generation bigint,            -- NULL while the bulk load that wrote it runs
  at timestamptz NOT NULL DEFAULT now(),
  who text NOT NULL,
  table_name text NOT NULL,
  record_key text NOT NULL,
  op text NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
  event_id uuid,                -- the event the row is part of (the event itself, its claims, roles, ids)
  image jsonb                   -- the row after the change; NULL once deleted
);
-- what finish_bulk_load stamps (db/cache.py)
CREATE INDEX ix_record_versions_unstamped ON record_versions (id) WHERE generation IS NULL;
CREATE INDEX ix_record_versions_event ON record_versions (event_id, id) WHERE event_id IS NOT NULL;

CREATE TABLE changes (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  generation bigint,
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  at timestamptz NOT NULL DEFAULT now(),
  record_type text NOT NULL CHECK (record_type IN ('event', 'claim', 'actor', 'place', 'document')),
  record_id uuid NOT NULL,
  op text NOT NULL CHECK (op IN ('created', 'updated', 'deleted', 'merged')),
  merged_into uuid,
  CONSTRAINT uq_changes_per_transaction UNIQUE (txid, record_type, record_id)
);
CREATE INDEX ix_changes_feed ON changes (generation, seq);
CREATE INDEX ix_changes_record ON changes (record_type, record_id, seq);
CREATE INDEX ix_changes_unstamped ON changes (seq) WHERE generation IS NULL;

""" + RECORD_FUNCTIONS_SQL + """
-- A record's updated_at moves when its own content does, not when only derived search
-- text is rebuilt (a new claim's quote): such an update is then no change to history.
CREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF to_jsonb(NEW) - 'updated_at' - 'search_vector' IS DISTINCT FROM to_jsonb(OLD) - 'updated_at' - 'search_vector' THEN
    NEW.updated_at := now();
  ELSE
    NEW.updated_at := OLD.updated_at;
  END IF;
  RETURN NEW;
END $$;

CREATE TABLE idempotent_requests (
  api_key_id uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
  key text NOT NULL,
  request_sha256 bytea NOT NULL,
  status smallint,              -- NULL until the request's transaction has its answer
  location text,
  body bytea,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (api_key_id, key)
);
CREATE INDEX ix_idempotent_requests_created ON idempotent_requests (created_at);
""" + "".join(backfill) + "".join(triggers))


def downgrade() -> None:
    execute_script("".join(f"""
DROP TRIGGER IF EXISTS tr_{table}_versions_insert ON {table};
DROP TRIGGER IF EXISTS tr_{table}_versions_update ON {table};
DROP TRIGGER IF EXISTS tr_{table}_versions_delete ON {table};""" for table in TRACKED) + """
DROP FUNCTION IF EXISTS record_versions();
DROP FUNCTION IF EXISTS record_row_changes(jsonb[], bigint, timestamptz, text, text, text, text, text, text, boolean);
CREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
DROP TABLE idempotent_requests;
DROP TABLE changes;
DROP TABLE record_versions;
""")
