"""A faster path through graphql-core's executor for plain fields.

A page of 50 events with their places, actors and claims is ~1,900 fields, most of
them scalars read from an attribute (`name`, `stance`, `dateStart`). For each one
graphql-core builds a resolve-info object, looks up arguments, calls the resolver
and dispatches on the return type: ~12 µs a field, more than the SQL behind the page.

Here a field that strawberry would resolve by reading an attribute (a "basic" field:
no resolver, no field extension), or whose resolver offers a `plain_read` (see
PLAIN_READ), is read directly: a scalar or enum, or a list of them, is serialized on
the spot, and an object's (or a list of objects') selection is executed on it without
graphql-core's general value completion. Anything out of the ordinary (a null where
the type says non-null, a value the scalar refuses, an exception object, field
middleware from a schema extension) goes through graphql-core's own path, which
raises exactly the error it always did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (GraphQLField, GraphQLLeafType, GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLOutputType,
                     Undefined, is_leaf_type)
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

# A completer's answer when the value needs graphql-core's full treatment.
_SLOW = object()

# A resolver that can answer without strawberry's Info (from what its object already
# holds) carries, under this attribute, `read(source)`: the value, or NOT_READY when
# it needs the resolver proper (to load something).
PLAIN_READ = "plain_read"
NOT_READY = object()


def plain_read(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A resolver of one argument (its object) that always answers plainly."""
    def resolve(self: Any) -> Any:
        return read(self)

    resolve.__annotations__["return"] = read.__annotations__.get("return", Any)
    setattr(resolve, PLAIN_READ, read)
    return resolve
Completer = Callable[[Any], Any]


def _leaf_completer(leaf: GraphQLLeafType, non_null: bool) -> Completer:
    coerce = leaf.coerce_output_value

    def complete(value: Any) -> Any:
        if value is None:
            return _SLOW if non_null else None
        if isinstance(value, Exception):
            return _SLOW
        try:
            coerced = coerce(value)
        except Exception:  # noqa: BLE001 - the full path raises the located GraphQL error
            return _SLOW
        return _SLOW if coerced is Undefined or coerced is None else coerced

    return complete


def _list_completer(item: Completer, non_null: bool) -> Completer:
    def complete(value: Any) -> Any:
        if value is None:
            return _SLOW if non_null else None
        if not isinstance(value, (list, tuple)):
            return _SLOW
        completed = [item(v) for v in value]
        return _SLOW if any(c is _SLOW for c in completed) else completed

    return complete


def _completer(return_type: GraphQLOutputType) -> Completer | None:
    """How to complete a value of this type without graphql-core, or None if only
    graphql-core can (objects, interfaces, unions, nested lists)."""
    non_null = isinstance(return_type, GraphQLNonNull)
    inner = return_type.of_type if non_null else return_type
    if is_leaf_type(inner):
        return _leaf_completer(inner, non_null)
    if isinstance(inner, GraphQLList):
        item_type = inner.of_type
        item_non_null = isinstance(item_type, GraphQLNonNull)
        item_inner = item_type.of_type if item_non_null else item_type
        if is_leaf_type(item_inner):
            return _list_completer(_leaf_completer(item_inner, item_non_null), non_null)
    return None


class _PlainObjects:
    """Completes a basic field of an object type (or a list of them) by executing the
    selection on each object directly: graphql-core's complete_value, its dispatch on
    the type and its resolve-info object are skipped, and errors land where
    graphql-core puts them (the field's or the item's path, null where allowed)."""

    def __init__(self, read: Callable[[Any], Any], return_type: GraphQLOutputType):
        self.read = read
        self.return_type = return_type
        self.non_null = isinstance(return_type, GraphQLNonNull)
        inner = return_type.of_type if self.non_null else return_type
        self.is_list = isinstance(inner, GraphQLList)
        self.item_type = inner.of_type if self.is_list else inner
        self.object_type = self.item_type.of_type if isinstance(self.item_type, GraphQLNonNull) else self.item_type

    @property
    def applies(self) -> bool:
        # is_type_of: a type checked against interfaces (none here) takes the full path
        return isinstance(self.object_type, GraphQLObjectType) and self.object_type.is_type_of is None

    def __call__(self, context: PlainFieldExecutionContext, source: Any, field_details_list: Any, path: Path) -> Any:
        value = self.read(source)
        if value is NOT_READY:
            return _SLOW
        if value is None:
            return _SLOW if self.non_null else None
        items = value if self.is_list else None
        if self.is_list and (not isinstance(value, (list, tuple)) or any(item is None for item in value)):
            return _SLOW
        if isinstance(value, Exception):
            return _SLOW
        grouped_field_set, new_defer_usages, _ = context.collect_subfields(self.object_type, field_details_list)
        if new_defer_usages:
            return _SLOW  # @defer: graphql-core's incremental delivery
        # Nothing has run yet; from here on the fields execute, so no falling back.
        try:
            if items is None:
                return self._guard(context, context.execute_fields(self.object_type, value, path, grouped_field_set,
                                                                   None), self.return_type, field_details_list, path)
            completed: list[Any] = []
            for index, item in enumerate(items):
                item_path = path.add_key(index, None)
                try:
                    result = context.execute_fields(self.object_type, item, item_path, grouped_field_set, None)
                except Exception as error:  # noqa: BLE001 - as graphql-core's complete_list_item_value
                    context.handle_field_error(error, self.item_type, field_details_list, item_path)
                    result = None
                completed.append(self._guard(context, result, self.item_type, field_details_list, item_path))
        except Exception as error:  # noqa: BLE001 - as graphql-core's execute_field
            if items is not None:  # items done before the error may still be running
                context.settle_in_background([r for r in completed if context.is_awaitable(r)])
            context.handle_field_error(error, self.return_type, field_details_list, path)
            return None
        if not any(context.is_awaitable(result) for result in completed):
            return completed
        return self._gather(context, completed, field_details_list, path)

    @staticmethod
    def _guard(context: PlainFieldExecutionContext, result: Any, return_type: GraphQLOutputType,
               field_details_list: Any, path: Path) -> Any:
        """An awaitable result whose error is handled at `path` when it is awaited."""
        if not context.is_awaitable(result):
            return result

        async def guarded() -> Any:
            try:
                return await result
            except Exception as error:  # noqa: BLE001
                context.handle_field_error(error, return_type, field_details_list, path)
                return None

        return guarded()

    async def _gather(self, context: PlainFieldExecutionContext, completed: list[Any], field_details_list: Any,
                      path: Path) -> list[Any]:
        # Awaited together, so dataloaders still batch across the list.
        pending = [i for i, result in enumerate(completed) if context.is_awaitable(result)]
        try:
            for index, result in zip(pending, await gather_with_cancel(*(completed[i] for i in pending))):
                completed[index] = result
        except Exception as error:  # noqa: BLE001
            context.handle_field_error(error, self.return_type, field_details_list, path)
            return None
        return completed


LeafPlan = Callable[[Any], Any]  # source -> completed value, or _SLOW


def _read(field_def: GraphQLField) -> Callable[[Any], Any] | None:
    """How to read a field's value from its source object without strawberry's Info,
    if it can be: a basic field (no resolver, no field extension, no arguments) or a
    resolver offering a PLAIN_READ."""
    definition = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryField) or definition.extensions or field_def.args:
        return None
    if not definition.is_basic_field:
        return getattr(definition.base_resolver.wrapped_func, PLAIN_READ, None)
    resolver, name = definition.default_resolver, definition.python_name

    def read(source: Any) -> Any:
        return resolver(source, name)

    return read


def _leaf_plan(field_def: GraphQLField) -> LeafPlan | None:
    read = _read(field_def)
    complete = _completer(field_def.type) if read is not None else None
    if complete is None:
        return None

    def plan(source: Any) -> Any:
        value = read(source)
        return _SLOW if value is NOT_READY else complete(value)

    return plan


def _object_plan(field_def: GraphQLField) -> _PlainObjects | None:
    read = _read(field_def)
    plan = _PlainObjects(read, field_def.type) if read else None
    return plan if plan is not None and plan.applies else None


class PlainFieldExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """strawberry's execution context with the plain-field shortcuts (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Field middleware (a schema extension's `resolve`) must see every field.
        manager = self.middleware_manager
        self._shortcut = manager is None or not manager.middlewares
        self._leaf_plans: dict[tuple[str, str], LeafPlan | None] = {}
        self._object_plans: dict[tuple[str, str], _PlainObjects | None] = {}
        self._field_sets: dict[tuple[str, int], tuple[Any, list[tuple[str, Any, LeafPlan | None]]]] = {}

    def _plans_for(self, parent_type: GraphQLObjectType, field_name: str
                   ) -> tuple[LeafPlan | None, _PlainObjects | None]:
        key = (parent_type.name, field_name)
        try:
            return self._leaf_plans[key], self._object_plans[key]
        except KeyError:
            field_def = self.schema.get_field(parent_type, field_name)
            leaf = self._leaf_plans[key] = _leaf_plan(field_def) if field_def else None
            objects = self._object_plans[key] = _object_plan(field_def) if field_def and not leaf else None
            return leaf, objects

    def _leaf_plans_of(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> list[tuple[str, Any, Any]]:
        """(response name, field details, leaf plan or None) for each field of a selection
        on a type: worked out once per request (graphql-core memoizes the selection, so
        a list of 50 objects shares one)."""
        key = (parent_type.name, id(grouped_field_set))
        cached = self._field_sets.get(key)
        if cached is None or cached[0] is not grouped_field_set:
            entries = [(name, details, self._plans_for(parent_type, details[0].node.name.value)[0])
                       for name, details in grouped_field_set.items()]
            cached = self._field_sets[key] = (grouped_field_set, entries)  # holding it keeps its id unique
        return cached[1]

    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any, path: Path | None,
                       grouped_field_set: Any, position_context: Any) -> Any:
        """graphql-core's execute_fields with plain leaves completed inline (no Path,
        no execute_field call); other fields go through execute_field as before."""
        if not self._shortcut or position_context is not None:  # set inside @defer
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        results: dict[str, Any] = {}
        awaitable_fields: list[str] = []
        is_awaitable = self.is_awaitable
        try:
            for response_name, field_details_list, leaf in self._leaf_plans_of(parent_type, grouped_field_set):
                if leaf is not None:
                    try:
                        completed = leaf(source_value)
                    except Exception:  # noqa: BLE001 - nothing ran: the full path raises the located error
                        completed = _SLOW
                    if completed is not _SLOW:
                        results[response_name] = completed
                        continue
                result = self.execute_field(parent_type, source_value, field_details_list,
                                            Path(path, response_name, parent_type.name), None)
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[name] for name in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            awaited = await gather_with_cancel(*(results[name] for name in awaitable_fields))
            results.update(zip(awaitable_fields, awaited))
            return results

        return get_results()

    def execute_field(self, parent_type: GraphQLObjectType, source: Any, field_details_list: Any, path: Path,
                      position_context: Any) -> Any:
        if self._shortcut and position_context is None:
            _, objects = self._plans_for(parent_type, field_details_list[0].node.name.value)
            if objects is not None:
                try:
                    completed = objects(self, source, field_details_list, path)
                except Exception:  # noqa: BLE001 - raised before anything ran: the full path raises it located
                    completed = _SLOW
                if completed is not _SLOW:
                    return completed
        return super().execute_field(parent_type, source, field_details_list, path, position_context)
