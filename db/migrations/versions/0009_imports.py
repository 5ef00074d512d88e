"""Imports: which dataset made a claim, and which files have been imported.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25

`claims.dataset`: the dataset whose import made the claim (null for the seed's and the
API's). A re-import removes the claims its rows no longer make, and only those: claims
that editors or other datasets added to the same event stay.

`dataset_files`: each file imported in full, by its SHA-256, with the summary; the seed
step skips a dataset file already imported (`conflictkb import` always reads the file).
"""

from db.migrations.sql_script import execute_script

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
ALTER TABLE claims ADD COLUMN dataset text REFERENCES datasets (code);

CREATE TABLE dataset_files (
  sha256 text PRIMARY KEY,
  dataset text NOT NULL REFERENCES datasets (code),
  file_name text NOT NULL,
  imported_at timestamptz NOT NULL DEFAULT now(),
  summary text NOT NULL
);
""")


def downgrade() -> None:
    execute_script("""
DROP TABLE dataset_files;
ALTER TABLE claims DROP COLUMN dataset;
""")
