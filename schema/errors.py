"""GraphQL errors a client can act on: every error carries `extensions.code`.

Bad input is BAD_USER_INPUT (raised by the resolvers, naming the argument, or by
GraphQL's own type checks of variables and literals); a query GraphQL refuses is
GRAPHQL_VALIDATION_FAILED; a lost database is SERVICE_UNAVAILABLE. Anything else is
INTERNAL_SERVER_ERROR with a generic message, so no SQL or internals leak; the
details go to the log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from asyncpg import PostgresConnectionError
from graphql import GraphQLError
from sqlalchemy.exc import InterfaceError, OperationalError, TimeoutError as SQLAlchemyTimeoutError
import strawberry
from strawberry.extensions import SchemaExtension

log = logging.getLogger(__name__)

UNAVAILABLE = (OSError, OperationalError, InterfaceError, SQLAlchemyTimeoutError, PostgresConnectionError)


def _coded(error: GraphQLError, code: str, message: str | None = None) -> GraphQLError:
    return GraphQLError(message or error.message, nodes=error.nodes, source=error.source,
                        positions=error.positions, path=error.path, original_error=None,
                        extensions={**(error.extensions or {}), "code": code})


def classify(error: GraphQLError) -> GraphQLError:
    if (error.extensions or {}).get("code"):
        return error
    original = error.original_error
    if original is None or error.path is None:
        # GraphQL's own checks before execution: a value of the wrong type is the client's input
        bad_value = error.message.startswith("Variable ") or "cannot represent" in error.message \
            or error.message.startswith("Expected value of type")
        return _coded(error, "BAD_USER_INPUT" if bad_value else "GRAPHQL_VALIDATION_FAILED")
    if isinstance(original, UNAVAILABLE):
        return _coded(error, "SERVICE_UNAVAILABLE", "The database is unavailable; try again shortly.")
    return _coded(error, "INTERNAL_SERVER_ERROR", "Unexpected error; it has been logged.")


class ErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [classify(e) for e in result.errors]


def is_client_error(error: GraphQLError) -> bool:
    """Bad input or a refused query: the client's to fix, nothing for the server log."""
    original = error.original_error
    return original is None or error.path is None or isinstance(original, GraphQLError)


class Schema(strawberry.Schema):
    """Logs only the errors that are the server's (strawberry logs every error)."""

    def process_errors(self, errors: list[GraphQLError], execution_context=None) -> None:
        server_errors = [e for e in errors if not is_client_error(e)]
        if server_errors:
            super().process_errors(server_errors, execution_context)
