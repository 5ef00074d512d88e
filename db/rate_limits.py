"""Rate-limit counters, shared by every worker through Redis, with an in-process stand-in.

Fixed windows: a bucket (an API key, or a client address) spends units in a window that
starts with its first request and lasts `window` seconds; then it is full again. A
charge the bucket cannot cover is refused whole and spends nothing (a client refused an
expensive request can still make cheap ones). Each charge is one Lua script, so one
round trip: what the bucket has spent and when its window ends, read and written
atomically however many workers charge it at once.

Failed authentications are counted per address: each is charged to the address even
past its quota, and `lockout_after` of them within a window lock the address out for
`lockout_seconds`.

Redis trouble (an error, or slower than the client's socket timeout) is logged and the
counting goes on in this process (InProcessCounters, the same rules) until Redis is tried
again `retry_after` seconds later, as the answer cache fails open (db/cache.py): a
limiter that cannot reach Redis still limits, per process.

Transport-neutral: api/ratelimit.py decides who pays and turns refusals into 429s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY_PREFIX = "conflictkb:ratelimit"


@dataclass(frozen=True)
class Policy:
    """A quota: `quota` units per `window` seconds, named (in the RateLimit headers) `name`."""

    name: str
    quota: int
    window: int


@dataclass(frozen=True)
class Usage:
    """A bucket after a charge: whether it was covered, what is left and in how many
    seconds the window ends (or, `locked`, the address's lockout)."""

    allowed: bool
    remaining: int
    reset: float
    locked: bool = False

    @property
    def reset_seconds(self) -> int:
        """`reset` as the whole seconds of the headers (at least 1: 0 would mean now)."""
        return max(1, math.ceil(self.reset))


_REFUSED = 0

# KEYS: the bucket. ARGV: units, quota, window in ms, '1' to charge even past the
# quota. Returns {1 or 0 (refused), spent, ms left in the window}.
_CHARGE_LUA = """
local units, quota = tonumber(ARGV[1]), tonumber(ARGV[2])
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then spent = 0; ttl = tonumber(ARGV[3]) end
if spent + units > quota and ARGV[4] ~= '1' then return {0, spent, ttl} end
spent = spent + units
redis.call('SET', KEYS[1], spent, 'PX', ttl)
if spent > quota then return {0, spent, ttl} end
return {1, spent, ttl}
"""

# A failed authentication. KEYS: the failures of the address, its lockout. ARGV:
# failures that lock it out, the lockout in ms, the window in ms. Returns the lockout's
# ms (0: not locked out).
_FAIL_LUA = """
local failures = redis.call('INCR', KEYS[1])
if failures == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if failures < tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return tonumber(ARGV[2])
"""


def _usage(result: list[int], quota: int) -> Usage:
    outcome, spent, ms = result
    return Usage(outcome != _REFUSED, max(0, quota - spent), ms / 1000)


class RedisCounters:
    def __init__(self, redis: Redis):
        self._redis = redis
        self._charge = redis.register_script(_CHARGE_LUA)
        self._fail = redis.register_script(_FAIL_LUA)

    async def charge(self, bucket: str, units: int, policy: Policy, force: bool) -> Usage:
        result = await self._charge(keys=[bucket],
                                    args=[units, policy.quota, policy.window * 1000, "1" if force else "0"])
        return _usage(result, policy.quota)

    async def locked_for(self, lockout: str) -> float:
        return max(0, await self._redis.pttl(lockout)) / 1000

    async def fail(self, failures: str, lockout: str, window: int, lockout_after: int, lockout_seconds: int) -> float:
        return await self._fail(keys=[failures, lockout], args=[lockout_after, lockout_seconds * 1000, window * 1000]) / 1000


class InProcessCounters:
    """RedisCounters' rules in this process's memory, while Redis is unavailable."""

    # Ended windows are dropped once this many buckets are held (a sweep per that many
    # new buckets), so a stream of new addresses cannot grow memory without bound.
    SWEEP_AT = 10_000

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}  # key: (count, when it ends)

    def _get(self, key: str, now: float) -> tuple[int, float] | None:
        found = self._counts.get(key)
        return found if found is not None and found[1] > now else None

    def _set(self, key: str, count: int, ends: float, now: float) -> None:
        if len(self._counts) >= self.SWEEP_AT and key not in self._counts:
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        self._counts[key] = (count, ends)

    async def charge(self, bucket: str, units: int, policy: Policy, force: bool) -> Usage:
        now = time.monotonic()
        spent, ends = self._get(bucket, now) or (0, now + policy.window)
        if spent + units > policy.quota and not force:
            return Usage(False, max(0, policy.quota - spent), ends - now)
        spent += units
        self._set(bucket, spent, ends, now)
        return Usage(spent <= policy.quota, max(0, policy.quota - spent), ends - now)

    async def locked_for(self, lockout: str) -> float:
        now = time.monotonic()
        locked = self._get(lockout, now)
        return locked[1] - now if locked is not None else 0.0

    async def fail(self, failures: str, lockout: str, window: int, lockout_after: int, lockout_seconds: int) -> float:
        now = time.monotonic()
        count, ends = self._get(failures, now) or (0, now + window)
        if count + 1 < lockout_after:
            self._set(failures, count + 1, ends, now)
            return 0.0
        self._counts.pop(failures, None)
        self._set(lockout, 1, now + lockout_seconds, now)
        return float(lockout_seconds)


REDIS_TROUBLE = (RedisError, OSError, asyncio.TimeoutError)


class RateLimiter:
    """Charges buckets in Redis, or in this process while Redis is unavailable.

    Buckets are named by who pays: `key:<id>` for an API key, `address:<ip>` for a client
    address (api/ratelimit.py chooses)."""

    def __init__(self, redis: Redis, *, retry_after: float = 2.0):
        self._redis = RedisCounters(redis)
        self.in_process = InProcessCounters()
        self._retry_after = retry_after
        self._skip_redis_until = 0.0
        self.redis_failures = 0  # since start: how often Redis failed and this process counted alone

    @property
    def redis_available(self) -> bool:
        return time.monotonic() >= self._skip_redis_until

    async def _run(self, doing: str, method: str, *args):
        if self.redis_available:
            try:
                result = await getattr(self._redis, method)(*args)
            except REDIS_TROUBLE as exc:
                self.redis_failures += 1
                if self.redis_available:  # once, not once per request that was waiting on it
                    log.warning("rate limits: Redis unavailable while %s (%s: %s); counting in this process, "
                                "retrying Redis in %.0f s", doing, type(exc).__name__, exc, self._retry_after)
                self._skip_redis_until = time.monotonic() + self._retry_after
            else:
                if self._skip_redis_until:
                    log.warning("rate limits: Redis is back; counting there again")
                    self._skip_redis_until = 0.0
                return result
        return await getattr(self.in_process, method)(*args)

    async def charge(self, bucket: str, units: int, policy: Policy, *, force: bool = False) -> Usage:
        """Charge `bucket` `units` under `policy`. Not covered (Usage.allowed False):
        nothing is spent, unless `force`."""
        return await self._run("charging", "charge", f"{KEY_PREFIX}:{bucket}", units, policy, force)

    async def locked_for(self, address: str) -> float:
        """Seconds the address is still locked out for (0: it is not)."""
        return await self._run("reading a lockout", "locked_for", _lockout(address))

    async def fail(self, address: str, policy: Policy, units: int, *, lockout_after: int,
                   lockout_seconds: int) -> Usage:
        """A failed authentication from `address`: counted towards its lockout, and
        `units` charged to it (past its quota if need be)."""
        locked = await self._run("counting a failed authentication", "fail", f"{KEY_PREFIX}:failures:{address}",
                                 _lockout(address), policy.window, lockout_after, lockout_seconds)
        if locked:
            return Usage(False, 0, locked, locked=True)
        return await self.charge(f"address:{address}", units, policy, force=True)


def _lockout(address: str) -> str:
    return f"{KEY_PREFIX}:lockout:{address}"
