"""GraphQL mutations: create, update and delete events, claims, actors, places and
documents (REST: POST, PATCH and DELETE under /v1, api/routes/writes.py).

Thin, as REST's routes are, over the same layer: the input becomes REST's body model
(schema/write_inputs.py), db/writes/records.py does the write in a transaction of its
own on the request's one connection (GraphQLContext.write_transaction: a request never
holds two), and the answer is the record as the queries give it, read in that
transaction.
Editors and admins only, with the key in the same headers as REST's.

(No `from __future__ import annotations` here: the resolvers are made per record
type, and strawberry must see their argument and return types as types, not names.)
"""

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import strawberry
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.types import Info

from db.api_keys import ApiPrincipal
from db.engine import is_unstorable_text
from db.names import with_article
from db.writes import FieldError, InvalidInput, WriteError, records, who
from db.writes import inputs as bodies
from schema.errors import bad_user_input, refused_write
from schema.queries import single_node
from schema.types import Actor, Claim, Document, Event, Place
from schema.write_inputs import (
    ActorInput,
    ClaimInput,
    ClaimPatch,
    DocumentInput,
    EventInput,
    PlaceInput,
    WriteBody,
    write_body,
)


NODE_OF_TYPE: dict[str, Any] = {"event": Event, "claim": Claim, "actor": Actor, "place": Place,
                                "document": Document}


@strawberry.type(description="A record a mutation deleted: later reads find nothing (REST answers 410 with "
                             "a tombstone), and the change feed lists the deletion.")
class DeletedRecord:
    id: strawberry.ID
    type: str = strawberry.field(description="event, claim, actor, place or document.")


@contextmanager
def _refusals(body: WriteBody | None) -> Iterator[None]:
    """A refused write as a GraphQL error with its code (schema/errors.py)."""
    try:
        yield
    except InvalidInput as exc:
        raise bad_user_input(body.graphql_errors(exc.errors) if body else exc.errors) from exc
    except WriteError as exc:
        raise refused_write(exc) from exc
    except DBAPIError as exc:
        if is_unstorable_text(exc):
            raise bad_user_input([FieldError("input", "contains a NUL character, which text cannot hold")]) from exc
        raise


async def _write(info: Info, editor: ApiPrincipal, body: WriteBody | None,
                 write: Callable[[AsyncConnection], Awaitable[UUID]], answer_type: str | None = None) -> Any:
    """Run `write` in its own transaction for `editor`: everything it does commits or
    nothing (an error rolls it back). With `answer_type`, the written record's node,
    with what its selection needs; else the record's id."""
    with _refusals(body):
        async with info.context.write_transaction(who(editor)) as conn:
            record_id = await write(conn)
            tree = await records.record_tree(conn, answer_type, record_id) if answer_type else None
    info.context.forget_loaded()
    if answer_type is None:
        return record_id
    return await single_node(info, tree, NODE_OF_TYPE[answer_type].of)


def _create(record_type: str, input_type: type, model: type[BaseModel]) -> Any:
    create = getattr(records, f"create_{record_type}")

    async def resolve(info: Info, input: input_type) -> NODE_OF_TYPE[record_type] | None:  # type: ignore[valid-type]
        editor = await info.context.principal("editor")  # a refused key before a refused input, as in REST
        body = write_body(input, model)
        return await _write(info, editor, body, lambda conn: create(conn, body.model), record_type)

    return strawberry.mutation(resolver=resolve,
                               description=f"Create {with_article(record_type)} (REST: POST /v1/{record_type}s).")


def _update(record_type: str, input_type: type, model: type[BaseModel]) -> Any:
    change = getattr(records, f"update_{record_type}")

    async def resolve(info: Info, id: strawberry.ID, input: input_type,  # type: ignore[valid-type]
                      if_match: str | None = None) -> NODE_OF_TYPE[record_type] | None:  # type: ignore[valid-type]
        editor = await info.context.principal("editor")
        body = write_body(input, model, patch=True)
        return await _write(info, editor, body, lambda conn: change(conn, str(id), body.model.given(), if_match),
                            record_type)

    return strawberry.mutation(resolver=resolve, description=(
        f"Change {with_article(record_type)} (REST: PATCH /v1/{record_type}s/{{id}}): the fields the input names are set, "
        "a null clears one. With `ifMatch` (an ETag REST's GET gave), refused (PRECONDITION_FAILED) if the "
        f"{record_type} changed since."))


def _delete(record_type: str) -> Any:
    remove = getattr(records, f"delete_{record_type}")

    async def resolve(info: Info, id: strawberry.ID, if_match: str | None = None) -> DeletedRecord | None:
        editor = await info.context.principal("editor")
        record_id = await _write(info, editor, None, lambda conn: remove(conn, str(id), if_match))
        return DeletedRecord(id=strawberry.ID(str(record_id)), type=record_type)

    return strawberry.mutation(resolver=resolve, description=(
        f"Delete {with_article(record_type)} (REST: DELETE /v1/{record_type}s/{{id}})"
        + (", with its claims, roles and external ids" if record_type == "event" else "")
        + (", unless something still refers to it (CONFLICT)" if record_type in ("actor", "place", "document")
           else "") + ". With `ifMatch`, refused (PRECONDITION_FAILED) if it changed since that ETag."))


# One create / update / delete triple per record type, as REST's routes: createEvent,
# updateEvent, deleteEvent, createClaim, ... deleteDocument (API.md names them). The
# input of a create and of an update is one type but for claims, whose event and
# claimant stay for life.
# (GraphQL input, GraphQL patch input) per record type; the bodies they become: bodies.BODIES
_INPUT_TYPES = {
    "event": (EventInput, EventInput),
    "claim": (ClaimInput, ClaimPatch),
    "actor": (ActorInput, ActorInput),
    "place": (PlaceInput, PlaceInput),
    "document": (DocumentInput, DocumentInput),
}


def _mutations() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for record_type, (model, patch_model) in bodies.BODIES.items():
        input_type, patch_type = _INPUT_TYPES[record_type]
        fields[f"create_{record_type}"] = _create(record_type, input_type, model)
        fields[f"update_{record_type}"] = _update(record_type, patch_type, patch_model)
        fields[f"delete_{record_type}"] = _delete(record_type)
    return fields


Mutation = strawberry.type(type("Mutation", (), _mutations()), description=(
    "Writes, for editor and admin API keys (`Authorization: Bearer <key>` or `X-API-Key: <key>`), each in one "
    "transaction."))
