"""Engine construction: one async engine per process, asyncpg underneath."""

import orjson
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# Every session of the app. The API runs many small queries at once: a parallel plan's
# worker start-up costs more than it saves (tens of ms on 2 cores), and a runaway
# query must not hold a connection forever. The knowledge base's working set lives in
# memory (or on SSD), where a random page costs about what a sequential one does:
# with the default random_page_cost (4, for spinning disks) the planner scans the
# small actors table once per claim of a page instead of using its key (10 ms instead
# of 6 for a page of 50 events with their claims).
SESSION_SETTINGS = {
    "application_name": "conflictkb",
    "statement_timeout": "30000",
    "max_parallel_workers_per_gather": "0",
    "random_page_cost": "1.1",
    # Stats group in memory: at PostgreSQL's 4 MB the 16,000 groups of a chart of all
    # air strikes by province and month spilled to disk in five batches.
    "work_mem": "32MB",
}


def make_engine(database_url: str, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        # Reads run at READ COMMITTED in autocommit-free transactions that the
        # request scope opens and closes; statement timeouts keep a bad query from
        # holding a connection forever.
        connect_args={"server_settings": SESSION_SETTINGS},
        # JSON trees come back from PostgreSQL as text: orjson parses them several
        # times faster than the standard library.
        json_deserializer=orjson.loads,
    )
    # An INSERT of many rows (`execute(insert(t), rows)`) goes as multi-row INSERTs of up
    # to 1,000 rows, as psycopg2's dialect does, not as asyncpg's one statement per row:
    # each statement fires the tables' statement triggers (history, generation, rollup)
    # once, and per row that cost ~130 us a row.
    engine.sync_engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


async def ping(engine: AsyncEngine) -> None:
    """Raise unless PostgreSQL answers a query."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def is_unstorable_text(exc: DBAPIError) -> bool:
    """PostgreSQL refused a text value it cannot hold (a NUL character): bad input."""
    return getattr(exc.orig, "sqlstate", None) == "22021"  # character_not_in_repertoire
