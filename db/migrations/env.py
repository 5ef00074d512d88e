"""Alembic environment: runs migrations over the async engine the app uses."""

import asyncio
import os

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from db.models import metadata

config = context.config


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    # `conflictkb migrate` passes the URL; a developer running `alembic` sets DATABASE_URL.
    url = config.attributes.get("database_url") or os.environ["DATABASE_URL"]
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        # One migrator at a time, even when `serve` and `migrate` start together.
        await connection.exec_driver_sql("SELECT pg_advisory_lock(727001)")
        try:
            await connection.run_sync(_run)
            await connection.commit()
        except BaseException:
            await connection.rollback()
            raise
        finally:
            await connection.exec_driver_sql("SELECT pg_advisory_unlock(727001)")
            await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `conflictkb migrate`")
asyncio.run(_run_online())
