"""bigint_sum(bigint): a sum of bigints that stays a bigint.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25

PostgreSQL's sum(bigint) accumulates in a 128-bit state kept in memory per group and
returns numeric, which the rollup's readers cast back to bigint; on the 16,000 groups
of air strikes by province and month that state and the two conversions cost ~13 ms
of a ~70 ms answer. This aggregate adds with int8pl, the built-in bigint `+`: the
state is a plain bigint, and a total past the bigint range is an error ("bigint out
of range"), never a wrong figure. Like sum, it skips nulls and is null over none.
"""

from db.migrations.sql_script import execute_script

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
CREATE AGGREGATE bigint_sum(bigint) (
  sfunc = int8pl, stype = bigint, combinefunc = int8pl, parallel = safe
);
""")


def downgrade() -> None:
    execute_script("DROP AGGREGATE bigint_sum(bigint);")
