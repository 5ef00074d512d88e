"""GraphQL's side of read routing (db/replicas.py): `extensions.consistencyToken` in a
request (as the X-Consistency-Token header) reads at or past that write; a mutation
reads and writes on the primary; a write's answer carries its token in `extensions`."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import ArgumentNode, DocumentNode, ExecutionResult, GraphQLError, Visitor, visit
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from db.replicas import BadToken, current_request, format_token, read_on_primary, wants_position

TOKEN_EXTENSION = "consistencyToken"
AS_OF_ARGUMENT = "asOf"


def _asks_as_of(document: DocumentNode | None) -> bool:
    found = False

    class AsOf(Visitor):
        def enter_argument(self, node: ArgumentNode, *_: object) -> None:
            nonlocal found
            found = found or node.name.value == AS_OF_ARGUMENT

    if document is not None:
        visit(document, AsOf())
    return found


class ConsistencyToken(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        token = (context.operation_extensions or {}).get(TOKEN_EXTENSION)
        try:
            if token is not None:
                if not isinstance(token, str):
                    raise BadToken(f"extensions.{TOKEN_EXTENSION} must be a string a write's answer gave")
                wants_position(token)
        except BadToken as exc:
            context.result = ExecutionResult(data=None, errors=[GraphQLError(
                str(exc), extensions={"code": "BAD_USER_INPUT", "extension": TOKEN_EXTENSION})])
        else:
            # a mutation's reads and writes, and reads as of a time (a replica has every
            # commit up to a moment ago, not necessarily up to the time asked for)
            if context.operation_type is OperationType.MUTATION or (
                    AS_OF_ARGUMENT in (context.query or "") and _asks_as_of(context.graphql_document)):
                read_on_primary()
        yield

    def get_results(self) -> dict:
        routed = current_request()
        if routed is None or routed.written is None:
            return {}
        return {TOKEN_EXTENSION: format_token(routed.written)}
