"""GraphQL's side of read routing (db/replicas.py): `extensions.consistencyToken` in a
request (as the X-Consistency-Token header) reads at or past that write; a mutation
reads and writes on the primary; a write's answer carries its token in `extensions`."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from db.replicas import BadToken, current_request, format_token, read_on_primary, wants_position

TOKEN_EXTENSION = "consistencyToken"


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
            if context.operation_type is OperationType.MUTATION:
                read_on_primary()
        yield

    def get_results(self) -> dict:
        routed = current_request()
        if routed is None or routed.written is None:
            return {}
        return {TOKEN_EXTENSION: format_token(routed.written)}
