"""The actor crosswalk (seeds/actor_crosswalk.csv) into the knowledge base.

The file lists, per row, an actor as UCDP's GED names it (`ucdp_name`, its UCDP id
`ucdp_actor_id`) and a name ACLED gives the same actor (`acled_name`), with a note on
the evidence. It is kept as pairs of normalised names in both directions
(`actor_crosswalk`, migration 0016), so it applies to any actor bearing either name,
however it came in. Loading is an upsert of the whole file: rows added to the file
apply at the next seed or import, rows removed from it go.
"""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.names import normalize_name

CROSSWALK_FILE = Path(__file__).resolve().parent.parent / "seeds" / "actor_crosswalk.csv"


def read_crosswalk(path: Path = CROSSWALK_FILE) -> list[tuple[str, str, str | None]]:
    """(name, other name, note) of every row, both directions, names normalised."""
    pairs: dict[tuple[str, str], str | None] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            ucdp, acled = normalize_name(row["ucdp_name"] or ""), normalize_name(row["acled_name"] or "")
            if ucdp and acled and ucdp != acled:
                note = (row.get("note") or "").strip() or None
                pairs[ucdp, acled] = pairs[acled, ucdp] = note
    return [(a, b, note) for (a, b), note in sorted(pairs.items())]


async def load_crosswalk(conn: AsyncConnection, path: Path = CROSSWALK_FILE) -> None:
    """Make actor_crosswalk what the file says, writing nothing when it already is."""
    if not path.exists():
        return
    rows = read_crosswalk(path)
    params = {"names": [r[0] for r in rows], "others": [r[1] for r in rows], "notes": [r[2] for r in rows]}
    await conn.execute(text("""
        WITH wanted AS (
          SELECT * FROM unnest(CAST(:names AS text[]), CAST(:others AS text[]), CAST(:notes AS text[]))
                     AS w (name_norm, other_name_norm, note)
        ), gone AS (
          DELETE FROM actor_crosswalk c
           WHERE NOT EXISTS (SELECT 1 FROM wanted w WHERE (w.name_norm, w.other_name_norm)
                                                          = (c.name_norm, c.other_name_norm))
        )
        INSERT INTO actor_crosswalk AS c (name_norm, other_name_norm, note)
        SELECT * FROM wanted
        ON CONFLICT (name_norm, other_name_norm) DO UPDATE SET note = excluded.note
        WHERE c.note IS DISTINCT FROM excluded.note"""), params)
