"""REST writes: POST, PATCH and DELETE of events, claims, actors, places and documents;
merges; curation verdicts on pairs of events.

Thin: the body is checked by its model (db/writes/inputs.py), the write is done by
db/writes/records.py in one transaction, and the answer is the record as GET gives it,
with its ETag. Editors and admins only (API keys, api/auth.py).

(No `from __future__ import annotations` here: the routes' body types are chosen per
record type when they are made, and FastAPI must see them as types, not names.)
"""

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from api.auth import ApiPrincipal, EditorKey
from api.schemas import Actor, Claim, Document, Event, EventLink, Place
from db.etags import body_etag
from db.names import with_article
from db.writes import links, merges, records, who, writing
from db.writes.idempotency import StoredAnswer, remember, reserve_or_replay
from db.writes.inputs import BODIES, VERDICTS, LinkInput, MergeInput

router = APIRouter()

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=200,
    description="A unique key (a UUID) per intended write: a repeat gets the first answer and creates nothing.")]
IfMatch = Annotated[str | None, Header(
    alias="If-Match", description="The ETag a GET gave: the write is refused (412) if the record changed since.")]

Write = Callable[[AsyncConnection], Awaitable[UUID]]
Answer = Callable[[AsyncConnection], Awaitable[StoredAnswer]]


async def _respond(request: Request, principal: ApiPrincipal, write: Answer, *,
                   idempotency_key: str | None = None) -> Response:
    """Run `write` in one transaction and send the answer it makes (with Idempotency-Key:
    the first answer to the key, the write done once)."""
    async with writing(request.app.state.engine, who(principal)) as conn:
        if idempotency_key is not None:
            fingerprint = hashlib.sha256(
                f"{request.method} {request.url.path}\n".encode() + await request.body()).digest()
            stored = await reserve_or_replay(conn, principal.key_id, idempotency_key, fingerprint)
            if stored is not None:
                return _replay(stored)
        answer = await write(conn)
        if idempotency_key is not None:
            await remember(conn, principal.key_id, idempotency_key, answer)
    return _replay(answer)


async def _answer(request: Request, principal: ApiPrincipal, record_type: str, write: Write, *,
                  created: bool = False, idempotency_key: str | None = None) -> Response:
    """Run `write` in one transaction and answer with the record it wrote."""
    async def record_answer(conn: AsyncConnection) -> StoredAnswer:
        record_id = await write(conn)
        body = await records.record_body(conn, record_type, record_id)
        return StoredAnswer(201 if created else 200, f"/v1/{record_type}s/{record_id}" if created else None, body)

    return await _respond(request, principal, record_answer, idempotency_key=idempotency_key)


def _replay(answer: StoredAnswer) -> Response:
    headers = {"ETag": body_etag(answer.body)}
    if answer.location:
        headers["Location"] = answer.location
    return Response(answer.body, status_code=answer.status, media_type="application/json", headers=headers)


async def _delete(request: Request, principal: ApiPrincipal, write: Write) -> Response:
    async with writing(request.app.state.engine, who(principal)) as conn:
        await write(conn)
    return Response(status_code=204)


def _patch_dict(patch: BaseModel) -> dict[str, Any]:
    return patch.given()  # type: ignore[attr-defined]


# One POST / PATCH / DELETE triple per record type, all alike: the answer's model.
_ANSWERS: dict[str, type[BaseModel]] = {"event": Event, "claim": Claim, "actor": Actor, "place": Place,
                                        "document": Document}


def _add_routes(record_type: str, input_model: type[BaseModel], patch_model: type[BaseModel],
                answer_model: type[BaseModel], tag: str) -> None:
    create = getattr(records, f"create_{record_type}")
    change = getattr(records, f"update_{record_type}")
    remove = getattr(records, f"delete_{record_type}")
    path = f"/{record_type}s"
    # named as the GET of the same path names it: one path of the OpenAPI document
    RecordId = Annotated[str, Path(alias=f"{record_type}_id")]

    async def post(request: Request, body: input_model, principal: EditorKey,  # type: ignore[valid-type]
                   idempotency_key: IdempotencyKey = None) -> Response:
        return await _answer(request, principal, record_type, lambda conn: create(conn, body), created=True,
                             idempotency_key=idempotency_key)

    async def patch(request: Request, record_id: RecordId, body: patch_model, principal: EditorKey,  # type: ignore[valid-type]
                    if_match: IfMatch = None) -> Response:
        return await _answer(request, principal, record_type,
                             lambda conn: change(conn, record_id, _patch_dict(body), if_match))

    async def delete(request: Request, record_id: RecordId, principal: EditorKey, if_match: IfMatch = None) -> Response:
        return await _delete(request, principal, lambda conn: remove(conn, record_id, if_match))

    router.add_api_route(path, post, methods=["POST"], status_code=201, response_model=answer_model, tags=[tag.lower()],
                         summary=f"Create {with_article(record_type)}",
                         description=f"{tag}: a new one from the body; 201 with it, its ETag and Location.")
    router.add_api_route(path + f"/{{{record_type}_id}}", patch, methods=["PATCH"], response_model=answer_model,
                         tags=[tag.lower()], summary=f"Change {with_article(record_type)}",
                         description="The fields the body names are set (null clears one); with If-Match, "
                                     "refused (412) if the record changed since that ETag.")
    router.add_api_route(path + f"/{{{record_type}_id}}", delete, methods=["DELETE"], status_code=204, tags=[tag.lower()],
                         summary=f"Delete {with_article(record_type)}",
                         description="Later reads answer 410 with a tombstone; the change feed lists the deletion.")


for _record_type, (_input_model, _patch_model) in BODIES.items():
    _add_routes(_record_type, _input_model, _patch_model, _ANSWERS[_record_type], _record_type.title() + "s")


def _add_merge_route(record_type: str, merge: Callable[..., Awaitable[UUID]], answer_model: type[BaseModel],
                     tag: str) -> None:
    RecordId = Annotated[str, Path(alias=f"{record_type}_id")]

    async def merge_route(request: Request, record_id: RecordId, body: MergeInput, principal: EditorKey,
                          if_match: IfMatch = None, idempotency_key: IdempotencyKey = None) -> Response:
        return await _answer(request, principal, record_type,
                             lambda conn: merge(conn, record_id, body.into, if_match),
                             idempotency_key=idempotency_key)

    router.add_api_route(f"/{record_type}s/{{{record_type}_id}}/merge", merge_route, methods=["POST"],
                         response_model=answer_model, tags=[tag], summary=f"Merge {with_article(record_type)} into another",
                         description=f"Two {record_type}s that are one: everything that referred to this one "
                                     "refers to `into` afterwards, this one is deleted, and reads of its id answer "
                                     "308 to the survivor. Answers with the survivor.")


_add_merge_route("event", merges.merge_events, Event, "events")
_add_merge_route("actor", merges.merge_actors, Actor, "actors")


# Curation (db/writes/inputs.py VERDICTS): an editor's verdict on a pair of events.
EventId = Annotated[str, Path(alias="event_id", description="Event id or external id.")]
OtherId = Annotated[str, Path(alias="other_id", description="The other event: id or external id.")]


def _judge(event_id: str, other: str, verdict: str, note: str | None, *, other_field: str,
           other_in_path: bool = False, new_status: int = 200) -> Answer:
    async def write(conn: AsyncConnection) -> StoredAnswer:
        judged = await links.judge_pair(conn, event_id, other, verdict, note, other_field=other_field,
                                        other_in_path=other_in_path)
        return StoredAnswer(new_status if judged.new_verdict else 200, None, orjson.dumps(judged.pair))

    return write


_CONFIRM, _REJECT = VERDICTS["confirmed"], VERDICTS["rejected"]
_PAIR_ANSWER = ("its verdict, what the linking rule makes of it (score, parts, status) and the happening both "
                "events are in (`happening_id`, null if two)")


@router.post("/events/{event_id}/links", status_code=201, response_model=EventLink, tags=["events"],
             summary="Confirm that two events are one happening",
             description=f"{_CONFIRM.effect} Answers 201 with the pair ({_PAIR_ANSWER}), or 200 if the pair was "
                         f"confirmed already. GraphQL: `linkEvents`.",
             responses={200: {"model": EventLink, "description": "The pair was confirmed already."}})
async def link_events(request: Request, event_id: EventId, body: LinkInput, principal: EditorKey,
                      idempotency_key: IdempotencyKey = None) -> Response:
    return await _respond(request, principal, _judge(event_id, body.event, "confirmed", body.note,
                                                     other_field="event", new_status=201),
                          idempotency_key=idempotency_key)


@router.delete("/events/{event_id}/links/{other_id}", response_model=EventLink, tags=["events"],
               summary="Reject a pair of events: not one happening",
               description=f"{_REJECT.effect} Answers 200 with the pair ({_PAIR_ANSWER}). GraphQL: `unlinkEvents`.")
async def unlink_events(request: Request, event_id: EventId, other_id: OtherId, principal: EditorKey,
                        note: Annotated[str | None, Query(max_length=2000,
                                                          description=LinkInput.model_fields["note"].description)]
                        = None) -> Response:
    # (a text parameter given empty is as if not given, as everywhere: api/params.py)
    return await _respond(request, principal, _judge(event_id, other_id, "rejected", (note or "").strip() or None,
                                                     other_field="other_id", other_in_path=True))
