"""Load the full trees a query's selection needs, one batch per type, before execution.

A node made from its parent's tree (an event's actor, a claim's claimant) holds only
what every tree has; a field beyond that (an actor's `aliases`) would load the node's
full tree through the dataloader. The dataloader batches those loads into one query,
but graphql-core still awaits each field of each node on its own: ~150 awaitables
for the actors of a page of events, a third of the time the page takes.

So before the nodes are returned, the selection is walked alongside them: wherever
the nodes of a loadable type have a field selected that needs their full tree, all
of them are loaded in one batch and their trees replaced, and their fields then
resolve without awaiting. The loaders stay as they were for anything this walk does
not reach (a field of an ancestor place, say).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

from strawberry.types import Info
from strawberry.types.base import get_object_definition
from strawberry.types.field import StrawberryField
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

_fields_by_name: dict[type, dict[str, StrawberryField]] = {}


def _fields(info: Info, cls: type) -> dict[str, StrawberryField]:
    """The strawberry fields of a type by their GraphQL names."""
    try:
        return _fields_by_name[cls]
    except KeyError:
        definition = get_object_definition(cls)
        converter = info.schema.config.name_converter
        fields = {converter.get_graphql_name(f): f for f in definition.fields} if definition else {}
        return _fields_by_name.setdefault(cls, fields)


def _flatten(selections: list[Selection]) -> list[SelectedField]:
    """The fields selected, through fragments (whatever their type condition: the
    types walked here are concrete, and loading for a fragment that does not apply
    costs a query, never a wrong answer)."""
    fields: list[SelectedField] = []
    for selection in selections:
        if isinstance(selection, (FragmentSpread, InlineFragment)):
            fields.extend(_flatten(selection.selections))
        else:
            fields.append(selection)
    return fields


def selections_at(selections: list[Selection], path: list[str]) -> list[Selection]:
    """What is selected under the nested fields `path` (edges, node), through fragments."""
    for name in path:
        selections = [child for s in _flatten(selections) if s.name == name for child in s.selections]
    return selections


async def load_selected_trees(info: Info, nodes: list[Any], selections: list[Selection]) -> None:
    """Give `nodes` (objects of one type) and the objects under them the trees
    `selections` needs, one load per type and level."""
    if not nodes:
        return
    fields = _fields(info, type(nodes[0]))
    selected = [(s, fields[s.name]) for s in _flatten(selections) if s.name in fields]
    # what the `from_tree` fields selected read (schema/types.py)
    keys = {getattr(definition.base_resolver.wrapped_func, "tree_key", None)
            for _, definition in selected if definition.base_resolver} - {None}
    lacking = [node for node in nodes if any(node.needs_full_tree(key) for key in keys)]
    if lacking:
        loader = getattr(info.context, type(nodes[0])._loader)
        for node, tree in zip(lacking, await loader.load_many([UUID(node.tree["id"]) for node in lacking])):
            if tree is not None:
                node.tree = tree
    # Objects under plain attributes (a claim's claimant, an event's actors) exist
    # already; what a resolver makes (a place's ancestors) is made later and left to
    # the loaders.
    for selection, definition in selected:
        if not definition.is_basic_field or not selection.selections:
            continue
        children_by_type: dict[type, list[Any]] = defaultdict(list)
        for node in nodes:
            value = getattr(node, definition.python_name)
            for child in value if isinstance(value, list) else (value,):
                if child is not None:
                    children_by_type[type(child)].append(child)
        for children in children_by_type.values():
            await load_selected_trees(info, children, selection.selections)
