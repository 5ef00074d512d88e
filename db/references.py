"""References checked once per batch, not once per row.

PostgreSQL checks a foreign key with a trigger per inserted row: an index lookup and a
row lock on the referenced row, ~5 us each, four of them for a claim (its event,
claimant, document, the actor it names). A staged batch (db/derive.py) checks each
foreign key of the tables it fills with one statement instead, from the catalog (so no
key is left out, now or after a migration): the distinct values it refers to are
locked FOR KEY SHARE, as the key's trigger would lock them (a concurrent delete of a
referenced row waits for this transaction, or fails), and a value with no row is an
error naming the key and the value. Then the rows go in with session_replication_role
= replica, which skips the keys' triggers; every trigger of ours on those tables is
ENABLE ALWAYS (migration 0019) and fires as before, but those whose work the batch has
done itself in staging (migration 0022; named by the caller).

Only where that holds: the role may set the parameter (a superuser, as the embedded
server's is, or GRANT SET ON PARAMETER session_replication_role), and every other
non-internal trigger on the tables fires always (a trigger added later without it
would be skipped). Otherwise the rows go in as any other insert, checked per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


class MissingReference(RuntimeError):
    """A staged row refers to a row that is not there."""


@dataclass(frozen=True)
class _ForeignKey:
    name: str
    columns: tuple[str, ...]
    referenced_table: str
    referenced_columns: tuple[str, ...]

    def lock_and_find_missing(self, staged: str) -> str:
        """SQL: lock the referenced rows the staged ones name (`locked` counts them: a
        CTE nobody reads is not run), and the first value with no row (`missing`)."""
        cols = ", ".join(f's."{c}"' for c in self.columns)
        present = " AND ".join(f's."{c}" IS NOT NULL' for c in self.columns)
        match = " AND ".join(f'r."{rc}" = s."{c}"' for c, rc in zip(self.columns, self.referenced_columns))
        return f"""
            WITH wanted AS MATERIALIZED (SELECT DISTINCT {cols} FROM {staged} s WHERE {present}),
                 locked AS MATERIALIZED (SELECT 1 FROM {self.referenced_table} r
                                          WHERE EXISTS (SELECT 1 FROM wanted s WHERE {match}) FOR KEY SHARE OF r)
            SELECT (SELECT count(*) FROM locked) AS locked,
                   (SELECT ROW({cols})::text FROM wanted s
                     WHERE NOT EXISTS (SELECT 1 FROM {self.referenced_table} r WHERE {match}) LIMIT 1) AS missing"""


async def _foreign_keys(conn: AsyncConnection, table: str) -> list[_ForeignKey]:
    rows = await conn.execute(text("""
        SELECT c.conname,
               ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS columns,
               c.confrelid::regclass::text AS referenced_table,
               ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                       JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) AS referenced
          FROM pg_constraint c
         WHERE c.conrelid = CAST(:table AS regclass) AND c.contype = 'f'
         ORDER BY c.conname"""), {"table": table})
    return [_ForeignKey(r.conname, tuple(r.columns), r.referenced_table, tuple(r.referenced)) for r in rows]


async def can_skip_row_checks(conn: AsyncConnection, tables: Sequence[str], done_in_staging: Sequence[str] = ()
                              ) -> bool:
    """Whether rows of `tables` may go in with the keys' per-row triggers skipped (see
    the module's docstring); `done_in_staging`: the triggers whose work the rows bring."""
    return bool(await conn.scalar(text("""
        SELECT (current_setting('is_superuser') = 'on'
                OR has_parameter_privilege('session_replication_role', 'SET'))
           AND NOT EXISTS (SELECT 1 FROM pg_trigger
                            WHERE tgrelid = ANY(CAST(:tables AS regclass[])) AND NOT tgisinternal AND tgenabled <> 'A'
                              AND tgname <> ALL(CAST(:done AS text[])))"""),
        {"tables": list(tables), "done": list(done_in_staging)}))


async def check_references(conn: AsyncConnection, table: str, staged: str) -> None:
    """Every foreign key of `table` checked for the rows staged in `staged` (shaped
    like it), the rows they refer to locked; MissingReference names the first miss."""
    for key in await _foreign_keys(conn, table):
        row = (await conn.execute(text(key.lock_and_find_missing(staged)))).one()
        if row.missing is not None:
            raise MissingReference(f"{table}.{', '.join(key.columns)} = {row.missing}: no such row in "
                                   f"{key.referenced_table} ({key.name})")
