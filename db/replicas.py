"""Reads on streaming replicas, with read-your-writes.

Writes, and the reads inside a write, go to the primary. Other reads go to a replica
that is up and not lagging past a bound, or to the primary when none is. A write's
answer carries a consistency token: the primary's WAL position after its commit. A read
that sends the token back is answered by a replica that has replayed past it, or else by
the primary, so a client always sees its own writes.

Each server keeps its own data generation reader: an answer is cached under the
generation of the server that computed it (a replica's generation is that of the data it
has replayed), so an older answer is never stored under a newer generation.

A watcher reads the primary's WAL position and each replica's replay position every
POLL_SECONDS. A replica's lag is how long ago the primary was where the replica is now;
one that is down, or lags more than the bound, gets no reads until it is back within it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.cache import GenerationReader

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
CHECK_TIMEOUT_SECONDS = 2.0
TOKEN_HEADER = "X-Consistency-Token"
_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


class BadToken(ValueError):
    """A consistency token that is not one this API gives."""


def parse_token(token: str) -> int:
    """The WAL position a consistency token names (PostgreSQL's `X/Y` form of an LSN)."""
    match = _LSN.match(token.strip())
    if match is None:
        raise BadToken(f"{TOKEN_HEADER} must be a token a write's answer gave (like '0/3A1B2C8'), "
                       f"not {token[:40]!r}")
    return (int(match.group(1), 16) << 32) + int(match.group(2), 16)


def format_token(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


@dataclass(eq=False)
class ReadServer:
    """A server reads can go to: the primary, or a replica with what the watcher saw."""
    name: str
    engine: AsyncEngine
    read_generation: GenerationReader
    is_replica: bool = False
    up: bool = True
    replayed: int | None = None  # a replica's replay position at the last check
    lag_seconds: float | None = None
    error: str | None = None
    checked_at: float | None = None


@dataclass
class _Request:
    """One request's routing: the position its token asks for, the server it reads on
    (chosen at its first read), and the position after its own last commit."""
    routing: ReadRouting
    wants: int | None = None
    server: ReadServer | None = None
    written: int | None = None


_current: ContextVar[_Request | None] = ContextVar("read_routing_request", default=None)


class ReadRouting:
    def __init__(self, primary: AsyncEngine, primary_generation: GenerationReader,
                 replicas: list[tuple[str, AsyncEngine]], *, max_lag_seconds: float,
                 poll_seconds: float = POLL_SECONDS):
        self.primary = ReadServer("primary", primary, primary_generation)
        self.replicas = [ReadServer(name, engine, GenerationReader(engine.url.render_as_string(hide_password=False)),
                                    is_replica=True, up=False)
                         for name, engine in replicas]
        self.max_lag_seconds = max_lag_seconds
        self.poll_seconds = poll_seconds
        self._turn = itertools.count()
        # (when, the primary's WAL position then): how long ago the primary was where a
        # replica is now, for its lag
        self._primary_positions: deque[tuple[float, int]] = deque()
        self._checkers: dict[str, asyncpg.Connection] = {}
        self._watcher: asyncio.Task | None = None

    # --- the watcher ------------------------------------------------------------------

    async def start(self) -> None:
        """Check every replica once (so the first requests can use them), then keep watching."""
        if self.replicas:
            await self.check()
            self._watcher = asyncio.create_task(self._watch())

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        for conn in self._checkers.values():
            conn.terminate()
        for replica in self.replicas:
            await replica.read_generation.close()
            await replica.engine.dispose()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.check()
            except Exception:  # noqa: BLE001 - a watcher that dies would route on stale figures forever
                log.exception("replicas: check failed")

    async def _position(self, server: ReadServer, sql: str) -> int | None:
        conn = self._checkers.get(server.name)
        if conn is None or conn.is_closed():
            dsn = make_url(server.engine.url).set(drivername="postgresql").render_as_string(hide_password=False)
            conn = self._checkers[server.name] = await asyncpg.connect(
                dsn, timeout=CHECK_TIMEOUT_SECONDS, server_settings={"application_name": "conflictkb-replica-watch"})
        value = await conn.fetchval(sql, timeout=CHECK_TIMEOUT_SECONDS)
        return None if value is None else parse_token(value)

    async def check(self) -> None:
        """Read the primary's position and each replica's, and mark each replica up (and
        its lag) or down."""
        now = time.monotonic()
        try:
            primary_at = await self._position(self.primary, "SELECT pg_current_wal_lsn()::text")
        except Exception as exc:  # noqa: BLE001 - without the primary, lags are unknown: keep the last
            log.warning("replicas: the primary's WAL position is unknown (%r)", exc)
            primary_at = None
        if primary_at is not None:
            self._primary_positions.append((now, primary_at))
        horizon = now - max(self.max_lag_seconds * 2, 10 * self.poll_seconds)
        while len(self._primary_positions) > 1 and self._primary_positions[0][0] < horizon:
            self._primary_positions.popleft()
        await asyncio.gather(*(self._check_replica(replica, now) for replica in self.replicas))

    async def _check_replica(self, replica: ReadServer, now: float) -> None:
        was_usable = self._usable(replica)
        try:
            replica.replayed = await self._position(
                replica, "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END")
        except Exception as exc:  # noqa: BLE001 - down, or not answering in time: no reads until it is back
            replica.up, replica.error = False, f"{type(exc).__name__}: {exc}"
            stale = self._checkers.pop(replica.name, None)
            if stale is not None:
                stale.terminate()
        else:
            if replica.replayed is None:
                replica.up, replica.error = False, "not in recovery: a primary, not a replica"
            else:
                replica.up, replica.error = True, None
                replica.lag_seconds = self._lag(replica.replayed, now)
        replica.checked_at = now
        if self._usable(replica) and not was_usable:
            log.info("replicas: %s takes reads", replica.name)
        elif was_usable and not self._usable(replica):
            log.warning("replicas: %s gets no reads (%s)", replica.name,
                        replica.error or f"{replica.lag_seconds:.1f} s behind")

    def _lag(self, replayed: int, now: float) -> float:
        """How long ago the primary was at `replayed` (0 when it has moved on since only
        within the last check)."""
        oldest_ahead = next((when for when, position in self._primary_positions if position > replayed), None)
        return 0.0 if oldest_ahead is None else max(0.0, now - oldest_ahead - self.poll_seconds)

    def _usable(self, replica: ReadServer) -> bool:
        return replica.up and replica.lag_seconds is not None and replica.lag_seconds <= self.max_lag_seconds

    # --- choosing ----------------------------------------------------------------------

    def choose(self, wants: int | None) -> ReadServer:
        """A replica up, within the lag bound and (for a token) replayed past `wants`, in
        turn; else the primary."""
        usable = [replica for replica in self.replicas if self._usable(replica)
                  and (wants is None or (replica.replayed is not None and replica.replayed >= wants))]
        if not usable:
            return self.primary
        return usable[next(self._turn) % len(usable)]

    def fall_back(self, server: ReadServer, error: BaseException) -> ReadServer:
        """After `server` (a replica) failed a request's first use: no reads on it until
        the watcher sees it again, and the request reads on the primary."""
        if server.is_replica and server.up:
            server.up, server.error = False, f"{type(error).__name__}: {error}"
            log.warning("replicas: %s gets no reads (%s)", server.name, server.error)
        return self.primary

    def status(self) -> list[dict]:
        """Each replica as /readyz reports it (why one is down is logged, not answered)."""
        return [{"name": replica.name, "up": replica.up, "takes_reads": self._usable(replica),
                 "lag_seconds": None if replica.lag_seconds is None else round(replica.lag_seconds, 3),
                 "replayed": None if replica.replayed is None else format_token(replica.replayed)}
                for replica in self.replicas]

    @contextmanager
    def request(self, token: str | None) -> Iterator[_Request]:
        """The routing of one request (raises BadToken for a token that is not one)."""
        routed = _Request(self, parse_token(token) if token else None)
        reset = _current.set(routed)
        try:
            yield routed
        finally:
            _current.reset(reset)


def current_request() -> _Request | None:
    return _current.get()


def wants_position(token: str) -> None:
    """A token given inside the request (GraphQL's `extensions.consistencyToken`), before
    its first read; raises BadToken."""
    routed = _current.get()
    if routed is not None and routed.server is None:
        position = parse_token(token)
        routed.wants = position if routed.wants is None else max(routed.wants, position)


def read_server() -> ReadServer | None:
    """The server the current request reads on (chosen now if it has not read yet); None
    outside a routed request."""
    routed = _current.get()
    if routed is None:
        return None
    if routed.server is None:
        routed.server = routed.routing.choose(routed.wants)
    return routed.server


def read_on_primary() -> None:
    """The current request reads on the primary from now on (it writes, or its replica failed)."""
    routed = _current.get()
    if routed is not None:
        routed.server = routed.routing.primary


async def read_generation(fallback: GenerationReader) -> str:
    """The data generation of the server the current request reads on (the primary's
    outside a routed request); a replica that fails it is left for the primary."""
    server = read_server()
    if server is None or not server.is_replica:
        return await (server.read_generation if server else fallback)()
    try:
        return await server.read_generation()
    except Exception as exc:  # noqa: BLE001 - the replica is down: the primary answers
        return await leave_replica(server, exc).read_generation()


def leave_replica(server: ReadServer, error: BaseException) -> ReadServer:
    """The current request's replica failed its first use: it reads on the primary, and
    the replica gets no reads until the watcher sees it again."""
    routed = _current.get()
    routed.server = routed.routing.fall_back(server, error)
    return routed.server


class RoutedGenerationReader:
    """What the answer cache and the GraphQL planner read generations with: the current
    request's server's reader (its `last_seen` too: a guess is per server)."""

    def __init__(self, primary: GenerationReader):
        self._primary = primary

    async def __call__(self) -> str:
        return await read_generation(self._primary)

    @property
    def last_seen(self) -> str | None:
        server = read_server()
        return (server.read_generation if server else self._primary).last_seen

    @last_seen.setter
    def last_seen(self, generation: str | None) -> None:
        server = read_server()
        (server.read_generation if server else self._primary).last_seen = generation

    async def close(self) -> None:
        await self._primary.close()


async def note_commit(conn: AsyncConnection) -> None:
    """After a write committed on `conn` (the primary): the WAL position its answer's
    consistency token names (at or past its commit)."""
    routed = _current.get()
    if routed is None:
        return
    position = parse_token(await conn.scalar(text("SELECT pg_current_wal_lsn()::text")))
    routed.written = position if routed.written is None else max(routed.written, position)
    # (the request's later reads see its write)
    routed.wants = routed.written if routed.wants is None else max(routed.wants, routed.written)
    routed.server = routed.routing.primary
