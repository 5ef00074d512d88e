"""Redis cache-aside for computed answers, keyed by the data generation.

Every write moves the data generation in its own transaction (migration 0005), and
a key holds the generation its answer was computed at, so a cached answer is never
served after a write has committed: the next reader reads the new generation first
and misses. Old keys are left to their TTL. Redis is an optimisation only: any Redis
error or slowness (the client's socket timeouts are short) is logged and the answer
is computed from PostgreSQL, as if Redis were not there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from contextvars import ContextVar
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import Select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)

KEY_PREFIX = "conflictkb:v1"
# A backstop: keys of old generations are never read again, this frees them.
TTL_SECONDS = 24 * 3600
# Writes that set this in their transaction skip the per-statement bump and call
# bump_generation once at the end (bulk loads: their parallel batches would queue on
# the generation's row lock).
BULK_LOAD_SETTING = "conflictkb.bulk_load"


_GENERATION_SQL = """
    SELECT (SELECT oid FROM pg_database WHERE datname = current_database()) || '.' || epoch || '.' || generation
      FROM data_generation"""


async def current_generation(conn: AsyncConnection) -> str:
    """This database's data generation, as a key part: which database (its oid, and the
    epoch of its generation counter) and how many writing transactions it has seen."""
    return await conn.scalar(text(_GENERATION_SQL))


class GenerationReader:
    """current_generation on a small pool of its own (asyncpg, no ORM layer): a cached
    answer costs this one query and one Redis read, no more."""

    def __init__(self, database_url: str, size: int = 4):
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._size = size
        self._pool: asyncpg.Pool | None = None

    async def __call__(self) -> str:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._size,
                                                   server_settings={"application_name": "conflictkb-generation"})
        return await self._pool.fetchval(_GENERATION_SQL)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


async def bump_generation(conn: AsyncConnection) -> None:
    await conn.execute(text("UPDATE data_generation SET generation = generation + 1"))


async def start_bulk_load(conn: AsyncConnection) -> None:
    """This transaction's writes leave the generation and the monthly rollup alone (see
    BULK_LOAD_SETTING); finish_bulk_load brings both up to date once at the end."""
    await conn.execute(text(f"SET LOCAL {BULK_LOAD_SETTING} = 'on'"))


async def finish_bulk_load(conn: AsyncConnection) -> None:
    """After bulk loads: the monthly rollup rebuilt (migration 0006), the generation moved."""
    await conn.execute(text("SELECT rebuild_event_month_counts()"))
    await bump_generation(conn)


def statement_key(kind: str, stmt: Select) -> str:
    """A canonical key for a statement's answer: its SQL and parameter values."""
    compiled = stmt.compile(dialect=postgresql.dialect())
    params = sorted((name, repr(value)) for name, value in compiled.params.items())
    return kind + ":" + hashlib.sha256(orjson.dumps([str(compiled), params])).hexdigest()[:32]


# Set for a request that asked for fresh answers (HTTP `Cache-Control: no-cache`):
# every answer it needs is computed again (and stored for the next reader).
fresh_answers: ContextVar[bool] = ContextVar("fresh_answers", default=False)


@dataclass(frozen=True)
class CachedAnswer:
    value: Any
    status: str  # "hit", "miss" (computed here or by a concurrent identical request), "bypass" (no Redis)


# How long a request that found no answer and another request computing it waits for
# that answer before computing it itself (the other may have died).
SINGLE_FLIGHT_WAIT_SECONDS = 10.0
SINGLE_FLIGHT_POLL_SECONDS = 0.005
# After a Redis error, requests skip Redis for this long (no request waits on a dead
# or hung Redis more than once in this interval); then one tries again.
RETRY_REDIS_AFTER_SECONDS = 2.0


class AnswerCache:
    """Cache-aside in Redis with single-flight and fail-open.

    Single-flight: identical misses at the same time compute once. Within a process
    they await one computation; across processes the first takes a short Redis lock
    (SET NX) and the others poll for its answer. Fail-open: any Redis error or timeout
    answers from PostgreSQL, is logged once, and Redis is left alone for
    RETRY_REDIS_AFTER_SECONDS; the first request after that tries it again, so caching
    resumes by itself when Redis is back."""

    def __init__(self, redis: Redis, *, retry_after: float = RETRY_REDIS_AFTER_SECONDS):
        self._redis = redis
        self._retry_after = retry_after
        self._skip_redis_until = 0.0
        self._in_flight: dict[str, asyncio.Future] = {}
        self._storing: dict[str, Any] = {}
        self._store_tasks: set[asyncio.Task] = set()

    @property
    def redis_available(self) -> bool:
        """False while Redis is being skipped after an error."""
        return time.monotonic() >= self._skip_redis_until

    def _redis_failed(self, exc: BaseException, doing: str) -> None:
        if self.redis_available:
            log.warning("cache: Redis unavailable while %s (%s: %s); answering from PostgreSQL, retrying in %.0f s",
                        doing, type(exc).__name__, exc, self._retry_after)
        self._skip_redis_until = time.monotonic() + self._retry_after

    def _redis_worked(self) -> None:
        if self._skip_redis_until:
            log.warning("cache: Redis is back; caching resumes")
            self._skip_redis_until = 0.0

    async def get_or_compute(self, conn: AsyncConnection, key: str, compute: Callable[[], Awaitable]):
        """The answer's value alone (see `answer`)."""
        return (await self.answer(conn, key, compute)).value

    async def answer(self, conn: AsyncConnection, key: str, compute: Callable[[], Awaitable], *,
                     encode: Callable[[Any], bytes] = orjson.dumps, decode: Callable[[bytes], Any] = orjson.loads
                     ) -> CachedAnswer:
        """The answer under `key` at the data generation `conn` sees, computed (and stored)
        on a miss; values are JSON unless another codec is given."""
        full_key = f"{KEY_PREFIX}:{await current_generation(conn)}:{key}"
        return await self.answer_at(full_key, compute, encode=encode, decode=decode)

    async def answer_at(self, full_key: str, compute: Callable[[], Awaitable], *,
                        encode: Callable[[Any], bytes | None], decode: Callable[[bytes], Any]) -> CachedAnswer:
        """`answer` for a key that already names the generation, with the codec of its
        values (`encode` giving None: not stored)."""
        fresh = fresh_answers.get()
        if full_key in self._storing and not fresh:
            return CachedAnswer(self._storing[full_key], "hit")
        if not self.redis_available:
            return CachedAnswer(await compute(), "bypass")
        if not fresh:  # (a fresh answer is not read: it is computed and stored again)
            try:
                cached = await self._redis.get(full_key)
            except (RedisError, OSError) as exc:
                self._redis_failed(exc, "reading")
                return CachedAnswer(await compute(), "bypass")
            self._redis_worked()
            if cached is not None:
                return CachedAnswer(decode(cached), "hit")
        running = self._in_flight.get(full_key)
        if running is not None:  # the same answer is being computed in this process
            return CachedAnswer(await asyncio.shield(running), "miss")
        future = self._in_flight[full_key] = asyncio.get_running_loop().create_future()
        try:
            value = await self._compute_once(full_key, compute, encode, decode)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(value)
        finally:
            del self._in_flight[full_key]
        return CachedAnswer(value, "miss")

    async def _compute_once(self, full_key: str, compute: Callable[[], Awaitable],
                            encode: Callable[[Any], bytes | None], decode: Callable[[bytes], Any]) -> Any:
        """Compute and store, unless another process holds the key's lock: then wait for
        its answer (or compute anyway if it does not come)."""
        lock_key = full_key + ":computing"
        if fresh_answers.get():  # asked afresh: computed here, whoever else is computing it
            value = await compute()
            self._store_in_background(full_key, None, value, encode)
            return value
        try:
            leader = await self._redis.set(lock_key, b"1", nx=True, px=int(SINGLE_FLIGHT_WAIT_SECONDS * 1000))
            if not leader:
                deadline = time.monotonic() + SINGLE_FLIGHT_WAIT_SECONDS
                while time.monotonic() < deadline:
                    await asyncio.sleep(SINGLE_FLIGHT_POLL_SECONDS)
                    cached, computing = await self._redis.mget(full_key, lock_key)
                    if cached is not None:
                        return decode(cached)
                    if computing is None:
                        break  # the other gave up without an answer
        except (RedisError, OSError) as exc:
            self._redis_failed(exc, "taking the single-flight lock")
            return await compute()
        try:
            value = await compute()
        except BaseException:
            try:  # others stop waiting and compute (bad input fails for them too)
                await self._redis.delete(lock_key)
            except (RedisError, OSError) as exc:
                self._redis_failed(exc, "releasing the single-flight lock")
            raise
        self._store_in_background(full_key, lock_key, value, encode)
        return value

    def _store_in_background(self, full_key: str, lock_key: str | None, value: Any,
                             encode: Callable[[Any], bytes | None]) -> None:
        """Store (and release the lock, if held) while the answer goes out: a 3 MB answer
        takes Redis ~6 ms. Until then this process answers it from memory."""
        encoded = encode(value)
        if encoded is not None:
            self._storing[full_key] = value
        task = asyncio.create_task(self._store(full_key, lock_key, encoded))
        self._store_tasks.add(task)
        task.add_done_callback(self._store_tasks.discard)

    async def _store(self, full_key: str, lock_key: str | None, encoded: bytes | None) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                if encoded is not None:
                    pipe.set(full_key, encoded, ex=TTL_SECONDS)
                if lock_key is not None:
                    pipe.delete(lock_key)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._redis_failed(exc, "storing")
        finally:
            self._storing.pop(full_key, None)

    async def drain(self) -> None:
        """Wait for the answers still being stored (at shutdown)."""
        if self._store_tasks:
            await asyncio.gather(*self._store_tasks, return_exceptions=True)
