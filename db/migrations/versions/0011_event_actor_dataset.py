"""Which dataset's import listed an actor's role in an event.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25

Like `claims.dataset` (migration 0009): a re-import makes the participants it listed
match its row and leaves roles that editors or other datasets added alone.
"""

from db.migrations.sql_script import execute_script

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("ALTER TABLE event_actors ADD COLUMN dataset text REFERENCES datasets (code);")


def downgrade() -> None:
    execute_script("ALTER TABLE event_actors DROP COLUMN dataset;")
