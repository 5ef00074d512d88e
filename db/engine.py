"""Engine construction: one async engine per process, asyncpg underneath."""

import asyncio
import time
import weakref
from collections.abc import Iterable, Sequence

import asyncpg
import orjson
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

# Every session of the app. The API runs many small queries at once: a parallel plan's
# worker start-up costs more than it saves (tens of ms on 2 cores), and a runaway
# query must not hold a connection forever (statement_timeout: make_engine sets each
# engine's budget). The knowledge base's working set lives in memory (or on SSD),
# where a random page costs about what a sequential one does: with the default
# random_page_cost (4, for spinning disks) the planner scans the small actors table
# once per claim of a page instead of using its key (10 ms instead of 6 for a page of
# 50 events with their claims).
SESSION_SETTINGS = {
    "application_name": "conflictkb",
    "max_parallel_workers_per_gather": "0",
    "random_page_cost": "1.1",
    # Stats group in memory: at PostgreSQL's 4 MB the 16,000 groups of a chart of all
    # air strikes by province and month spilled to disk in five batches.
    "work_mem": "32MB",
}


# What a statement may take: commands, imports and migrations get the long budget;
# the API's engine gives its reads the read budget (CONFLICTKB_READ_STATEMENT_TIMEOUT)
# and writes and exports the long one (allow_long_statements).
STATEMENT_TIMEOUT_SECONDS = 30.0
_LONG_TIMEOUT = "conflictkb.long_statement_timeout"  # in each connection's info: ms


def make_engine(database_url: str, pool_size: int = 10, *, statement_timeout: float = STATEMENT_TIMEOUT_SECONDS,
                long_statement_timeout: float = STATEMENT_TIMEOUT_SECONDS) -> AsyncEngine:
    """`statement_timeout` (seconds): every statement's budget; `long_statement_timeout`:
    a transaction's that calls allow_long_statements. Past it, PostgreSQL cancels the
    statement: asyncpg's QueryCanceledError (sqlstate 57014), which SQLAlchemy raises
    as a DBAPIError whose `orig.sqlstate` is "57014" (is_statement_timeout)."""
    long_ms = str(round(long_statement_timeout * 1000))
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # Reads run at READ COMMITTED in autocommit-free transactions that the
        # request scope opens and closes; statement timeouts keep a bad query from
        # holding a connection forever.
        connect_args={"server_settings": {**SESSION_SETTINGS,
                                          "statement_timeout": str(round(statement_timeout * 1000))}},
        # JSON trees come back from PostgreSQL as text: orjson parses them several
        # times faster than the standard library.
        json_deserializer=orjson.loads,
    )
    # An INSERT of many rows (`execute(insert(t), rows)`) goes as multi-row INSERTs of up
    # to 1,000 rows, as psycopg2's dialect does, not as asyncpg's one statement per row:
    # each statement fires the tables' statement triggers (history, generation, rollup)
    # once, and per row that cost ~130 us a row.
    engine.sync_engine.dialect.use_insertmanyvalues_wo_returning = True

    @event.listens_for(engine.sync_engine, "connect")
    def _long_budget(dbapi_connection, record) -> None:
        record.info[_LONG_TIMEOUT] = long_ms

    _ping_when_idle(engine)
    return engine


# A pooled connection idle for longer than this is pinged before use (one left over from
# before a database restart is replaced, not handed to a request). One in steady use is
# not: SQLAlchemy's pool_pre_ping pings at every checkout, and its asyncpg ping is three
# round trips (BEGIN, an empty statement, ROLLBACK), a third of what a small GraphQL read
# cost. A connection that breaks between uses anyway fails its request as any database
# error does (503), and the pool then replaces every connection older than the failure.
PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "conflictkb.idle_since"  # in each pooled connection's info: when it came back


def _ping_when_idle(engine: AsyncEngine) -> None:
    # (on the engine, not its pool: dispose() replaces the pool)
    @event.listens_for(engine.sync_engine, "checkin")
    def _idle_from(dbapi_connection, record) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, proxy) -> None:
        # (one the server closed, as a stopped replica's or a restarted database's, asyncpg
        # knows to be closed without asking: replaced at no cost, however recently used)
        if dbapi_connection._connection.is_closed():
            raise DisconnectionError("a pooled connection was closed by the server")
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # the pool drops this connection and checks out another (or connects anew)
            raise DisconnectionError(f"a pooled connection failed its ping: {exc!r}") from exc



# The engines whose connections /metrics counts (the app's; a test process makes many).
_watched_engines: weakref.WeakSet = weakref.WeakSet()


def watch_pool(engine: AsyncEngine) -> None:
    """Count the engine's connections in use in /metrics (db/metrics.py). The figure is the
    pools' own count, read at each checkout and checkin, not a tally of those events: over
    the test suite's runs (connections dropped by a stopped server, engines disposed) a
    tally saw thousands more checkins than checkouts and went below zero."""
    from db.metrics import DB_CONNECTIONS_IN_USE

    _watched_engines.add(engine.sync_engine)

    def in_use(returning: int) -> None:
        # (during a checkin the pool still counts the connection coming back)
        DB_CONNECTIONS_IN_USE.set(sum(watched.pool.checkedout() for watched in _watched_engines) - returning)

    # on the engine, not its pool: dispose() replaces the pool, and the events stay on the engine
    event.listen(engine.sync_engine, "checkout", lambda dbapi_connection, record, proxy: in_use(0))
    event.listen(engine.sync_engine, "checkin", lambda dbapi_connection, record: in_use(1))


def long_statement_timeout_setting(conn: AsyncConnection) -> str:
    """The long budget of the connection's engine, in ms (for set_config)."""
    return conn.info.get(_LONG_TIMEOUT, str(round(STATEMENT_TIMEOUT_SECONDS * 1000)))


async def allow_long_statements(conn: AsyncConnection) -> None:
    """The rest of the connection's transaction (begun here if none is open) has the
    long statement budget: writes and exports, which a read's budget would cut short."""
    await conn.execute(text("SELECT set_config('statement_timeout', :ms, true)"),
                       {"ms": long_statement_timeout_setting(conn)})


async def copy_rows(conn: AsyncConnection, table: str, columns: Sequence[str], rows: Iterable[dict]) -> None:
    """COPY `rows` (dicts holding at least `columns`) into `table`: the bulk loads' way in."""
    raw = (await conn.get_raw_connection()).driver_connection
    await raw.copy_records_to_table(table, records=[tuple(r[c] for c in columns) for r in rows], columns=list(columns))


async def insert_new_rows(conn: AsyncConnection, table: str, columns: Sequence[str], rows: Iterable[dict]) -> None:
    """Insert `rows` into `table` in one statement, skipping those a unique key already
    has: COPYed into a session table first, so the table's statement triggers (history,
    lineage) run once for all of them, where an executemany ran them once a row."""
    staging = f"new_rows_{table}"
    await conn.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {staging} AS "
                            f"SELECT {', '.join(columns)} FROM {table} WITH NO DATA"))
    await conn.execute(text(f"TRUNCATE {staging}"))
    await copy_rows(conn, staging, columns, rows)
    await conn.execute(text(f"INSERT INTO {table} ({', '.join(columns)}) "
                            f"SELECT {', '.join(columns)} FROM {staging} ON CONFLICT DO NOTHING"))


async def ping(engine: AsyncEngine) -> None:
    """Raise unless PostgreSQL answers a query."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def is_unstorable_text(exc: DBAPIError) -> bool:
    """PostgreSQL refused a text value it cannot hold (a NUL character): bad input."""
    return getattr(exc.orig, "sqlstate", None) == "22021"  # character_not_in_repertoire


# The types a failure to reach or use PostgreSQL can take: from the socket (refused, reset,
# a Unix socket gone while the server restarts), from asyncpg (the app's own pools, db/cache.py),
# and from SQLAlchemy wrapping either (DBAPIError, its pool's TimeoutError). Which of them mean
# "unavailable" is is_database_unavailable's to say.
DATABASE_ERRORS = (OSError, asyncio.TimeoutError, DBAPIError, PoolTimeoutError, asyncpg.PostgresError,
                   asyncpg.InterfaceError, asyncpg.InternalClientError)

# Seconds a client is asked to wait (Retry-After) when PostgreSQL cannot answer.
DATABASE_RETRY_AFTER_SECONDS = 5

# SQLSTATEs of a PostgreSQL that cannot answer now and may soon: class 08 (connection
# exception), class 53 (insufficient resources: too many connections, out of memory or disk),
# 57P01 admin shutdown ("the database system is shutting down"), 57P02 crash shutdown,
# 57P03 cannot connect now ("starting up", "not yet accepting connections", a standby in
# recovery), 57014 query canceled (a statement timeout: the request's time budget is spent);
# 40P01 deadlock detected and 40001 serialization failure (the transaction lost a race with
# another, rolled back whole: a write deleting a record an import's batch in flight refers
# to, db/imports/run.py; run again, it goes through).
_UNAVAILABLE_CLASSES = ("08", "53")
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "57P05", "57014", "40P01", "40001"})


def is_database_unavailable(exc: BaseException) -> bool:
    """PostgreSQL could not answer (stopped, starting, failing over, a connection closed
    mid-query, no pooled connection free in time, a statement over its timeout, a
    transaction rolled back for a deadlock): an answer a
    client may retry shortly, a 503 with Retry-After in REST and SERVICE_UNAVAILABLE in
    GraphQL, never a 500. The one place that decides it (REST's handlers, the middlewares,
    GraphQL's error codes all ask here)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True  # SQLAlchemy's dialect saw the connection closed under the query
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:  # exc, SQLAlchemy's .orig, asyncpg's cause
        seen.add(id(error))
        if isinstance(error, (OSError, asyncio.TimeoutError, PoolTimeoutError, asyncpg.PostgresConnectionError)):
            return True  # refused, reset, no socket (a restart), no pooled connection in time
        if isinstance(error, asyncpg.InterfaceError) and "connection" in str(error) and "closed" in str(error):
            return True  # "connection is closed", "the underlying connection is closed"
        if isinstance(error, asyncpg.InternalClientError) and "another operation" in str(error):
            # a connection a restart broke in the middle of a statement, which asyncpg has
            # not yet seen closed (seen once or twice in ten runs of the restart test)
            return True
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and (sqlstate[:2] in _UNAVAILABLE_CLASSES or sqlstate in _UNAVAILABLE_STATES):
            return True
        error = getattr(error, "orig", None) or error.__cause__
    return False


def is_statement_timeout(exc: DBAPIError) -> bool:
    """PostgreSQL cancelled a statement that ran past its budget (statement_timeout)."""
    return getattr(exc.orig, "sqlstate", None) == "57014"  # query_canceled
