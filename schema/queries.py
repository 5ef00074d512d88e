"""GraphQL queries: thin resolvers over the shared query layer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

import orjson
import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from db.filters import EventFilter
from db.pagination import CursorError
from db.queries import actors, claims, documents, events, happenings, history, places, stats
from db.queries.stats import StatsRequest, parse_group_by
from schema.inputs import Collapse, EventOrder, EventWhere, StatDimension
from schema.paging import Connection, check_first, connection, selections, selects_path, user_errors
from schema.prefetch import load_selected_trees
from schema.types import Actor, ChangeFeed, Change, Claim, Document, Event, EventStat, Happening, Place, Stance

T = TypeVar("T")


async def single_node(info: Info, tree: dict | None, node: Callable[[dict], T]) -> T | None:
    """A single node, with the full trees its selection needs loaded."""
    if tree is None:
        return None
    made = node(tree)
    await load_selected_trees(info, [made], selections(info))
    return made


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
        with_claims = any(selects_path(field.selections, ["edges", "node", "claims"])
                          for field in info.selected_fields)
        if as_of is not None:
            return await connection(info, first, after, history.list_events_as_of, Event.of, event_filter,
                                     as_of, sort=order_by.value, with_claims=with_claims, collapse=collapse)
        return await connection(info, first, after, events.list_events, Event.of,
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
        return await connection(info, first, after, actors.list_actors, Actor.of,
                                 q=q, kind=tuple(kind or ()))

    @strawberry.field
    async def actor(self, info: Info, id: strawberry.ID) -> Actor | None:
        return await single_node(info, await info.context.db(actors.get_actor, str(id)), Actor.of)

    @strawberry.field
    async def places(self, info: Info, q: str | None = None, kind: list[str] | None = None,
                     parent: strawberry.ID | None = None, first: int = 50,
                     after: str | None = None) -> Connection[Place]:
        return await connection(info, first, after, places.list_places, Place.of,
                                 q=q, kind=tuple(kind or ()), parent=str(parent) if parent is not None else None)

    @strawberry.field
    async def place(self, info: Info, id: strawberry.ID) -> Place | None:
        return await single_node(info, await info.context.db(places.get_place, str(id)), Place.of)

    @strawberry.field
    async def documents(self, info: Info, first: int = 50, after: str | None = None) -> Connection[Document]:
        return await connection(info, first, after, documents.list_documents, Document.of)

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
        return await connection(info, first, after, claims.list_claims, Claim.of, where)

    @strawberry.field(description="The change feed: records created, updated, deleted or merged, in the order "
                                  "the writes committed, one entry per record and write (as GET /v1/changes). "
                                  "Keep `nextCursor` and pass it as `since` next time.")
    async def changes(self, info: Info, since: str | None = None, first: int = 500) -> ChangeFeed:
        check_first(first)
        try:
            feed = await info.context.db(history.list_changes, since, first, info.context.codec)
        except CursorError as exc:
            raise GraphQLError(f"since: {exc}", extensions={"code": "BAD_USER_INPUT", "argument": "since"}) from exc
        return ChangeFeed(data=[Change.of(entry) for entry in feed["data"]], next_cursor=feed["next_cursor"],
                          has_more=feed["has_more"])
