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
from contextlib import contextmanager
from contextvars import ContextVar
from collections.abc import Awaitable, Callable, Iterator
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

from db.metrics import ANSWER_CACHE

log = logging.getLogger(__name__)

KEY_PREFIX = "conflictkb:v1"
# A backstop: keys of old generations are never read again, this frees them.
TTL_SECONDS = 24 * 3600


# Which server (its start time: a copy of the database restored elsewhere, or the
# same after a restart, is another), which database (its oid, and the epoch of its
# generation counter) and how many writing transactions it has seen.
_GENERATION_SQL = """
    SELECT extract(epoch FROM pg_postmaster_start_time()) || '.'
           || (SELECT oid FROM pg_database WHERE datname = current_database()) || '.' || epoch || '.' || generation
      FROM data_generation"""


async def current_generation(conn: AsyncConnection) -> str:
    """This database's data generation, as a key part (see _GENERATION_SQL)."""
    return await conn.scalar(text(_GENERATION_SQL))


async def _leave_as_is(connection: asyncpg.Connection) -> None:
    """A generation reader's connection runs one read and nothing else: there is no
    session state to reset when it goes back to its pool (asyncpg's default reset is a
    round trip per read: advisory locks, cursors, listeners and settings)."""


class GenerationReader:
    """current_generation on a small pool of its own (asyncpg, no ORM layer): a cached
    answer costs this one query and one Redis read, no more."""

    def __init__(self, database_url: str, size: int = 4):
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._size = size
        self._pool: asyncpg.Pool | None = None
        self._creating = asyncio.Lock()  # the first requests arrive together: one pool
        # The generation this process saw last (read here, or reported by a statement
        # that read it: see with_generation): what a request may guess (see guessing).
        self.last_seen: str | None = None

    async def __call__(self) -> str:
        if self._pool is None:
            async with self._creating:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=1, max_size=self._size, reset=_leave_as_is,
                        # (no timer set at every release to close idle connections)
                        max_inactive_connection_lifetime=0,
                        server_settings={"application_name": "conflictkb-generation"})
        self.last_seen = await self._pool.fetchval(_GENERATION_SQL)
        return self.last_seen

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


def statement_key(kind: str, stmt: Select) -> str:
    """A canonical key for a statement's answer: its SQL and parameter values."""
    compiled = stmt.compile(dialect=postgresql.dialect())
    params = sorted((name, repr(value)) for name, value in compiled.params.items())
    return kind + ":" + hashlib.sha256(orjson.dumps([str(compiled), params])).hexdigest()[:32]


# Set for a request that asked for fresh answers (HTTP `Cache-Control: no-cache`):
# every answer it needs is computed again (and stored for the next reader).
_fresh_answers: ContextVar[bool] = ContextVar("_fresh_answers", default=False)
# The generation a request's answers are keyed by, read once when the request starts
# (api/answer_cache.py), so the totals and stats under it do not read it again.
_request_generation: ContextVar[str | None] = ContextVar("request_generation", default=None)


def request_generation() -> str | None:
    """The generation the current request's answers are keyed by, if it has one."""
    return _request_generation.get()


@contextmanager
def answering_request(generation: str, fresh: bool) -> Iterator[None]:
    """The generation and freshness of one request's answers, for the code under it
    (and reset after: a task may serve several requests, as an in-process client does)."""
    generation_token = _request_generation.set(generation)
    fresh_token = _fresh_answers.set(fresh)
    try:
        yield
    finally:
        _fresh_answers.reset(fresh_token)
        _request_generation.reset(generation_token)


# A request answering on a guess of the generation (the last one seen, see guessing):
# the generations the statements that report theirs (with_generation) ran at.
_reported_generations: ContextVar[list[str] | None] = ContextVar("reported_generations", default=None)


def with_generation(sql: str) -> str:
    """A statement's rows, in its order, each followed by the data generation it ran at
    (in its own snapshot), then a column to drop; no rows gives one row of NULLs and
    the generation. A request that guessed its generation learns so whether the guess
    held without a round trip of its own (see report_generation)."""
    return f"""
WITH answer AS (SELECT a.*, row_number() OVER () AS answer_position FROM ({sql}) AS a)
SELECT answer.*, current.generation
  FROM ({_GENERATION_SQL}) AS current(generation) LEFT JOIN answer ON true
 ORDER BY answer.answer_position"""


def generation_reports_wanted() -> bool:
    """Whether the current request answers on a guess its statements should check."""
    return _reported_generations.get() is not None


def report_generation(rows: list[tuple]) -> list[tuple]:
    """The rows of a with_generation statement, after noting its generation for the
    request that guessed (the last two columns dropped; the empty answer's row too)."""
    reported = _reported_generations.get()
    if reported is not None:
        reported.append(rows[0][-1])
    return [row[:-2] for row in rows if row[0] is not None]


@contextmanager
def guessing(generation: str, fresh: bool) -> Iterator[list[str]]:
    """answering_request on a guess of the generation (the last one this process saw),
    instead of a round trip to read it before the request's own. Yields the
    generations that the request's statements reported (with_generation): the answer
    stands when they all equal the guess, or, if none reported, when the generation
    read after the answer still equals it (generations only move forward, so nothing
    was written between the guess and that read). Otherwise the caller answers again,
    at the generation reported or read. What the guess made meanwhile (a name resolved,
    a total stored under its key) belongs to a generation no request will read again."""
    reported: list[str] = []
    token = _reported_generations.set(reported)
    try:
        with answering_request(generation, fresh):
            yield reported
    finally:
        _reported_generations.reset(token)


@dataclass(frozen=True)
class CachedAnswer:
    value: Any
    status: str  # "hit", "miss" (computed here or by a concurrent identical request), "bypass" (no Redis)


# How long a request that found no answer and another request computing it waits for
# that answer before computing it itself (the other may have died).
SINGLE_FLIGHT_WAIT_SECONDS = 10.0
SINGLE_FLIGHT_POLL_SECONDS = 0.005
# The answer, the lock taken (compute it), or another's lock (wait for its answer):
# one round trip, and no answer stored between a lookup and a lock is computed again.
_GET_OR_LOCK = """
local answer = redis.call('GET', KEYS[1])
if answer then return {1, answer} end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return {2} end
return {3}
"""
_FOUND, _LOCKED = 1, 2
# What an in-process waiter gets when the request computing its answer was cancelled.
_LEADER_CANCELLED = object()

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

    def __init__(self, redis: Redis, read_generation: Callable[[], Awaitable[str]] | None = None, *,
                 retry_after: float = RETRY_REDIS_AFTER_SECONDS):
        """`read_generation` (a GenerationReader) is what `answer` keys by; `answer_at`
        takes keys that already name their generation."""
        self._redis = redis
        self.read_generation = read_generation
        self._retry_after = retry_after
        self._skip_redis_until = 0.0
        self._in_flight: dict[str, asyncio.Future] = {}
        self._get_or_lock = redis.register_script(_GET_OR_LOCK)
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

    async def get_or_compute(self, key: str, compute: Callable[[], Awaitable]):
        """The answer's value alone (see `answer`)."""
        return (await self.answer(key, compute)).value

    async def answer(self, key: str, compute: Callable[[], Awaitable], *,
                     encode: Callable[[Any], bytes] = orjson.dumps, decode: Callable[[bytes], Any] = orjson.loads
                     ) -> CachedAnswer:
        """The answer under `key` at the current data generation (the request's, if
        answering_request gave one), computed (and stored) on a miss; values are JSON
        unless another codec is given."""
        generation = _request_generation.get() or await self.read_generation()
        return await self.answer_at(f"{KEY_PREFIX}:{generation}:{key}", compute, encode=encode, decode=decode)

    async def answer_at(self, full_key: str, compute: Callable[[], Awaitable], *,
                        encode: Callable[[Any], bytes | None], decode: Callable[[bytes], Any]) -> CachedAnswer:
        """`answer` for a key that already names the generation, with the codec of its
        values (`encode` giving None: not stored)."""
        fresh = _fresh_answers.get()
        if not fresh:
            if full_key in self._storing:
                ANSWER_CACHE.labels("hit").inc()
                return CachedAnswer(self._storing[full_key], "hit")
            running = self._in_flight.get(full_key)
            if running is not None:  # the same answer is being found or computed in this process
                ANSWER_CACHE.labels("wait").inc()
                result = await asyncio.shield(running)
                if result is not _LEADER_CANCELLED:
                    return CachedAnswer(result.value, result.status)
        if not self.redis_available:
            ANSWER_CACHE.labels("bypass").inc()
            return CachedAnswer(await compute(), "bypass")
        if fresh:  # asked afresh: computed here, whoever else is computing it, and stored again
            ANSWER_CACHE.labels("miss").inc()
            value = await compute()
            self._store_in_background(full_key, None, value, encode)
            return CachedAnswer(value, "miss")
        future = self._in_flight[full_key] = asyncio.get_running_loop().create_future()
        try:
            answer = await self._find_or_compute(full_key, compute, encode, decode)
        except asyncio.CancelledError:
            future.set_result(_LEADER_CANCELLED)  # the others go on by themselves
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(answer)
        finally:
            if self._in_flight.get(full_key) is future:
                del self._in_flight[full_key]
        return answer

    async def _find_or_compute(self, full_key: str, compute: Callable[[], Awaitable],
                               encode: Callable[[Any], bytes | None], decode: Callable[[bytes], Any]
                               ) -> CachedAnswer:
        """The stored answer, or the one another process is computing (it holds the key's
        lock), or computed here under the lock."""
        lock_key = full_key + ":computing"
        try:
            # one atomic step: an answer stored since is found, never computed again
            found = await self._get_or_lock(keys=[full_key, lock_key],
                                            args=[int(SINGLE_FLIGHT_WAIT_SECONDS * 1000)])
            if found[0] == _FOUND:
                self._redis_worked()
                ANSWER_CACHE.labels("hit").inc()
                return CachedAnswer(decode(found[1]), "hit")
            locked = found[0] == _LOCKED
            if not locked:  # another process computes it: wait for its answer
                ANSWER_CACHE.labels("wait").inc()
                deadline = time.monotonic() + SINGLE_FLIGHT_WAIT_SECONDS
                while time.monotonic() < deadline:
                    await asyncio.sleep(SINGLE_FLIGHT_POLL_SECONDS)
                    if full_key in self._storing:
                        return CachedAnswer(self._storing[full_key], "hit")
                    cached, computing = await self._redis.mget(full_key, lock_key)
                    if cached is not None:
                        return CachedAnswer(decode(cached), "hit")
                    if computing is None:
                        break  # the other gave up without an answer
            self._redis_worked()
        except (RedisError, OSError) as exc:
            self._redis_failed(exc, "looking up")
            ANSWER_CACHE.labels("bypass").inc()
            return CachedAnswer(await compute(), "bypass")
        if locked:
            ANSWER_CACHE.labels("miss").inc()  # (a waiter that gave up was counted as waiting)
        try:
            value = await compute()
        except BaseException:
            if locked:
                try:  # others stop waiting and compute (bad input fails for them too)
                    await self._redis.delete(lock_key)
                except (RedisError, OSError) as exc:
                    self._redis_failed(exc, "releasing the single-flight lock")
            raise
        self._store_in_background(full_key, lock_key if locked else None, value, encode)
        return CachedAnswer(value, "miss")

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
