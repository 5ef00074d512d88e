"""GraphQL queries: thin resolvers over the shared query layer."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from db.filters import EventFilter, FilterError
from db.pagination import CursorError, Page
from db.queries import actors, claims, documents, events, places
from schema.inputs import EventOrder, EventWhere
from schema.types import Actor, Claim, Connection, Document, Edge, Event, PageInfo, Place, Stance

T = TypeVar("T")
MAX_FIRST = 500


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input becomes a GraphQL error with a code and the name of the argument."""
    try:
        yield
    except FilterError as exc:
        raise GraphQLError(str(exc), extensions={"code": "BAD_USER_INPUT", "argument": exc.field}) from exc
    except CursorError as exc:
        raise GraphQLError(f"after: {exc}", extensions={"code": "BAD_USER_INPUT", "argument": "after"}) from exc


def _check_first(first: int) -> None:
    if not 1 <= first <= MAX_FIRST:
        raise GraphQLError(f"first must be between 1 and {MAX_FIRST}, not {first}",
                           extensions={"code": "BAD_USER_INPUT", "argument": "first"})


def _wants_total(info: Info) -> bool:
    return any(sel.name == "totalCount" for field in info.selected_fields for sel in field.selections
               if hasattr(sel, "name"))


def _connection(page: Page, node: Callable[[dict], T]) -> Connection[T]:
    return Connection(
        edges=[Edge(cursor=c, node=node(tree)) for tree, c in zip(page.rows, page.cursors)],
        page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.cursors[-1] if page.cursors else None),
        total_count=page.total)


@strawberry.type
class Query:
    @strawberry.field(description="Events matching `where`, newest first by default.")
    async def events(self, info: Info, where: EventWhere | None = None,
                     order_by: EventOrder = EventOrder.DATE_DESC, first: int = 50,
                     after: str | None = None) -> Connection[Event]:
        _check_first(first)
        ctx = info.context
        with user_errors():
            page = await ctx.db(events.list_events, where.to_filter() if where else EventFilter(),
                                sort=events.EVENT_SORTS[order_by.value], limit=first, cursor=after,
                                codec=ctx.codec, count=_wants_total(info), with_claims=True)
        return _connection(page, lambda tree: Event(tree=tree))

    @strawberry.field(description="One event by id or external id (dataset:id).")
    async def event(self, info: Info, id: strawberry.ID) -> Event | None:
        tree = await info.context.db(events.get_event, str(id))
        return Event(tree=tree) if tree else None

    @strawberry.field
    async def actors(self, info: Info, q: str | None = None, kind: list[str] | None = None, first: int = 50,
                     after: str | None = None) -> Connection[Actor]:
        _check_first(first)
        ctx = info.context
        with user_errors():
            page = await ctx.db(actors.list_actors, q=q, kind=tuple(kind or ()), limit=first, cursor=after,
                                codec=ctx.codec, count=_wants_total(info))
        return _connection(page, lambda tree: Actor(tree=tree))

    @strawberry.field
    async def actor(self, info: Info, id: strawberry.ID) -> Actor | None:
        tree = await info.context.db(actors.get_actor, str(id))
        return Actor(tree=tree) if tree else None

    @strawberry.field
    async def places(self, info: Info, q: str | None = None, kind: list[str] | None = None,
                     parent: strawberry.ID | None = None, first: int = 50,
                     after: str | None = None) -> Connection[Place]:
        _check_first(first)
        ctx = info.context
        with user_errors():
            page = await ctx.db(places.list_places, q=q, kind=tuple(kind or ()),
                                parent=str(parent) if parent is not None else None, limit=first, cursor=after,
                                codec=ctx.codec, count=_wants_total(info))
        return _connection(page, lambda tree: Place(tree=tree))

    @strawberry.field
    async def place(self, info: Info, id: strawberry.ID) -> Place | None:
        tree = await info.context.db(places.get_place, str(id))
        return Place(tree=tree) if tree else None

    @strawberry.field
    async def documents(self, info: Info, first: int = 50, after: str | None = None) -> Connection[Document]:
        _check_first(first)
        ctx = info.context
        with user_errors():
            page = await ctx.db(documents.list_documents, limit=first, cursor=after, codec=ctx.codec,
                                count=_wants_total(info))
        return _connection(page, lambda tree: Document(tree=tree))

    @strawberry.field
    async def document(self, info: Info, id: strawberry.ID) -> Document | None:
        tree = await info.context.db(documents.get_document, str(id))
        return Document(tree=tree) if tree else None

    @strawberry.field
    async def claims(self, info: Info, event: strawberry.ID | None = None, claimant: list[str] | None = None,
                     stance: list[Stance] | None = None, predicate: list[str] | None = None, first: int = 50,
                     after: str | None = None) -> Connection[Claim]:
        _check_first(first)
        ctx = info.context
        where = claims.ClaimFilter(event=str(event) if event is not None else None,
                                   claimant=tuple(claimant or ()), stance=tuple(s.value for s in stance or ()),
                                   predicate=tuple(predicate or ()))
        with user_errors():
            page = await ctx.db(claims.list_claims, where, limit=first, cursor=after, codec=ctx.codec,
                                count=_wants_total(info))
        return _connection(page, lambda tree: Claim(tree=tree))
