"""Per-request GraphQL context: one database connection (for reads and a mutation's
write transaction alike) and the dataloaders over it, and the request's API key for
the resolvers that need one (mutations)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from uuid import UUID

from graphql import GraphQLError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from db.api_keys import ApiKeyRefused, ApiPrincipal, ApiRoleTooLow, Role
from db.cache import AnswerCache
from db.cost import Charge, no_charge
from db.engine import is_unstorable_text
from db.pagination import CursorCodec
from db.queries.actors import actor_trees
from db.queries.documents import document_trees
from db.queries.events import event_trees
from db.queries.happenings import happening_trees
from db.queries.places import place_trees
from db.replicas import note_commit
from db.writes import start_writing

T = TypeVar("T")


class _TreeLoader:
    """A context's dataloader of the trees of records by id (`gone(id)` for a record
    that has none), made at its first use in a request and kept in the context."""

    def __init__(self, trees: Callable[[AsyncConnection, list[UUID]], Awaitable[list[dict]]], *,
                 gone: Callable[[UUID], dict | None] = lambda record_id: None):
        self.trees, self.gone = trees, gone

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, context: GraphQLContext | None, owner: type) -> Any:
        if context is None:
            return self

        async def load(ids: Sequence[UUID]) -> list[dict | None]:
            by_id = {tree["id"]: tree for tree in await context.db(self.trees, list(ids))}
            return [by_id[str(i)] if str(i) in by_id else self.gone(i) for i in ids]

        loader = context.__dict__[self.name] = DataLoader(load_fn=load)  # (found there from now on)
        return loader


class GraphQLContext(BaseContext):
    def __init__(self, connect: Callable[[], Awaitable[AsyncConnection]], codec: CursorCodec, cache: AnswerCache,
                 authenticate: Callable[[], Awaitable[ApiPrincipal]], charge: Charge = no_charge,
                 plan_reads: bool = True, fresh: bool = False):
        """`connect`: the request's one database connection, made when first needed (a
        request that is refused its key never takes one) and kept to the request's end.
        `authenticate`: the request's key, or ApiKeyRefused (api/auth.py's
        request_principal, bound to the request). `charge`: charges the operation's
        cost to the caller's rate-limit quota once it is known (db.cost.Charge).
        `plan_reads`: queries the planner knows are answered by it (schema/planner.py).
        `fresh`: the request asked for fresh answers (HTTP `Cache-Control: no-cache`),
        its totals and stats computed rather than read from the answer cache."""
        super().__init__()
        self._connect = connect
        self._conn: AsyncConnection | None = None
        self.writing = False  # a mutation has opened the request's write transaction
        self.write_failed = False
        self.codec = codec
        self.cache = cache
        self._authenticate = authenticate
        self.charge = charge
        self.plan_reads = plan_reads
        self.fresh = fresh
        self._reads_only = False
        # Resolvers run concurrently, but one connection runs one statement at a time.
        self._lock = asyncio.Lock()

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            self._conn = await self._connect()
            if self._reads_only:
                await self._conn.execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def reads_only(self) -> None:
        """The request only reads (a planned query): its statements run without a
        transaction around them, which at READ COMMITTED changes nothing they see (each
        statement has its own snapshot either way) and spares a BEGIN and a ROLLBACK."""
        assert self._conn is None and not self.writing, "reads_only() before the request's first statement"
        self._reads_only = True

    @asynccontextmanager
    async def write_transaction(self, who: str) -> AsyncIterator[AsyncConnection]:
        """The request's write transaction, which every mutation of the request shares:
        schema.errors.OneTransaction commits it when the operation has run without an
        error, else rolls it back, so a request is written whole or not at all. On the
        request's one connection: a request never holds two (twenty concurrent
        mutations each holding a read connection and waiting for a second one took
        every connection of the pool). Reads after a mutation see its write."""
        async with self._lock:
            conn = await self._connection()
            if not self.writing:
                if conn.in_transaction():
                    await conn.rollback()  # reads only, so far
                await conn.begin()
                self.writing = True
                await start_writing(conn, who)
            try:
                yield conn
            except BaseException:
                self.write_failed = True
                raise

    async def end_writes(self, keep: bool) -> None:
        """Commit (`keep`) or roll back the request's write transaction, if it has one."""
        if self.writing:
            self.writing = False
            conn = await self._connection()
            await (conn.commit() if keep else conn.rollback())
            if keep:
                await note_commit(conn)  # (the answer's consistency token)

    async def db(self, query: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run a query-layer function on the request's connection."""
        async with self._lock:
            try:
                return await query(await self._connection(), *args, **kwargs)
            except DBAPIError as exc:
                if is_unstorable_text(exc):
                    raise GraphQLError("An argument contains a NUL character, which text cannot hold.",
                                       extensions={"code": "BAD_USER_INPUT"}) from exc
                raise

    async def principal(self, role: Role = "reader") -> ApiPrincipal:
        """The request's API key, if its role is `role` or higher. A mutation starts with
        `key = await info.context.principal("editor")` (and records `key.key_id` or
        `key.name` as who made the change); a query never asks, so reads pay nothing for
        it. Without a valid key this raises a GraphQL error with `extensions.code`
        UNAUTHENTICATED, with too low a role FORBIDDEN (and `requiredRole`): the field
        is null, the error says why, and nothing has been written."""
        try:
            principal = await self._authenticate()
            return principal.require(role)
        except ApiKeyRefused as exc:
            raise GraphQLError(exc.detail, extensions={"code": "UNAUTHENTICATED"}) from exc
        except ApiRoleTooLow as exc:
            raise GraphQLError(exc.detail, extensions={"code": "FORBIDDEN", "requiredRole": exc.needed}) from exc

    # The dataloaders of the records' full trees, made when first used (a planned query
    # uses none).
    actors = _TreeLoader(actor_trees)
    places = _TreeLoader(place_trees)
    documents = _TreeLoader(document_trees)
    happenings = _TreeLoader(happening_trees)
    # An event's detail tree: what a list's lacks, its linked events. An event read as of
    # a time and deleted since has none, and is linked to nothing now (its matches went
    # with it, as they are gone from the detail read as of that time).
    events = _TreeLoader(event_trees, gone=lambda event_id: {"id": str(event_id), "linked_events": []})

    def forget_loaded(self) -> None:
        """After a write: trees loaded before it are of the old version (a second
        mutation in the same request may read a record the first one changed)."""
        for loader in self.__dict__.values():
            if isinstance(loader, DataLoader):
                loader.clear_all()
