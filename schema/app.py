"""The GraphQL schema and its router (GraphiQL in a browser at the same path)."""

from collections.abc import Callable

from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.fastapi import GraphQLRouter

from schema.errors import ErrorCodes, Schema
from schema.queries import Query

# Limits that keep one request from asking for unbounded work; each refusal is a
# GraphQL error that says which limit was hit.
MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000

schema = Schema(
    query=Query,
    extensions=[
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        ErrorCodes,
    ],
)


def graphql_router(context_getter: Callable) -> GraphQLRouter:
    """`context_getter` is a FastAPI dependency returning a schema.context.GraphQLContext."""
    return GraphQLRouter(schema, context_getter=context_getter, graphql_ide="graphiql")
