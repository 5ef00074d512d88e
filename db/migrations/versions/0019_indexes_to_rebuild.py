"""Bulk loads: the indexes a load took down, until they are built again; the
triggers of the tables a batch fills fire always.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04

A large bulk load drops the events' secondary indexes and builds them once at the end
(db/bulk.py): row by row they cost more than one build. Their definitions are written
here in the transaction that drops them, so a load that is killed before it builds them
leaves what to build, and the next start (serve, seed, generate: finish_bulk_load)
builds them, instead of a knowledge base that answers every query by a full scan.

A staged batch checks its foreign keys once per batch and inserts its rows with
session_replication_role = replica, which skips the keys' per-row triggers
(db/references.py); the triggers of ours on events, event_actors and claims (history,
generation, rollup, points, derived columns, checks) are made ENABLE ALWAYS so that
they fire in that mode too, as in any other.
"""

from db.migrations.sql_script import execute_script

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


_STAGED_TABLES = ("events", "event_actors", "claims")


def _enable_triggers(how: str) -> str:
    """Every non-internal trigger of the staged tables enabled `how` (ALWAYS or plain)."""
    tables = ", ".join(f"'{t}'::regclass" for t in _STAGED_TABLES)
    return f"""
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT tgrelid::regclass AS tbl, tgname FROM pg_trigger
            WHERE NOT tgisinternal AND tgrelid IN ({tables}) LOOP
    EXECUTE format('ALTER TABLE %s ENABLE {how} TRIGGER %I', t.tbl, t.tgname);
  END LOOP;
END $$;
"""


def upgrade() -> None:
    execute_script("""
CREATE TABLE indexes_to_rebuild (
  name text PRIMARY KEY,
  definition text NOT NULL      -- pg_get_indexdef(): the CREATE INDEX statement
);
""" + _enable_triggers("ALWAYS"))


def downgrade() -> None:
    execute_script(_enable_triggers("") + "DROP TABLE indexes_to_rebuild;")
