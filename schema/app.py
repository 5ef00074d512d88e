"""The GraphQL schema and its router (GraphiQL in a browser at the same path)."""

from collections.abc import Callable

import strawberry
from strawberry.fastapi import GraphQLRouter

from schema.queries import Query

schema = strawberry.Schema(query=Query)


def graphql_router(context_getter: Callable) -> GraphQLRouter:
    """`context_getter` is a FastAPI dependency returning a schema.context.GraphQLContext."""
    return GraphQLRouter(schema, context_getter=context_getter, graphql_ide="graphiql")
