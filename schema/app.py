"""The GraphQL schema and its router (GraphiQL in a browser at the same path)."""

import logging
from collections.abc import Callable

import orjson

from cross_web import HTTPException as TransportError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, ParserCache, ValidationCache
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.fastapi import GraphQLRouter
from strawberry.types.unset import UNSET

from db.engine import DATABASE_RETRY_AFTER_SECONDS, is_database_unavailable
from schema.cost import CostLimit
from schema.errors import DATABASE_UNAVAILABLE_MESSAGE, ErrorCodes, OneTransaction, Schema, classify, http_error
from schema.mutations import Mutation
from schema.planner import PlannedReads
from schema.queries import Query
from schema.routing import ConsistencyToken

log = logging.getLogger(__name__)

# Limits that keep one request from asking for unbounded work; each refusal is a
# GraphQL error that says which limit was hit.
MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000

# The depth and alias rules are made once, so every request validates with the same
# rules and a query text seen before is neither parsed nor validated again (the two
# caches: ~6 ms of a 50-event nested query).
LIMIT_RULES = [depth_rule(MAX_DEPTH, None, None), alias_rule(MAX_ALIASES)]

schema = Schema(
    query=Query,
    mutation=Mutation,
    extensions=[
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        ParserCache,
        lambda: AddValidationRules(LIMIT_RULES),
        ValidationCache,
        ConsistencyToken,
        CostLimit,
        PlannedReads,
        OneTransaction,
        ErrorCodes,
    ],
)

_JSON_KINDS = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
               list: "an array"}


def transport_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A request refused before (or outside) execution, as a GraphQL response: `errors`
    with `extensions.code` (BAD_REQUEST for a request that is not a GraphQL request), never
    strawberry's text/plain."""
    return Response(orjson.dumps({"errors": [http_error(status, message)]}),
                    status_code=status, media_type="application/json", headers=headers)


class _Router(GraphQLRouter):
    # The IDE's page for a request (api/pages.py: GraphiQL from files the package ships);
    # None: strawberry's own page, which loads GraphiQL from a CDN.
    ide_page: Callable[[Request], str] | None = None

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        if self.ide_page is None:
            return await super().render_graphql_ide(request)
        return HTMLResponse(self.ide_page(request))

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)  # the standard library's json costs ~1 ms a page of events

    def parse_json(self, data: str | bytes) -> dict:
        """The body (or a GET's `variables`, `extensions`): a JSON object in UTF-8, else a 400
        naming what it is (strawberry's own parsing answered 500 for `null`, `42`, `"x"`, or
        bytes that are not UTF-8)."""
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise TransportError(400, f"The request is not valid JSON in UTF-8: {exc}.") from None
        if not isinstance(value, dict):
            kind = _JSON_KINDS.get(type(value), type(value).__name__)
            raise TransportError(400, f"Expected a JSON object, got {kind}: a GraphQL request is "
                                      '{"query": "...", "variables": {...}, "operationName": "..."}.')
        return value

    async def process_result(self, request, result):
        # (an error strawberry answers before the operation's extensions run, a syntax
        # error, has its code given here: every error carries one)
        if result.errors:
            result.errors = [classify(error) for error in result.errors]
        if any((error.extensions or {}).get("code") == "SERVICE_UNAVAILABLE" for error in result.errors or ()):
            request.state.database_unavailable = True  # the answer says when to try again (run)
        return await super().process_result(request, result)

    async def run(self, request, context=UNSET, root_value=UNSET):
        try:
            response = await super().run(request, context=context, root_value=root_value)
            if isinstance(response, Response) and getattr(request.state, "database_unavailable", False):
                response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
            return response
        except TransportError as exc:
            return transport_error(exc.status_code, exc.reason)
        except Exception as exc:
            # raised outside any resolver (committing a request's writes): no GraphQL result to carry it
            if not is_database_unavailable(exc):
                raise
            log.error("database unavailable running a GraphQL request: %r", exc)
            return transport_error(503, DATABASE_UNAVAILABLE_MESSAGE,
                                   headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})


def graphql_router(context_getter: Callable, ide_page: Callable[[Request], str] | None = None) -> GraphQLRouter:
    """`context_getter` is a FastAPI dependency returning a schema.context.GraphQLContext;
    `ide_page` renders the GraphiQL page a browser gets (strawberry's own without it)."""
    router = _Router(schema, context_getter=context_getter, graphql_ide="graphiql")
    router.ide_page = ide_page
    return router
