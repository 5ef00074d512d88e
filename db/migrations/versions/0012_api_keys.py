"""API keys for writes: stored as hashes, each with a role.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25

A key is a random 256-bit token shown once when it is made; only its SHA-256 is kept.
A token that random needs no slow password hash (nobody can guess their way to one),
and a fast hash lets every write look its key up by an index. `prefix` (the token's
first characters) lets `conflictkb apikey list` show which key is which. A revoked key
stays, so the history can still name who made a change with it.
"""

from db.migrations.sql_script import execute_script

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (name <> ''),
  role text NOT NULL CHECK (role IN ('reader', 'editor', 'admin')),
  key_sha256 bytea NOT NULL CONSTRAINT uq_api_keys_sha256 UNIQUE,
  prefix text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
""")


def downgrade() -> None:
    execute_script("DROP TABLE api_keys;")
