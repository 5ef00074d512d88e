"""Migrations: the models the query layer uses match what the migrations build, and
the schema goes down and up again cleanly."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from db.engine import make_engine
from db.migrate import alembic_config
from db.models import metadata


def _differences(connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    # Indexes, UNIQUE and CHECK constraints and triggers live in the migrations only;
    # tables, columns, types, nullability, defaults and foreign keys must agree.
    return [d for d in compare_metadata(context, metadata)
            if not (isinstance(d, tuple) and d[0] in ("add_index", "remove_index", "add_constraint", "remove_constraint"))]


async def test_models_match_the_migrated_schema(database_url: str):
    engine = make_engine(database_url, pool_size=1)
    async with engine.connect() as conn:
        differences = await conn.run_sync(_differences)
    await engine.dispose()
    assert differences == []


async def test_downgrade_then_upgrade(fresh_database_url: str):
    config = alembic_config(fresh_database_url)
    await asyncio.to_thread(command.downgrade, config, "base")
    await asyncio.to_thread(command.upgrade, config, "head")
    engine = make_engine(fresh_database_url, pool_size=1)
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
    await engine.dispose()
