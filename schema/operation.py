"""The operation a GraphQL request runs, worked out once per query text, operation name
and variables.

A client (a frontend, a script paging through a list) sends the same query over and
over; strawberry's caches already skip parsing and validating it again (the same text
gives the same document object). What comes after, choosing the operation, coercing
its variables, pricing it (schema/cost.py) and planning it (schema/planner.py), is
the same every time too, and is kept here with the operation: ~0.3 ms of a small
read's 2.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from graphql import DocumentNode, FragmentDefinitionNode, GraphQLSchema, OperationDefinitionNode
from graphql.execution.values import get_variable_values

T = TypeVar("T")

# How many (document, operation, variables) are kept, most recently used first, and
# the longest variables kept (as JSON; longer ones are worked out each time).
KEPT_OPERATIONS = 512
KEPT_VARIABLES_BYTES = 4096


@dataclass(eq=False)
class Operation:
    document: DocumentNode  # (held, so that the id in its key stays its own)
    definition: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    variables: Any  # as graphql-core coerced them for the operation
    _derived: dict[str, Any] = field(default_factory=dict)

    def derived(self, name: str, make: Callable[[], T]) -> T:
        """`make()`'s value, worked out at the first call for this operation and
        variables (it must depend on nothing else); one that raises is not kept."""
        if name not in self._derived:
            self._derived[name] = make()
        return self._derived[name]


_kept: OrderedDict[tuple, Operation | None] = OrderedDict()


def operation_of(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
                 raw_variables: dict[str, Any] | None) -> Operation | None:
    """The operation a request runs, its document's fragments and its coerced
    variables; None when graphql-core's execution will say what is wrong (no such
    operation, bad variables)."""
    try:
        variables_key = orjson.dumps(raw_variables, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # (variables that are not JSON: not from a request)
        variables_key = None
    if variables_key is None or len(variables_key) > KEPT_VARIABLES_BYTES:
        return _operation(schema, document, operation_name, raw_variables)
    key = (id(document), operation_name, variables_key)
    if key in _kept:
        operation = _kept[key]
        if operation is None or operation.document is document:
            _kept.move_to_end(key)
            return operation
    operation = _kept[key] = _operation(schema, document, operation_name, raw_variables)
    if len(_kept) > KEPT_OPERATIONS:
        _kept.popitem(last=False)
    return operation


def _operation(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
               raw_variables: dict[str, Any] | None) -> Operation | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if operation_name is None or
              (o.name is not None and o.name.value == operation_name)]
    if len(chosen) != 1:
        return None
    definition = chosen[0]
    variables = get_variable_values(schema, definition.variable_definitions or [], raw_variables or {})
    if isinstance(variables, list):
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    return Operation(document, definition, fragments, variables)
