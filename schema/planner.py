"""GraphQL reads planned into SQL: a query whose every field the planner knows is
answered by PostgreSQL building the records' JSON with exactly the selected fields
(db/graph.py), one statement per list or record whatever the depth, instead of
resolvers completing each field in Python (a page of 100 events with their place,
actors and claims is ~2,000 fields).

It runs after parsing, validation and the cost limits (schema/cost.py), as a schema
extension that answers the operation before graphql-core's execution would: through
strawberry's documented `on_execute` hook (setting the result skips execution). What
it does not know (mutations, `asOf`, `matches`, a happening's records, a selection
on a type without SQL) takes the resolvers' path, whole; tests/test_graphql_planner.py
checks that both paths give the same answer on a wide set of queries. The lists and
filters are the query layer's own (db/queries), only the records' JSON differs, so
paging, cursors, totals and errors are those of the resolvers.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLIncludeDirective,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    located_error,
)
from graphql.execution.values import get_argument_values, get_directive_values
from graphql.pyutils import gather_with_cancel
from sqlalchemy.exc import DBAPIError
from strawberry.extensions import SchemaExtension
from strawberry.utils.str_converters import to_camel_case

from db import graph
from db.cache import answering_request, guessing
from db.filters import EventFilter
from db.metrics import GRAPHQL_OPERATIONS
from db.pagination import Page, PageRequest
from db.queries import actors, claims, documents, events, places, stats
from db.queries.common import ids_only, parse_uuid
from db.queries.stats import StatsRequest, parse_group_by
from schema.cost import event_filter_of, plain_argument
from schema.operation import Operation, operation_of
from schema.paging import check_first, user_errors
from schema.types import EventStat

class Unplanned(Exception):
    """The operation (or a part of it) is not the planner's: the resolvers answer it."""


# GraphQL's field names per declared type (strawberry names a field by to_camel_case
# of its Python name, so the declarations' names map exactly).
_GRAPHQL_NAMES = {name: {to_camel_case(field): field for field in record.fields}
                  for name, record in graph.TYPES.items()}


@dataclass
class _Walk:
    """Turns a document's selections into db.graph selections, as graphql-core collects
    fields: fragments inlined, @skip and @include applied, same keys merged."""
    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: Any  # graphql-core's coerced variable values

    def included(self, node: Any) -> bool:
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip is not None and skip["if"]:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return include is None or include["if"]

    def collect(self, type_: GraphQLObjectType, nodes: list[FieldNode]) -> dict[str, list[FieldNode]]:
        """The fields selected under `nodes` on `type_`, by response key, in order."""
        fields: dict[str, list[FieldNode]] = {}

        def visit(selection_set: SelectionSetNode | None) -> None:
            for selection in selection_set.selections if selection_set else ():
                if not self.included(selection):
                    continue
                if isinstance(selection, FieldNode):
                    key = selection.alias.value if selection.alias else selection.name.value
                    fields.setdefault(key, []).append(selection)
                    continue
                if isinstance(selection, FragmentSpreadNode):
                    fragment = self.fragments[selection.name.value]
                    condition, under = fragment.type_condition, fragment.selection_set
                else:
                    assert isinstance(selection, InlineFragmentNode)
                    condition, under = selection.type_condition, selection.selection_set
                if condition is not None and condition.name.value != type_.name:
                    raise Unplanned(f"a fragment on {condition.name.value} inside {type_.name}")
                visit(under)

        for node in nodes:
            visit(node.selection_set)
        return fields

    def selection(self, type_: GraphQLObjectType, nodes: list[FieldNode]) -> graph.Selection:
        """What `nodes` select on a declared type, as db/graph.py takes it."""
        names = _GRAPHQL_NAMES.get(type_.name)
        if names is None:
            raise Unplanned(f"no SQL for {type_.name}")
        selected = []
        for key, field_nodes in self.collect(type_, nodes).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                selected.append((key, graph.TYPENAME, None))
                continue
            if name not in names or type_.fields[name].args:
                raise Unplanned(f"no SQL for {type_.name}.{name}")
            named = get_named_type(type_.fields[name].type)
            under = self.selection(named, field_nodes) if isinstance(named, GraphQLObjectType) else None
            selected.append((key, names[name], under))
        return tuple(selected)

    def arguments(self, parent: GraphQLObjectType, node: FieldNode) -> dict[str, Any]:
        return get_argument_values(parent.fields[node.name.value], node, self.variables)


# ---- lists (Relay connections) and single records


@dataclass(frozen=True)
class _ConnectionShape:
    """What a connection's selection asks for: per key, a part and its details."""
    type_name: str
    parts: tuple[tuple[str, str, Any], ...]  # (key, "edges" | "pageInfo" | "totalCount" | "__typename", detail)

    @property
    def wants_total(self) -> bool:
        return any(part == "totalCount" for _, part, _ in self.parts)

    def node_selections(self) -> list[graph.Selection]:
        """The distinct selections of the nodes (one per alias of `edges`, usually one)."""
        found: list[graph.Selection] = []
        for _, part, edge in self.parts:
            if part == "edges":
                for _, edge_part, node in edge:
                    if edge_part == "node" and node not in found:
                        found.append(node)
        return found


def _connection_shape(walk: _Walk, type_: GraphQLObjectType, nodes: list[FieldNode],
                      record: str) -> _ConnectionShape:
    parts: list[tuple[str, str, Any]] = []
    for key, field_nodes in walk.collect(type_, nodes).items():
        name = field_nodes[0].name.value
        if name == "edges":
            edge_type = get_named_type(type_.fields["edges"].type)
            edge = []
            for edge_key, edge_nodes in walk.collect(edge_type, field_nodes).items():
                edge_name = edge_nodes[0].name.value
                if edge_name == "node":
                    node_type = get_named_type(edge_type.fields["node"].type)
                    edge.append((edge_key, "node", walk.selection(node_type, edge_nodes)))
                else:  # cursor, __typename
                    edge.append((edge_key, edge_name, edge_type.name))
            parts.append((key, "edges", tuple(edge)))
        elif name == "pageInfo":
            info_type = get_named_type(type_.fields["pageInfo"].type)
            parts.append((key, "pageInfo", tuple((k, n[0].name.value, info_type.name)
                                                for k, n in walk.collect(info_type, field_nodes).items())))
        else:  # totalCount, __typename
            parts.append((key, name, type_.name))
    return _ConnectionShape(type_.name, tuple(parts))


def _assemble_connection(shape: _ConnectionShape, page: Page, records: dict[graph.Selection, list[Any]]
                         ) -> dict[str, Any]:
    """The connection's answer from its page and its nodes' records (by selection, in
    the page's order)."""
    count = len(page.rows)
    # (a record gone since its page was read has no edge)
    present = [i for i in range(count) if all(found[i] is not None for found in records.values())]
    answer: dict[str, Any] = {}
    for key, part, detail in shape.parts:
        if part == "edges":
            if len(detail) == 1 and detail[0][1] == "node":  # the usual `edges { node { ... } }`
                edge_key, _, node = detail[0]
                found = records[node]
                answer[key] = [{edge_key: found[index]} for index in present]
                continue
            edges = []
            for index in present:
                edge: dict[str, Any] = {}
                for edge_key, edge_part, node in detail:
                    if edge_part == "node":
                        edge[edge_key] = records[node][index]
                    elif edge_part == "cursor":
                        edge[edge_key] = page.cursor_at(index)
                    else:
                        edge[edge_key] = node  # __typename: the edge type's name
                edges.append(edge)
            answer[key] = edges
        elif part == "pageInfo":
            answer[key] = {info_key: page.has_next if name == "hasNextPage"
                           else (page.cursor_at(-1) if count else None) if name == "endCursor" else type_name
                           for info_key, name, type_name in detail}
        elif part == "totalCount":
            answer[key] = page.total
        else:
            answer[key] = shape.type_name
    return answer


async def _records(context: Any, record: str, selection: graph.Selection, ids: list[UUID],
                   parse: bool = False) -> list[Any]:
    """The records' JSON in the order of the ids (None for one that is gone): as it came
    from PostgreSQL, spliced into the answer by orjson unread (orjson.Fragment), or
    parsed when the caller adds to it."""
    wrap = orjson.loads if parse else orjson.Fragment
    return [None if text is None else wrap(text) for text in await context.db(graph.records, record, selection, ids)]


# A root field's plan: made from the document without touching the database, run later.
RootRun = Callable[[Any], Awaitable[Any]]


def _list_plan(walk: _Walk, nodes: list[FieldNode], parent: GraphQLObjectType, record: str,
               list_page: Callable[..., Awaitable[Page]], query: Callable[[dict[str, Any]], tuple[tuple, dict]],
               annotate: tuple[str, ...] = (), with_records: bool = False) -> RootRun:
    """A connection over a query-layer list: `query(arguments)` gives the list's own
    arguments and keywords; `annotate`: per-row figures of the page (an event's
    distance) copied into the records under their keys. `with_records`: the list can
    bring its records in its page's own statement (list_events), which it is asked to
    when the nodes have one selection and no figure of the page."""
    arguments = walk.arguments(parent, nodes[0])
    shape = _connection_shape(walk, get_named_type(parent.fields[nodes[0].name.value].type), nodes, record)

    # (a plan serves every request of its query: worked out once, unless it fails)
    list_arguments = functools.cache(lambda: query(arguments))

    selections = shape.node_selections()
    fused = None
    if with_records and len(selections) == 1 and not any(name in annotate for _, name, _ in selections[0]):
        fused = (selections[0], functools.partial(graph.with_records, record, selections[0]))

    async def run(context: Any) -> Any:
        check_first(arguments["first"])
        request = PageRequest(limit=arguments["first"], cursor=arguments.get("after"), count=shape.wants_total)
        with user_errors():
            args, kwargs = list_arguments()
            page = await context.db(list_page, request, context.codec, context.cache, *args, trees=ids_only,
                                    **({"with_records": fused} if fused else {}), **kwargs)
        if fused and all("record" in row for row in page.rows):  # (a first page: its records came with it)
            return _assemble_connection(shape, page, {fused[0]: [orjson.Fragment(row["record"])
                                                                 for row in page.rows]})
        ids = [row["id"] for row in page.rows]
        records = {}
        for selection in selections:
            keys = [(key, name) for key, name, _ in selection if name in annotate]
            found = records[selection] = await _records(context, record, selection, ids, parse=bool(keys))
            for row, tree in zip(page.rows, found):
                for key, name in keys:
                    if tree is not None:
                        tree[key] = row.get(name)
        return _assemble_connection(shape, page, records)

    return run


def _record_plan(walk: _Walk, nodes: list[FieldNode], parent: GraphQLObjectType, record: str,
                 resolve: Callable[[Any, str], Awaitable[UUID | None]] | None = None) -> RootRun:
    """One record by its id, or by another reference `resolve` knows (an event's
    external id), in the argument `id`; None when there is none."""
    arguments = walk.arguments(parent, nodes[0])
    selection = walk.selection(get_named_type(parent.fields[nodes[0].name.value].type), nodes)

    async def run(context: Any) -> Any:
        ref = str(arguments["id"])
        # (an id is looked up by the records' statement itself: an unknown one gives none)
        record_id = parse_uuid(ref) or (await context.db(resolve, ref) if resolve else None)
        return (await _records(context, record, selection, [record_id]))[0] if record_id else None

    return run


def _event_filter(arguments: dict[str, Any]) -> EventFilter:
    where = arguments.get("where")
    return event_filter_of(where) if where is not None else EventFilter()


def _events(walk: _Walk, nodes: list[FieldNode], parent: GraphQLObjectType) -> RootRun:
    arguments = walk.arguments(parent, nodes[0])
    if arguments.get("asOf") is not None:
        raise Unplanned("asOf")  # (the records as they stood then: db/queries/history.py)

    def query(args: dict[str, Any]) -> tuple[tuple, dict]:
        return (_event_filter(args),), {"sort": plain_argument(args["orderBy"]), "collapse": args.get("collapse")}

    return _list_plan(walk, nodes, parent, "Event", events.list_events, query, annotate=("distance_km",),
                      with_records=True)


def _event(walk: _Walk, nodes: list[FieldNode], parent: GraphQLObjectType) -> RootRun:
    if walk.arguments(parent, nodes[0]).get("asOf") is not None:
        raise Unplanned("asOf")
    return _record_plan(walk, nodes, parent, "Event", events.resolve_event_id)


def _claims(walk: _Walk, nodes: list[FieldNode], parent: GraphQLObjectType) -> RootRun:
    def query(args: dict[str, Any]) -> tuple[tuple, dict]:
        where = claims.ClaimFilter(
            event=str(args["event"]) if args.get("event") is not None else None,
            claimant=tuple(args.get("claimant") or ()),
            stance=tuple(plain_argument(s) for s in args.get("stance") or ()),
            predicate=tuple(args.get("predicate") or ()))
        return (where,), {}

    return _list_plan(walk, nodes, parent, "Claim", claims.list_claims, query)


def _named_list(record: str, list_page: Callable[..., Awaitable[Page]], *, with_parent: bool = False) -> Callable:
    """actors / places: `q`, `kind` (and `parent` for places)."""
    def plan(walk: _Walk, nodes: list[FieldNode], parent: GraphQLObjectType) -> RootRun:
        def query(args: dict[str, Any]) -> tuple[tuple, dict]:
            keywords = {"q": args.get("q"), "kind": tuple(args.get("kind") or ())}
            if with_parent:
                keywords["parent"] = str(args["parent"]) if args.get("parent") is not None else None
            return (), keywords

        return _list_plan(walk, nodes, parent, record, list_page, query)

    return plan


def _documents(walk: _Walk, nodes: list[FieldNode], parent: GraphQLObjectType) -> RootRun:
    return _list_plan(walk, nodes, parent, "Document", documents.list_documents, lambda args: ((), {}))


def _by_uuid(record: str) -> Callable:
    def plan(walk: _Walk, nodes: list[FieldNode], parent: GraphQLObjectType) -> RootRun:
        return _record_plan(walk, nodes, parent, record)

    return plan


# eventStats' rows carry the keys asked for; the others take EventStat's defaults.
_STAT_DEFAULTS = {to_camel_case(f.name): (f.name, f.default) for f in dataclasses.fields(EventStat)}


def _event_stats(walk: _Walk, nodes: list[FieldNode], parent: GraphQLObjectType) -> RootRun:
    arguments = walk.arguments(parent, nodes[0])
    stat_type = get_named_type(parent.fields[nodes[0].name.value].type)
    keys = [(key, nodes[0].name.value) for key, nodes in walk.collect(stat_type, nodes).items()]

    event_filter = functools.cache(lambda: _event_filter(arguments))

    async def run(context: Any) -> Any:
        with user_errors():
            request = StatsRequest(group_by=parse_group_by([plain_argument(d) for d in arguments["groupBy"]]),
                                   fill=arguments["fill"], collapse=arguments.get("collapse"))
            rows = await context.db(stats.event_stats, context.cache, event_filter(), request)
        shaped = []
        for row in orjson.loads(rows):
            shaped.append({key: stat_type.name if name == "__typename"
                           else row.get(_STAT_DEFAULTS[name][0], _STAT_DEFAULTS[name][1]) for key, name in keys})
        return shaped

    return run


ROOTS: dict[str, Callable[[_Walk, list[FieldNode], GraphQLObjectType], RootRun]] = {
    "events": _events,
    "event": _event,
    "eventStats": _event_stats,
    "claims": _claims,
    "actors": _named_list("Actor", actors.list_actors),
    "actor": _by_uuid("Actor"),
    "places": _named_list("Place", places.list_places, with_parent=True),
    "place": _by_uuid("Place"),
    "documents": _documents,
    "document": _by_uuid("Document"),
}


@dataclass
class OperationPlan:
    roots: list[tuple[str, list[FieldNode], bool, RootRun]]  # key, nodes, nullable, run
    # Whether it filters events (or counts them): then the request is answered at one
    # data generation (its names resolved, its totals and stats), guessed when it can
    # be (db.cache.guessing: no round trip of its own), else read first.
    filters_events: bool = False

    async def run(self, context: Any) -> ExecutionResult:
        """The answer, with errors where the resolvers would put them: a root's error
        nulls it, or the whole data when the root cannot be null (and, as graphql-core
        cancels the other roots then, ends the operation). The roots start together, as
        graphql-core runs a query's, so when several fail the error that ends the
        operation is the one that happens first there too (a bad `first` before a
        filter that has to ask the database)."""
        context.reads_only()
        if not self.filters_events:
            return await self._run(context)
        reader = context.cache.read_generation
        guess = getattr(reader, "last_seen", None)
        # The generation is guessed (no round trip before the statements, a third of a
        # small query's time) when this process has seen one; a wrong guess costs the
        # answer made again, after writes only.
        if guess is not None:
            with guessing(guess, fresh=context.fresh) as reported:
                result = await self._run(context)
            if reported:
                generation = reader.last_seen = next((seen for seen in reported if seen != guess), guess)
            else:
                generation = await self._generation(context)
            # (an answer that failed on the database, not on its input, is not made again:
            # what failed may have left the request's connection unusable)
            if generation in (guess, None) or _failed_on_the_database(result):
                return result
        else:
            generation = await self._generation(context)
        if generation is None:
            return await self._run(context)
        with answering_request(generation, fresh=context.fresh):
            return await self._run(context)

    @staticmethod
    async def _generation(context: Any) -> str | None:
        try:
            return await context.cache.read_generation()
        except Exception:  # noqa: BLE001 - the database is down: the statements say so where they fail
            return None

    async def _run(self, context: Any) -> ExecutionResult:
        errors: list[GraphQLError] = []

        async def answer(key: str, nodes: list[FieldNode], nullable: bool, run: RootRun) -> Any:
            try:
                return await run(context)
            except Exception as error:  # noqa: BLE001 - as graphql-core's execute_field
                located = located_error(error, nodes, [key])
                if not nullable:
                    raise located from error
                errors.append(located)
                return None

        try:
            if len(self.roots) == 1:  # (the usual query: no task to start)
                values = [await answer(*self.roots[0])]
            else:
                values = await gather_with_cancel(*(answer(*root) for root in self.roots))
        except GraphQLError as error:
            return ExecutionResult(data=None, errors=[*errors, error])
        return ExecutionResult(data={key: value for (key, *_), value in zip(self.roots, values)},
                               errors=errors or None)


# What a statement raises when the database, not the request, failed.
_DATABASE_FAILURES = (DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)


def _failed_on_the_database(result: ExecutionResult) -> bool:
    return any(isinstance(error.original_error, _DATABASE_FAILURES) for error in result.errors or ())


def plan_operation(schema: GraphQLSchema, document: Any, operation_name: str | None,
                   raw_variables: dict[str, Any] | None) -> OperationPlan | None:
    """The plan of a query whose every field the planner knows; None otherwise."""
    operation = operation_of(schema, document, operation_name, raw_variables)
    if operation is None or operation.definition.operation is not OperationType.QUERY:
        return None
    return operation.derived("plan", lambda: _plan(schema, operation))


def _plan(schema: GraphQLSchema, operation: Operation) -> OperationPlan | None:
    walk = _Walk(schema, operation.fragments, operation.variables)
    root = schema.query_type
    roots = []
    try:
        for key, nodes in walk.collect(root, [operation.definition]).items():
            name = nodes[0].name.value
            if name not in ROOTS:
                return None
            nullable = not isinstance(root.fields[name].type, GraphQLNonNull)
            roots.append((key, nodes, nullable, ROOTS[name](walk, nodes, root)))
    except (Unplanned, graph.NotDeclared):
        return None
    if not roots:
        return None
    return OperationPlan(roots, filters_events=any(nodes[0].name.value in ("events", "eventStats")
                                                   for _, nodes, _, _ in roots))


class PlannedReads(SchemaExtension):
    """Answers a query through its plan when it has one (see the module); placed after
    the cost limits, so a refused operation never reaches it."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        if context.result is None:  # (else refused by the cost limits)
            plan = None
            if context.graphql_document is not None and getattr(context.context, "plan_reads", False):
                plan = plan_operation(context.schema._schema, context.graphql_document, context.operation_name,
                                      context.variables)
            if plan is not None:
                context.result = await plan.run(context.context)
            GRAPHQL_OPERATIONS.labels("planned" if plan is not None else "resolved").inc()
        yield
