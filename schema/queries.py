"""GraphQL queries: thin resolvers over the shared query layer."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import orjson
import strawberry
from graphql import GraphQLError
from pydantic import ValidationError
from pydantic.alias_generators import to_camel
from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment

from db.cost import LIMITS
from db.filters import EventFilter, FilterError
from db.pagination import CursorError, Page, PageRequest
from db.queries import actors, claims, documents, events, happenings, history, places, stats
from db.queries.stats import StatsRequest, parse_group_by
from schema.inputs import Collapse, EventOrder, EventWhere, StatDimension
from schema.prefetch import load_selected_trees, selections_at
from schema.types import (Actor, Claim, Connection, Document, Edge, Event, EventStat, Happening, PageInfo, Place,
                          Stance)

T = TypeVar("T")
# The query layer names REST's parameters; these are their GraphQL names.
GRAPHQL_ARGUMENTS = {"sort": "orderBy", "cursor": "after", "limit": "first"}


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input becomes a GraphQL error with a code and the name of the argument."""
    try:
        yield
    except FilterError as exc:
        argument = GRAPHQL_ARGUMENTS.get(exc.field, to_camel(exc.field))
        raise GraphQLError(f"{argument}: {exc.message}",
                           extensions={"code": "BAD_USER_INPUT", "argument": argument}) from exc
    except CursorError as exc:
        raise GraphQLError(f"after: {exc}", extensions={"code": "BAD_USER_INPUT", "argument": "after"}) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(to_camel(part) if isinstance(part, str) else str(part) for part in first["loc"])
        raise GraphQLError(f"where.{where}: {first['msg']}",
                           extensions={"code": "BAD_USER_INPUT", "argument": f"where.{where}"}) from exc


def _selects_path(selections: list, path: list[str]) -> bool:
    """Whether the nested fields `path` (edges, node, claims) are selected, through fragments too."""
    for selection in selections:
        if isinstance(selection, (FragmentSpread, InlineFragment)):
            if _selects_path(selection.selections, path):
                return True
        elif selection.name == path[0] and (len(path) == 1 or _selects_path(selection.selections, path[1:])):
            return True
    return False


def _selections(info: Info) -> list:
    """What is selected under the field being resolved (under each alias of it)."""
    return [s for field in info.selected_fields for s in field.selections]


async def single_node(info: Info, tree: dict | None, node: Callable[[dict], T]) -> T | None:
    """A single node, with the full trees its selection needs loaded."""
    if tree is None:
        return None
    made = node(tree)
    await load_selected_trees(info, [made], _selections(info))
    return made


def _wants_total(info: Info) -> bool:
    return any(_selects_path(field.selections, ["totalCount"]) for field in info.selected_fields)


async def _connection(info: Info, first: int, after: str | None, list_page: Callable[..., Awaitable[Page]],
                      node: Callable[[dict], T], *args: Any, **kwargs: Any) -> Connection[T]:
    """Run a query-layer list as a Relay connection (totalCount only when selected)."""
    # (over the most, the operation was refused before it ran: schema/cost.py)
    if not 1 <= first <= LIMITS.page_size:
        raise GraphQLError(f"first must be between 1 and {LIMITS.page_size}, not {first}",
                           extensions={"code": "BAD_USER_INPUT", "argument": "first"})
    request = PageRequest(limit=first, cursor=after, count=_wants_total(info))
    with user_errors():
        page = await info.context.db(list_page, request, info.context.codec, info.context.cache, *args, **kwargs)
    nodes = [node(tree) for tree in page.rows]
    await load_selected_trees(info, nodes, selections_at(_selections(info), ["edges", "node"]))
    return Connection(
        edges=[Edge(node=n, page=page, index=i) for i, n in enumerate(nodes)],
        page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.cursor_at(-1) if nodes else None),
        total_count=page.total)


@strawberry.type
class Query:
    @strawberry.field(description="Events matching `where`, newest first by default. With `asOf` (UTC if it "
                                  "has no offset), the events that matched then, as they stood then (not with q, "
                                  "near or bbox).")
    async def events(self, info: Info, where: EventWhere | None = None,
                     order_by: EventOrder = EventOrder.DATE_DESC, first: int = 50,
                     after: str | None = None, as_of: dt.datetime | None = None,
                     collapse: Collapse | None = None) -> Connection[Event]:
        with user_errors():
            event_filter = where.to_filter() if where else EventFilter()
        # the claims cost more than the rest of a page: only when asked
        with_claims = any(_selects_path(field.selections, ["edges", "node", "claims"])
                          for field in info.selected_fields)
        if as_of is not None:
            return await _connection(info, first, after, history.list_events_as_of, Event.of, event_filter,
                                     as_of, sort=order_by.value, with_claims=with_claims, collapse=collapse)
        return await _connection(info, first, after, events.list_events, Event.of,
                                 event_filter, sort=order_by.value, with_claims=with_claims, collapse=collapse)

    @strawberry.field(description="Events and fatality sums per group, under the same filters as `events` "
                                  "(REST: GET /v1/stats/events).")
    async def event_stats(self, info: Info, group_by: list[StatDimension], where: EventWhere | None = None,
                          fill: bool = False, collapse: Collapse | None = None) -> list[EventStat]:
        with user_errors():
            event_filter = where.to_filter() if where else EventFilter()
            request = StatsRequest(group_by=parse_group_by([d.value for d in group_by]), fill=fill,
                                   collapse=collapse)
            rows = await info.context.db(stats.event_stats, info.context.cache, event_filter, request)
        return [EventStat.of(row) for row in orjson.loads(rows)]

    @strawberry.field(description="One event by id or external id (dataset:id). With `asOf` (UTC if it has "
                                  "no offset), the event, its claims, roles and figures as they stood then; "
                                  "null if it did not exist then.")
    async def event(self, info: Info, id: strawberry.ID, as_of: dt.datetime | None = None) -> Event | None:
        if as_of is None:
            return await single_node(info, await info.context.db(events.get_event, str(id)), Event.of)
        with user_errors():
            tree = await info.context.db(history.get_event_as_of, str(id), as_of)
        return await single_node(info, tree, Event.of)

    @strawberry.field(description="One happening (records of several sources linked as one) by its id or the id "
                                  "or external id of any of its records; under its own id.")
    async def happening(self, info: Info, id: strawberry.ID) -> Happening | None:
        return await single_node(info, await info.context.db(happenings.get_happening, str(id)), Happening.of)

    @strawberry.field
    async def actors(self, info: Info, q: str | None = None, kind: list[str] | None = None, first: int = 50,
                     after: str | None = None) -> Connection[Actor]:
        return await _connection(info, first, after, actors.list_actors, Actor.of,
                                 q=q, kind=tuple(kind or ()))

    @strawberry.field
    async def actor(self, info: Info, id: strawberry.ID) -> Actor | None:
        return await single_node(info, await info.context.db(actors.get_actor, str(id)), Actor.of)

    @strawberry.field
    async def places(self, info: Info, q: str | None = None, kind: list[str] | None = None,
                     parent: strawberry.ID | None = None, first: int = 50,
                     after: str | None = None) -> Connection[Place]:
        return await _connection(info, first, after, places.list_places, Place.of,
                                 q=q, kind=tuple(kind or ()), parent=str(parent) if parent is not None else None)

    @strawberry.field
    async def place(self, info: Info, id: strawberry.ID) -> Place | None:
        return await single_node(info, await info.context.db(places.get_place, str(id)), Place.of)

    @strawberry.field
    async def documents(self, info: Info, first: int = 50, after: str | None = None) -> Connection[Document]:
        return await _connection(info, first, after, documents.list_documents, Document.of)

    @strawberry.field
    async def document(self, info: Info, id: strawberry.ID) -> Document | None:
        return await single_node(info, await info.context.db(documents.get_document, str(id)), Document.of)

    @strawberry.field
    async def claims(self, info: Info, event: strawberry.ID | None = None, claimant: list[str] | None = None,
                     stance: list[Stance] | None = None, predicate: list[str] | None = None, first: int = 50,
                     after: str | None = None) -> Connection[Claim]:
        where = claims.ClaimFilter(event=str(event) if event is not None else None,
                                   claimant=tuple(claimant or ()), stance=tuple(s.value for s in stance or ()),
                                   predicate=tuple(predicate or ()))
        return await _connection(info, first, after, claims.list_claims, Claim.of, where)
