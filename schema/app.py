"""The GraphQL schema and its router (GraphiQL in a browser at the same path)."""

from collections.abc import Callable

import orjson

from strawberry.extensions import AddValidationRules, MaxTokensLimiter, ParserCache, ValidationCache
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.fastapi import GraphQLRouter

from schema.cost import CostLimit
from schema.errors import ErrorCodes, OneTransaction, Schema
from schema.execution import PlainFieldExecutionContext
from schema.mutations import Mutation
from schema.queries import Query

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
        CostLimit,
        OneTransaction,
        ErrorCodes,
    ],
    execution_context_class=PlainFieldExecutionContext,
)


class _Router(GraphQLRouter):
    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)  # the standard library's json costs ~1 ms a page of events


def graphql_router(context_getter: Callable) -> GraphQLRouter:
    """`context_getter` is a FastAPI dependency returning a schema.context.GraphQLContext."""
    return _Router(schema, context_getter=context_getter, graphql_ide="graphiql")
