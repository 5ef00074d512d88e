"""The executor's plain-field shortcuts (schema/execution.py) answer exactly what
graphql-core's own path answers: the same data, and the same errors at the same paths
with null where the type allows it, on the seed's events and on a schema built to
break every rule."""

from __future__ import annotations

import asyncio
from enum import Enum

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import Info

import schema.app
from schema.execution import NOT_READY, PLAIN_READ, PlainFieldExecutionContext
from tests.test_graphql import EVENTS, gql


@strawberry.enum
class Colour(Enum):
    RED = "red"


def _plain_read_or_load(key: str):
    """A resolver like schema/types.py's from_tree: plain when the dict has the key."""
    def resolve(self, info: Info) -> str | None:
        async def load() -> str:
            await asyncio.sleep(0)
            return f"loaded {key}"
        return self.data[key] if key in self.data else load()

    setattr(resolve, PLAIN_READ, lambda node: node.data[key] if key in node.data else NOT_READY)
    return resolve


@strawberry.type
class Leaf:
    data: strawberry.Private[dict]
    name: str                      # non-null: None here is an error that nulls the parent
    count: int | None              # a value Int refuses is an error, the field null
    tags: list[str]                # a None inside is an error
    colour: Colour | None
    note: str | None = strawberry.field(resolver=_plain_read_or_load("note"))

    @strawberry.field
    async def slow(self) -> str:
        await asyncio.sleep(0)
        return self.name.upper() if self.name else "?"


@strawberry.type
class Branch:
    leaf: Leaf | None
    strict_leaf: Leaf
    leaves: list[Leaf | None]
    strict_leaves: list[Leaf]


def _leaf(name, count=1, tags=("a",), note=None):
    data = {} if note is None else {"note": note}
    return Leaf(data=data, name=name, count=count, tags=list(tags), colour=Colour.RED)


GOOD = _leaf("good", note="kept")
NULL_NAME = _leaf(None)
BAD_COUNT = _leaf("bad count", count="many")
NULL_TAG = _leaf("null tag", tags=("a", None))


@strawberry.type
class Query:
    @strawberry.field
    def branches(self) -> list[Branch]:
        return [
            Branch(leaf=GOOD, strict_leaf=GOOD, leaves=[GOOD, None, BAD_COUNT], strict_leaves=[GOOD, NULL_TAG]),
            Branch(leaf=NULL_NAME, strict_leaf=GOOD, leaves=[NULL_NAME, GOOD], strict_leaves=[GOOD]),
            Branch(leaf=GOOD, strict_leaf=NULL_NAME, leaves=[], strict_leaves=[GOOD, NULL_NAME]),
            Branch(leaf=None, strict_leaf=BAD_COUNT, leaves=[BAD_COUNT], strict_leaves=[NULL_TAG]),
        ]


LEAF_FIELDS = "name count tags colour note slow __typename"
DOCUMENTS = [
    f"{{ branches {{ leaf {{ {LEAF_FIELDS} }} strictLeaf {{ {LEAF_FIELDS} }} }} }}",
    f"{{ branches {{ leaves {{ {LEAF_FIELDS} }} strictLeaves {{ {LEAF_FIELDS} }} }} }}",
    "{ branches { leaf { n: name c: count } again: leaf { name tags } strictLeaves { ...L } } }"
    " fragment L on Leaf { name colour ... on Leaf { note } }",
    "query ($yes: Boolean!) { branches { leaves { name @include(if: $yes) count @skip(if: $yes) note } } }",
    "{ branches { leaf { slow note } } }",
]


def _answer(result) -> tuple:
    errors = sorted((e.message, tuple(e.path or ())) for e in result.errors or [])
    return result.data, errors


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_shortcuts_answer_what_graphql_core_answers(document):
    fast = strawberry.Schema(query=Query, execution_context_class=PlainFieldExecutionContext)
    stock = strawberry.Schema(query=Query, execution_context_class=StrawberryGraphQLCoreExecutionContext)
    expected = _answer(await stock.execute(document, variable_values={"yes": True}))
    assert _answer(await fast.execute(document, variable_values={"yes": True})) == expected
    assert expected[1] or "slow note" in document, "each of the others meets errors"


async def test_a_page_of_seeded_events_is_the_same_through_graphql_core(client, monkeypatch):
    fragments = """query ($first: Int) { events(first: $first) { edges { node { ...E alias: place { n: name } } } } }
      fragment E on Event { id dateStart fatalities { best claimIds } place { name ancestors { name iso3 } aliases }
        actors { role status actor { name aliases memberships { group { name } validFrom } } }
        claims { stance quote @include(if: true) claimant { name aliases } document { publisher language }
                 value { low actor { name } place { name } } } }"""
    fast = [await gql(client, EVENTS, first=500), await gql(client, fragments, first=500)]
    monkeypatch.setattr(schema.app.schema, "execution_context_class", StrawberryGraphQLCoreExecutionContext)
    stock = [await gql(client, EVENTS, first=500), await gql(client, fragments, first=500)]
    assert fast == stock
    assert "errors" not in fast[0] and "errors" not in fast[1]
    assert len(fast[0]["data"]["events"]["edges"]) >= 10
