"""The indexes a bulk load took down, until they are built again.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04

A large bulk load drops the events' secondary indexes and builds them once at the end
(db/bulk.py): row by row they cost more than one build. Their definitions are written
here in the transaction that drops them, so a load that is killed before it builds them
leaves what to build, and the next start (serve, seed, generate: finish_bulk_load)
builds them, instead of a knowledge base that answers every query by a full scan.
"""

from db.migrations.sql_script import execute_script

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
CREATE TABLE indexes_to_rebuild (
  name text PRIMARY KEY,
  definition text NOT NULL      -- pg_get_indexdef(): the CREATE INDEX statement
);
""")


def downgrade() -> None:
    execute_script("DROP TABLE indexes_to_rebuild;")
