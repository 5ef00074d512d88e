"""Request-scoped dependencies, as `Annotated` aliases the routes declare."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.settings import Settings
from db.cache import AnswerCache
from db.engine import is_database_unavailable
from db.replicas import leave_replica, read_server
from db.metrics import DB_CONNECTIONS_WAITING
from db.pagination import CursorCodec


log = logging.getLogger(__name__)


@asynccontextmanager
async def request_connection(engine: AsyncEngine, *, reads: bool = False) -> AsyncIterator[AsyncConnection]:
    """A connection that ends with the request; with `reads`, on the server the request
    reads on (db/replicas.py), `engine` being the primary's. It is closed after the answer has gone: if
    PostgreSQL dropped it meanwhile (stopped, restarted), the ROLLBACK of closing fails, and
    that failure, too late to answer with, is logged rather than raised."""
    with DB_CONNECTIONS_WAITING.track_inprogress():
        conn = await (_read_connect(engine) if reads else engine.connect())
    try:
        yield conn
    finally:
        try:
            await conn.close()
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            log.warning("a connection the database dropped was let go: %r", exc)


async def _read_connect(primary: AsyncEngine) -> AsyncConnection:
    server = read_server()
    if server is None or not server.is_replica:
        return await (server.engine if server else primary).connect()
    try:
        return await server.engine.connect()
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        return await leave_replica(server, exc).engine.connect()


async def read_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """A connection for the request's reads; its transaction ends with the request."""
    async with request_connection(request.app.state.engine, reads=True) as conn:
        yield conn


async def cursor_codec(request: Request) -> CursorCodec:
    return request.app.state.cursor_codec


async def answer_cache(request: Request) -> AnswerCache:
    return request.app.state.answer_cache


async def settings(request: Request) -> Settings:
    return request.app.state.settings


ReadConn = Annotated[AsyncConnection, Depends(read_connection)]
Codec = Annotated[CursorCodec, Depends(cursor_codec)]
AnswerCacheDep = Annotated[AnswerCache, Depends(answer_cache)]
SettingsDep = Annotated[Settings, Depends(settings)]
