"""GraphQL errors a client can act on: every error carries `extensions.code`.

Bad input is BAD_USER_INPUT (raised by the resolvers, naming the argument, or by
GraphQL's own type checks of variables and literals); a query GraphQL refuses is
GRAPHQL_VALIDATION_FAILED; a lost database is SERVICE_UNAVAILABLE; a cost the caller's
rate-limit quota cannot cover is RATE_LIMITED (with `retryAfter`, in seconds). A write refused
says why as REST's status would: UNAUTHENTICATED (401), FORBIDDEN (403),
BAD_USER_INPUT with `errors` naming every bad field (422), NOT_FOUND (404), GONE with
the `tombstone` (410), PRECONDITION_FAILED with the `currentEtag` (412), CONFLICT
(409). Anything else is INTERNAL_SERVER_ERROR with a generic message, so no SQL or
internals leak; the details go to the log.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

from graphql import GraphQLError
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.utils.str_converters import to_camel_case

from db.cost import QuotaExceeded
from db.engine import is_database_unavailable
from db.filters import FilterError
from db.writes import FieldError, InvalidInput, RecordGone, RecordNotFound, StaleRecord, StillReferenced, WriteError

log = logging.getLogger(__name__)

DATABASE_UNAVAILABLE_MESSAGE = "The database is unavailable; try again shortly."

# The code of a request refused over HTTP before GraphQL runs it (not a GraphQL request, no
# valid key, too large a body, a lost database), so that a GraphQL client finds
# `errors[].extensions.code` there too.
HTTP_STATUS_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                     405: "METHOD_NOT_ALLOWED", 408: "REQUEST_TIMEOUT", 413: "PAYLOAD_TOO_LARGE",
                     415: "BAD_REQUEST", 422: "BAD_USER_INPUT", 429: "RATE_LIMITED", 503: "SERVICE_UNAVAILABLE"}


def http_error(status: int, message: str) -> dict:
    """A GraphQL error (as JSON) for a request refused with HTTP status `status`."""
    code = HTTP_STATUS_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_SERVER_ERROR")
    return {"message": message, "extensions": {"code": code}}


# The codes of errors that are the request's to change (or, RATE_LIMITED, to send later),
# not the server's: the README's table of GraphQL errors, and what the fuzzing accepts.
CLIENT_ERROR_CODES = frozenset({
    "BAD_REQUEST", "BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED", "COST_LIMIT_EXCEEDED",
    "RATE_LIMITED", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "GONE", "PRECONDITION_FAILED", "CONFLICT",
    "ROLLED_BACK", "METHOD_NOT_ALLOWED", "REQUEST_TIMEOUT", "PAYLOAD_TOO_LARGE"})


def _coded(error: GraphQLError, code: str, message: str | None = None, extensions: dict | None = None
           ) -> GraphQLError:
    return GraphQLError(message or error.message, nodes=error.nodes, source=error.source,
                        positions=error.positions, path=error.path, original_error=None,
                        extensions={**(error.extensions or {}), **(extensions or {}), "code": code})


def classify(error: GraphQLError) -> GraphQLError:
    if (error.extensions or {}).get("code"):
        return error
    original = error.original_error
    if original is not None and is_database_unavailable(original):
        return _coded(error, "SERVICE_UNAVAILABLE", DATABASE_UNAVAILABLE_MESSAGE)
    if isinstance(original, QuotaExceeded):
        return _coded(error, "RATE_LIMITED", original.detail, {"retryAfter": original.retry_after})
    if original is None or error.path is None:
        # GraphQL's own checks before execution: a value of the wrong type is the client's input
        bad_value = error.message.startswith("Variable ") or "cannot represent" in error.message \
            or error.message.startswith("Expected value of type")
        if error.message.startswith("Syntax Error"):
            return _coded(error, "GRAPHQL_PARSE_FAILED")
        return _coded(error, "BAD_USER_INPUT" if bad_value else "GRAPHQL_VALIDATION_FAILED")
    if isinstance(original, WriteError):
        # a refusal no resolver turned into its error (the mutations do): the client's all the same
        refused = bad_user_input(original.errors) if isinstance(original, InvalidInput) else refused_write(original)
        return _coded(error, refused.extensions["code"], refused.message, refused.extensions)
    return _coded(error, "INTERNAL_SERVER_ERROR", "Unexpected error; it has been logged.")


def bad_user_input(errors: list[FieldError]) -> GraphQLError:
    """An input refused, every bad field named as the client wrote it (`input.newPlace.parent`)."""
    return GraphQLError("Invalid input: " + "; ".join(f"{e.name}: {e.reason}" for e in errors),
                        extensions={"code": "BAD_USER_INPUT",
                                    "errors": [{"name": e.name, "reason": e.reason} for e in errors]})


# The query layer's names of arguments that GraphQL names otherwise (the rest: camelCase).
GRAPHQL_ARGUMENTS = {"sort": "orderBy", "cursor": "after", "limit": "first"}


def graphql_name(name: str | int) -> str:
    """A field or argument of the query layer, or a step of a path in one (`_or`, 0), as
    GraphQL names it."""
    if isinstance(name, int) or name.startswith("_"):
        return str(name)
    return GRAPHQL_ARGUMENTS.get(name, to_camel_case(name))


def bad_filter(exc: FilterError, within: str | None = None) -> GraphQLError:
    """A value a filter refused, named as GraphQL names it: inside an input argument
    `within`, its path there (`where.near.radiusKm`), with which check refused it in
    `inputCode` (db.filters.FILTER_ERROR_CODES, as REST's `errors[].code`); else the
    argument it is (`admin1`, `orderBy`)."""
    path = ".".join(graphql_name(step) for step in exc.path)
    argument = f"{within}.{path}" if within else path
    extensions = {"code": "BAD_USER_INPUT", "argument": argument}
    if within:
        extensions["inputCode"] = exc.code
    return GraphQLError(f"{argument}: {exc.message_named(graphql_name)}", extensions=extensions)


_CODE_OF_REFUSAL = {RecordNotFound: "NOT_FOUND", RecordGone: "GONE", StaleRecord: "PRECONDITION_FAILED",
                    StillReferenced: "CONFLICT"}


def refused_write(exc: WriteError) -> GraphQLError:
    """A write refused for the state of the record it names (db/writes), with what the
    client needs next: the tombstone of a deleted record, the ETag of the current version."""
    extensions: dict = {"code": _CODE_OF_REFUSAL.get(type(exc), "BAD_USER_INPUT")}
    if isinstance(exc, RecordGone):
        extensions["tombstone"] = {to_camel_case(key): value.isoformat() if hasattr(value, "isoformat") else value
                                   for key, value in exc.tombstone.items()}
    elif isinstance(exc, StaleRecord):
        extensions["currentEtag"] = exc.current_etag
    return GraphQLError(str(exc), extensions=extensions)


class OneTransaction(SchemaExtension):
    """A request's mutations share one transaction (GraphQLContext.write_transaction),
    committed here once they have all run without an error, before the answer goes
    out; after any error nothing of the request is kept, and the answer says so
    rather than showing records that were not written."""

    async def on_operation(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        if not getattr(context, "writing", False):
            return
        result = self.execution_context.result
        failed = context.write_failed or bool(result is not None and result.errors)
        await context.end_writes(keep=not failed)
        if failed and result is not None and result.data and any(v is not None for v in result.data.values()):
            # a mutation that did succeed is shown as not having happened, and why
            result.data = None
            result.errors = [*(result.errors or []), GraphQLError(
                "Nothing of this request was written: one of its mutations was refused, and a request is "
                "written whole or not at all.", extensions={"code": "ROLLED_BACK"})]


class ErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [classify(e) for e in result.errors]


def is_client_error(error: GraphQLError) -> bool:
    """Bad input or a refused query: the client's to fix, nothing for the server log."""
    original = error.original_error
    return original is None or error.path is None or isinstance(original, (GraphQLError, WriteError, QuotaExceeded))


class Schema(strawberry.Schema):
    """Logs only the errors that are the server's (strawberry logs every error)."""

    def process_errors(self, errors: list[GraphQLError], execution_context=None) -> None:
        server_errors = [e for e in errors if not is_client_error(e)]
        unavailable = [e for e in server_errors if is_database_unavailable(e.original_error)]
        for error in unavailable:  # one line, as REST logs it: an outage is not a bug to trace
            log.error("database unavailable resolving %s: %r", ".".join(map(str, error.path or ())),
                      error.original_error)
        server_errors = [e for e in server_errors if e not in unavailable]
        if server_errors:
            super().process_errors(server_errors, execution_context)
