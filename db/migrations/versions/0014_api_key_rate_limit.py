"""A rate limit of its own per API key.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

`rate_limit`: the units a key may spend per rate-limit window (api/ratelimit.py),
set by `conflictkb apikey create --rate-limit N` or `apikey set-limit`; NULL: its
role's quota from the settings, so changing a role's quota changes every key that
has none of its own.
"""

from db.migrations.sql_script import execute_script

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
ALTER TABLE api_keys ADD COLUMN rate_limit integer CONSTRAINT ck_api_keys_rate_limit_positive CHECK (rate_limit > 0);
""")


def downgrade() -> None:
    execute_script("ALTER TABLE api_keys DROP COLUMN rate_limit;")
