"""REST: events and their claims."""

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from api.deps import AnswerCacheDep, Codec, ReadConn
from api.errors import NotFound
from api.params import ClaimFilterDep, EventFilterDep, EventSortName, PageDep, sparse_fields
from api.responses import JSONResponse, page_response
from api.schemas import PROBLEM_RESPONSES, Claim, Event, EventMatch, ListOf
from db.filters import FilterError
from db.queries import claims as claim_queries, events as event_queries

router = APIRouter(tags=["events"], responses=PROBLEM_RESPONSES)

EventFields = Annotated[frozenset[str] | None, Depends(sparse_fields(
    Event, not_in_lists=frozenset({"claims", "linked_events"})))]
ClaimFields = Annotated[frozenset[str] | None, Depends(sparse_fields(Claim))]


@router.get("/events", response_model=ListOf[Event], response_class=JSONResponse)
async def list_events(request: Request, conn: ReadConn, codec: Codec, cache: AnswerCacheDep, where: EventFilterDep, page: PageDep,
                      fields: EventFields,
                      sort: Annotated[EventSortName, Query(
                          description="Order: relevance needs q, distance needs near.")] = "-date"):
    """Events matching every given filter, newest first, one page at a time."""
    result = await event_queries.list_events(conn, page, codec, cache, where, sort=sort)
    return page_response(request, result, fields)


@router.get("/events/{event_id}", response_model=Event, response_class=JSONResponse)
async def get_event(event_id: str, conn: ReadConn):
    """One event: its place and the place's ancestors, actors with roles and attribution status,
    every claim (claimant, document, stance, value, quote) and external ids. `event_id` is an id
    or an external id such as `conflictkb-seed:al-qasr-strike`."""
    event = await event_queries.get_event(conn, event_id)
    if event is None:
        raise NotFound("event", event_id)
    return JSONResponse(event)


@router.get("/events/{event_id}/claims", response_model=ListOf[Claim], response_class=JSONResponse)
async def list_event_claims(request: Request, event_id: str, conn: ReadConn, codec: Codec, cache: AnswerCacheDep, page: PageDep,
                            where: ClaimFilterDep, fields: ClaimFields):
    """The claims about one event, with the same filters as /v1/claims."""
    try:
        result = await claim_queries.list_claims(conn, page, codec, cache, replace(where, event=event_id))
    except FilterError as exc:
        if exc.field == "event":  # the event in the path: not a bad filter but no such resource
            raise NotFound("event", event_id) from exc
        raise
    return page_response(request, result, fields)


@router.get("/events/{event_id}/matches", response_model=list[EventMatch], response_class=JSONResponse)
async def list_event_matches(event_id: str, conn: ReadConn):
    """Events of other sources that may be the same happening (cross-source linking), best
    first: each with its score, the parts of the score and whether it is linked. The rule
    and thresholds are in the README."""
    resolved = await event_queries.resolve_event_id(conn, event_id)
    if resolved is None:
        raise NotFound("event", event_id)
    return JSONResponse(await event_queries.event_matches(conn, resolved))
