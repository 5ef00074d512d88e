"""The actor crosswalk: how one dataset names an actor another names otherwise.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03

Pairs of normalised names (db/names.normalize_name), both directions, loaded from
seeds/actor_crosswalk.csv (db/crosswalk.py) by the seed and before every import. It
is kept by name, not by actor id, so it applies to whatever actor bears the name,
whichever import made it: UCDP's "Government of Syria" and ACLED's "Military Forces of
Syria (2000-)" are one identity to linking (db/linking.py) as soon as both are there.
One name may stand for several (ACLED's "Opposition Rebels (Syria)" for UCDP's
"Syrian insurgents" and for the alliances it lists), which is why the names are not
simply made aliases of one actor.
"""

from db.migrations.sql_script import execute_script

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
CREATE TABLE actor_crosswalk (
  name_norm text NOT NULL,
  other_name_norm text NOT NULL,
  note text,
  PRIMARY KEY (name_norm, other_name_norm),
  CONSTRAINT ck_actor_crosswalk_pair CHECK (name_norm <> other_name_norm)
);
""")


def downgrade() -> None:
    execute_script("DROP TABLE actor_crosswalk;")
