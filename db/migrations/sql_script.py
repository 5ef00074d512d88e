"""Run a multi-statement SQL script in a migration.

asyncpg prepares every statement, and a prepared statement holds one command, so a
script is split into statements first: on semicolons that end a line, outside
dollar-quoted bodies ($$ ... $$) of functions.
"""

import importlib.util
import re
from pathlib import Path

from alembic import op


def split_statements(script: str) -> list[str]:
    statements, current, in_body = [], [], False
    for line in script.splitlines():
        current.append(line)
        if line.count("$$") % 2:
            in_body = not in_body
        if not in_body and line.rstrip().endswith(";"):
            statement = "\n".join(current).strip()
            if statement.strip(";").strip() and not all(
                    ln.strip().startswith("--") or not ln.strip() for ln in current):
                statements.append(statement)
            current = []
    tail = "\n".join(current).strip()
    if tail and not all(ln.strip().startswith("--") or not ln.strip() for ln in current):
        statements.append(tail)
    return statements


def execute_script(script: str) -> None:
    for statement in split_statements(script):
        op.execute(statement)


def sibling_migration(name: str, directory: Path = Path(__file__).with_name("versions")):
    """A migration module of versions/ by file name (they start with digits: no import
    statement), for a later migration that restores what an earlier one made."""
    path = directory / name
    spec = importlib.util.spec_from_file_location(f"_migration_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def earlier_sql(name: str, first: str, last: str = ";",
                directory: Path = Path(__file__).with_name("versions")) -> str:
    """The SQL an earlier migration of versions/ wrote inline, from the text `first`
    (e.g. "CREATE FUNCTION f()") to the first `last` after it that ends a line, as it
    stands in that file: for a later migration whose downgrade restores it."""
    source = (directory / name).read_text()
    found = re.search(re.escape(first) + r".*?" + re.escape(last) + r"$", source, re.DOTALL | re.MULTILINE)
    assert found, f"{name} has no {first!r}"
    return found.group(0)
