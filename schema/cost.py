"""A GraphQL operation's cost, from its document and variables, before any resolver runs.

The same limits as REST (db/cost.py) are checked on every argument that takes a filter
or a page (`where`, `first`, `groupBy`), and the whole operation is priced in points:
each object in the answer is a point, a connection's `first` multiplies what is
selected under its edges, another list of objects counts as LIST_ITEMS of them, and
`eventStats` as STATS_ROWS_PER_DIMENSION rows per dimension. An operation over
Limits.graphql_points is refused whole (nothing runs); one under it is charged
db.cost.operation_charge(points) once, through GraphQLContext.charge.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
    is_list_type,
)
from graphql.execution.values import get_argument_values
from graphql.type import GraphQLNonNull
from pydantic import ValidationError
from strawberry.extensions import SchemaExtension
from strawberry.utils.str_converters import to_camel_case

from db.cost import (
    AS_OF_FACTOR,
    COLLAPSE_FACTOR,
    LIMITS,
    POINTS_PER_UNIT,
    CostLimitExceeded,
    Limits,
    QuotaExceeded,
    at_most,
    check_filter,
    check_page,
    check_stats,
    filter_charge,
    operation_charge,
)
from db.filters import EventFilter, EventWhere as EventWhereGrammar, FilterError
from schema.errors import bad_filter
from schema.operation import operation_of

# The lists that hold a page of `first` items, under the field that takes `first`.
PAGE_LISTS = ("edges", "data")
# A list of objects without `first` (an event's claims or actors, a place's ancestors,
# an actor's memberships): counted as this many items, about what they hold (an event
# of the shipped data has 1 to 3 claims and 2 or 3 actors, a place 2 to 4 ancestors).
LIST_ITEMS = 5
# eventStats: rows counted per grouping dimension (a chart by province and month is a
# few hundred rows).
STATS_ROWS_PER_DIMENSION = 100


def plain_argument(value: Any) -> Any:
    """An argument as graphql-core coerced it (GraphQL names, unset fields as None,
    enums as members) in the form of the shared `where` grammar (db.filters.EventWhere)."""
    if isinstance(value, dict):
        return {key: plain_argument(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [plain_argument(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    return value


def event_filter_of(where: dict[str, Any]) -> EventFilter:
    """The filter of a `where` argument as graphql-core coerced it (pydantic's
    ValidationError when it is not one); a value the filter refuses is BAD_USER_INPUT
    naming `where.<path>`, as the resolvers' EventWhere.to_filter names it."""
    try:
        return EventWhereGrammar.model_validate(plain_argument(where)).to_filter()
    except FilterError as exc:
        raise bad_filter(exc, within="where") from exc


def cost_limit_error(exc: CostLimitExceeded, nodes: Any = None) -> GraphQLError:
    return GraphQLError(str(exc), nodes=nodes, extensions={
        "code": "COST_LIMIT_EXCEEDED", "argument": exc.parameter, "limit": exc.limit, "given": exc.given})


@dataclass
class _Walk:
    schema: GraphQLSchema
    variables: dict[str, Any]
    fragments: dict[str, FragmentDefinitionNode]
    limits: Limits
    extra_points: int = 0  # what filters add (db.cost.filter_charge, in points)
    seen: set[int] = field(default_factory=set)  # argument checks: once per field node

    def selection_points(self, selection_set: SelectionSetNode | None, parent: Any, page: int | None = None) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field_points(selection, parent, page)
            elif isinstance(selection, InlineFragmentNode):
                on = self.schema.get_type(selection.type_condition.name.value) if selection.type_condition else parent
                total += self.selection_points(selection.selection_set, on, page)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:  # (validation refused unknown and cyclic fragments)
                    on = self.schema.get_type(fragment.type_condition.name.value)
                    total += self.selection_points(fragment.selection_set, on, page)
        return total

    def field_points(self, node: FieldNode, parent: Any, page: int | None) -> int:
        fields = getattr(parent, "fields", None)
        definition = fields.get(node.name.value) if fields else None
        if definition is None:  # __typename and the like
            return 0
        args = get_argument_values(definition, node, self.variables)
        self.check_arguments(node, args)
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            return 0
        return_type = definition.type.of_type if isinstance(definition.type, GraphQLNonNull) else definition.type
        first = args.get("first") if "first" in definition.args else None
        under = self.selection_points(node.selection_set, named, page=first)
        if "groupBy" in args:  # eventStats: rows of scalars
            count = STATS_ROWS_PER_DIMENSION * max(1, len(args["groupBy"])) * (2 if args.get("fill") else 1)
        elif is_list_type(return_type):
            # a page's list (a connection's edges, the change feed's data) holds `first`;
            # other lists of objects, LIST_ITEMS
            count = page if page is not None and node.name.value in PAGE_LISTS else LIST_ITEMS
        else:
            count = 1
        if args.get("asOf") is not None and first is not None:
            under *= AS_OF_FACTOR
        # (events, eventStats collapsed by happening)
        return count * (1 + under) * (COLLAPSE_FACTOR if args.get("collapse") is not None else 1)

    def check_arguments(self, node: FieldNode, args: dict[str, Any]) -> None:
        """The REST limits, on the arguments named as in GraphQL (`where.q`, `first`)."""
        if id(node) in self.seen:
            return
        self.seen.add(id(node))
        try:
            if isinstance(args.get("first"), int):
                check_page(args["first"], self.limits, parameter="first")
            if "groupBy" in args:
                check_stats(tuple(args["groupBy"]), self.limits, parameter="groupBy")
            where = args.get("where")
            if isinstance(where, dict):
                try:
                    event_filter = event_filter_of(where)
                except (ValidationError, GraphQLError):
                    return  # the resolver says what is wrong with it
                size = check_filter(event_filter, self.limits, top_level_name=lambda name: f"where.{to_camel_case(name)}")
                self.extra_points += filter_charge(size) * POINTS_PER_UNIT
            for name in ("q", "claimant", "kind", "predicate", "stance"):  # the other lists' filters
                value = args.get(name)
                if isinstance(value, str):
                    at_most(name, len(value), self.limits.q_length, "characters")
                elif isinstance(value, list):
                    at_most(name, len(value), self.limits.filter_values, "values")
        except CostLimitExceeded as exc:
            raise cost_limit_error(exc, [node]) from exc


def operation_points(schema: GraphQLSchema, operation: OperationDefinitionNode,
                     fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any],
                     limits: Limits = LIMITS) -> int:
    """The operation's points; a GraphQLError (COST_LIMIT_EXCEEDED) if an argument is
    over a limit. `variables`: as coerced for the operation."""
    root = schema.get_root_type(operation.operation)
    walk = _Walk(schema, variables, fragments, limits)
    points = walk.selection_points(operation.selection_set, root)
    return points + walk.extra_points


class CostLimit(SchemaExtension):
    """Prices the operation before it runs: over a limit, the operation is refused
    whole with a COST_LIMIT_EXCEEDED error (`argument` and `limit`, or the operation's
    `cost` and `maxCost`); under, its cost is charged once (GraphQLContext.charge)."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        refusal = await self._price_and_charge() if context.graphql_document is not None else None
        if refusal is not None:
            context.result = ExecutionResult(data=None, errors=[refusal])
        yield

    async def _price_and_charge(self) -> GraphQLError | None:
        context = self.execution_context
        schema = context.schema._schema
        operation = operation_of(schema, context.graphql_document, context.operation_name, context.variables)
        if operation is None:
            return None  # graphql-core's execution says what is wrong
        try:
            points = operation.derived("points", lambda: operation_points(
                schema, operation.definition, operation.fragments, operation.variables, LIMITS))
        except GraphQLError as error:
            return error
        if points > LIMITS.graphql_points:
            return GraphQLError(
                f"This operation costs {points} points, more than the limit of {LIMITS.graphql_points}: ask for "
                "fewer items (first) or fewer nested lists.", nodes=[operation.definition],
                extensions={"code": "COST_LIMIT_EXCEEDED", "cost": points, "maxCost": LIMITS.graphql_points})
        charge = getattr(context.context, "charge", None)
        if charge is not None:
            try:
                await charge(operation_charge(points))
            except QuotaExceeded as exc:
                return GraphQLError(exc.detail, extensions={"code": "RATE_LIMITED", "retryAfter": exc.retry_after})
        return None
