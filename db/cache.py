"""Redis cache-aside for computed answers, keyed by the data generation.

Every write moves the data generation in its own transaction (migration 0005), and
a key holds the generation its answer was computed at, so a cached answer is never
served after a write has committed: the next reader reads the new generation first
and misses. Old keys are left to their TTL. Redis is an optimisation only: any Redis
error or slowness (the client's socket timeouts are short) is logged and the answer
is computed from PostgreSQL, as if Redis were not there.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import Select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)

KEY_PREFIX = "conflictkb:v1"
# A backstop: keys of old generations are never read again, this frees them.
TTL_SECONDS = 24 * 3600
# Writes that set this in their transaction skip the per-statement bump and call
# bump_generation once at the end (bulk loads: their parallel batches would queue on
# the generation's row lock).
BULK_LOAD_SETTING = "conflictkb.bulk_load"


async def current_generation(conn: AsyncConnection) -> str:
    """This database's data generation, as a key part: which database (its oid, and the
    epoch of its generation counter) and how many writing transactions it has seen."""
    return await conn.scalar(text("""
        SELECT (SELECT oid FROM pg_database WHERE datname = current_database()) || '.' || epoch || '.' || generation
          FROM data_generation"""))


async def bump_generation(conn: AsyncConnection) -> None:
    await conn.execute(text("UPDATE data_generation SET generation = generation + 1"))


async def start_bulk_load(conn: AsyncConnection) -> None:
    """This transaction's writes leave the generation alone (see BULK_LOAD_SETTING)."""
    await conn.execute(text(f"SET LOCAL {BULK_LOAD_SETTING} = 'on'"))


def statement_key(kind: str, stmt: Select) -> str:
    """A canonical key for a statement's answer: its SQL and parameter values."""
    compiled = stmt.compile(dialect=postgresql.dialect())
    params = sorted((name, repr(value)) for name, value in compiled.params.items())
    return kind + ":" + hashlib.sha256(orjson.dumps([str(compiled), params])).hexdigest()[:32]


class AnswerCache:
    def __init__(self, redis: Redis):
        self._redis = redis

    async def get_or_compute(self, conn: AsyncConnection, key: str, compute: Callable[[], Awaitable]):
        """The answer under `key` at the current data generation, computed (and stored)
        on a miss. Answers are JSON values."""
        full_key = f"{KEY_PREFIX}:{await current_generation(conn)}:{key}"
        try:
            cached = await self._redis.get(full_key)
        except (RedisError, OSError) as exc:
            log.warning("cache: Redis unavailable (%s), answering from PostgreSQL", exc)
            return await compute()
        if cached is not None:
            return orjson.loads(cached)
        answer = await compute()
        try:
            await self._redis.set(full_key, orjson.dumps(answer), ex=TTL_SECONDS)
        except (RedisError, OSError) as exc:
            log.warning("cache: could not store %s (%s)", key, exc)
        return answer
