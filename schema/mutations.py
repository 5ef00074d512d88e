"""GraphQL mutations: create, update and delete events, claims, actors, places and
documents (REST: POST, PATCH and DELETE under /v1, api/routes/writes.py); curation
verdicts on pairs of events (linkEvents, unlinkEvents).

Thin, as REST's routes are, over the same layer: the input becomes REST's body model
(schema/write_inputs.py), db/writes/records.py does the write in a transaction of its
own on the request's one connection (GraphQLContext.write_transaction: a request never
holds two), and the answer is the record as the queries give it, read in that
transaction.
Editors and admins only, with the key in the same headers as REST's.

(No `from __future__ import annotations` here: the resolvers are made per record
type, and strawberry must see their argument and return types as types, not names.)
"""

import datetime as dt
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

import strawberry
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.types import Info

from db.api_keys import ApiPrincipal
from db.engine import is_unstorable_text
from db.names import with_article
from db.writes import FieldError, InvalidInput, WriteError, links, records, who
from db.writes import inputs as bodies
from schema.errors import bad_user_input, refused_write
from schema.queries import single_node
from schema.types import Actor, Claim, Document, Event, MatchParts, MatchStatus, Place
from schema.write_inputs import (
    ActorInput,
    ClaimInput,
    ClaimPatch,
    DocumentInput,
    EventInput,
    EventPairInput,
    PlaceInput,
    WriteBody,
    pair_body,
    write_body,
)

T = TypeVar("T")


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


async def _in_transaction(info: Info, editor: ApiPrincipal, body: WriteBody | None,
                          work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` in the request's write transaction for `editor`: everything it does
    commits or nothing (an error rolls it back); a refusal as a GraphQL error."""
    with _refusals(body):
        async with info.context.write_transaction(who(editor)) as conn:
            done = await work(conn)
    info.context.forget_loaded()
    return done


async def _write(info: Info, editor: ApiPrincipal, body: WriteBody | None,
                 write: Callable[[AsyncConnection], Awaitable[UUID]], answer_type: str | None = None) -> Any:
    """Run `write` (_in_transaction). With `answer_type`, the written record's node,
    with what its selection needs; else the record's id."""
    async def write_and_read(conn: AsyncConnection) -> tuple[UUID, dict | None]:
        record_id = await write(conn)
        return record_id, await records.record_tree(conn, answer_type, record_id) if answer_type else None

    record_id, tree = await _in_transaction(info, editor, body, write_and_read)
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


# --- curation ---------------------------------------------------------------------------------------

@strawberry.enum(description="An editor's verdict on a pair of events.")
class Verdict(Enum):
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


@strawberry.type(description="A pair of events after an editor's verdict on it: the verdict, and what the linking "
                             "rule makes of the pair (REST: the answer of POST and DELETE /v1/events/{id}/links).")
class EventLink:
    event: Event
    other: Event
    verdict: Verdict | None
    note: str | None
    decided_by: str | None = strawberry.field(description="Who gave the verdict (as the history names writers).")
    decided_at: dt.datetime | None
    status: MatchStatus = strawberry.field(description="LINKED: one happening; CONTENDER: over the link threshold "
                                                      "but another pair won, or rejected; CANDIDATE: under it.")
    score: float | None = strawberry.field(description="What the linking rule scores the pair (0-1), verdict aside.")
    parts: MatchParts
    days_apart: int | None
    distance_km: float | None
    happening_id: strawberry.ID | None = strawberry.field(
        description="The happening both events are in; null if they are in two.")

    @classmethod
    def of(cls, pair: dict) -> "EventLink":
        """From db/queries/links.py's pair, with the trees of its events under `trees`."""
        decided_at = pair["decided_at"]
        return cls(event=Event.of(pair["trees"][pair["event"]]), other=Event.of(pair["trees"][pair["other"]]),
                   verdict=Verdict(pair["verdict"]) if pair["verdict"] else None, note=pair["note"],
                   decided_by=pair["decided_by"],
                   decided_at=dt.datetime.fromisoformat(decided_at) if decided_at else None,
                   status=MatchStatus(pair["status"]), score=pair["score"], parts=MatchParts(**pair["parts"]),
                   days_apart=pair["days_apart"], distance_km=pair["distance_km"],
                   happening_id=strawberry.ID(pair["happening_id"]) if pair["happening_id"] else None)


def _judge(verdict: bodies.Verdict) -> Any:
    async def resolve(info: Info, input: EventPairInput) -> EventLink | None:
        editor = await info.context.principal("editor")
        body = pair_body(input)

        async def judge(conn: AsyncConnection) -> dict:
            judged = await links.judge_pair(conn, body.event, body.model.event, verdict.verdict, body.model.note,
                                            other_field="other")
            pair = judged.pair
            trees = await records.RECORD_TREES["event"](conn, [UUID(pair["event"]), UUID(pair["other"])])
            return {**pair, "trees": {tree["id"]: tree for tree in trees}}

        return await single_node(info, await _in_transaction(info, editor, body, judge), EventLink.of)

    return strawberry.mutation(resolver=resolve, description=(
        f"{verdict.effect} (REST: {verdict.rest}.) An unknown `event` is NOT_FOUND (as REST's path), an unknown "
        "`other` BAD_USER_INPUT naming it."))


def _mutations() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for record_type, (model, patch_model) in bodies.BODIES.items():
        input_type, patch_type = _INPUT_TYPES[record_type]
        fields[f"create_{record_type}"] = _create(record_type, input_type, model)
        fields[f"update_{record_type}"] = _update(record_type, patch_type, patch_model)
        fields[f"delete_{record_type}"] = _delete(record_type)
    for verdict in bodies.VERDICTS.values():  # linkEvents, unlinkEvents
        fields[verdict.mutation] = _judge(verdict)
    return fields


Mutation = strawberry.type(type("Mutation", (), _mutations()), description=(
    "Writes, for editor and admin API keys (`Authorization: Bearer <key>` or `X-API-Key: <key>`), each in one "
    "transaction."))
