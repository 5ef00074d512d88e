"""Request-scoped dependencies, as `Annotated` aliases the routes declare."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from api.settings import Settings
from db.cache import AnswerCache
from db.pagination import CursorCodec


async def read_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """A connection for the request's reads; its transaction ends with the request."""
    async with request.app.state.engine.connect() as conn:
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
