"""Lists as Relay connections, for the queries and for lists under a node (an event's
matches): one query-layer page each, with the full trees its selection needs loaded;
and the GraphQL errors of bad input (filters, cursors), naming GraphQL's arguments."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment

from db.cost import LIMITS
from db.filters import FilterError
from db.pagination import CursorError, Page, PageRequest
from schema.errors import bad_filter
from schema.prefetch import load_selected_trees, selections_at

T = TypeVar("T")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    node: T
    page: strawberry.Private[Page]
    index: strawberry.Private[int]

    @strawberry.field(description="Pass as `after` to go on from this edge.")
    def cursor(self) -> str:
        return self.page.cursor_at(self.index)  # signed only when selected (an HMAC per edge)


@strawberry.type(description="A Relay connection: pass pageInfo.endCursor as `after` for the next page.")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int | None = strawberry.field(description="The number of matches (computed only when asked).")


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input becomes a GraphQL error with a code and the name of the argument (a bad
    `where` is named within it when it is read: schema/inputs.py)."""
    try:
        yield
    except FilterError as exc:
        raise bad_filter(exc) from exc
    except CursorError as exc:
        raise GraphQLError(f"after: {exc}", extensions={"code": "BAD_USER_INPUT", "argument": "after"}) from exc


def selects_path(selections: list, path: list[str]) -> bool:
    """Whether the nested fields `path` (edges, node, claims) are selected, through fragments too."""
    for selection in selections:
        if isinstance(selection, (FragmentSpread, InlineFragment)):
            if selects_path(selection.selections, path):
                return True
        elif selection.name == path[0] and (len(path) == 1 or selects_path(selection.selections, path[1:])):
            return True
    return False


def selections(info: Info) -> list:
    """What is selected under the field being resolved (under each alias of it)."""
    return [s for field in info.selected_fields for s in field.selections]


def _wants_total(info: Info) -> bool:
    return any(selects_path(field.selections, ["totalCount"]) for field in info.selected_fields)


def check_first(first: int) -> None:
    """A page's size in range (over the most, the operation was refused before it ran:
    schema/cost.py; this says so for zero and less)."""
    if not 1 <= first <= LIMITS.page_size:
        raise GraphQLError(f"first must be between 1 and {LIMITS.page_size}, not {first}",
                           extensions={"code": "BAD_USER_INPUT", "argument": "first"})


async def connection(info: Info, first: int, after: str | None, list_page: Callable[..., Awaitable[Page]],
                     node: Callable[[dict], T], *args: Any, **kwargs: Any) -> Connection[T]:
    """Run a query-layer list as a Relay connection (totalCount only when selected)."""
    check_first(first)
    request = PageRequest(limit=first, cursor=after, count=_wants_total(info))
    with user_errors():
        page = await info.context.db(list_page, request, info.context.codec, info.context.cache, *args, **kwargs)
    nodes = [node(tree) for tree in page.rows]
    await load_selected_trees(info, nodes, selections_at(selections(info), ["edges", "node"]))
    return Connection(
        edges=[Edge(node=n, page=page, index=i) for i, n in enumerate(nodes)],
        page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.cursor_at(-1) if nodes else None),
        total_count=page.total)
