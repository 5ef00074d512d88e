"""REST: events and their claims."""

import datetime as dt
from dataclasses import replace
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from api.deps import AnswerCacheDep, Codec, ReadConn
from api.errors import NotFound, Problem, absent
from api.params import ClaimFilterDep, CollapseParam, EventFilterDep, EventSortName, IsoDateTime, PageDep, sparse_fields
from api.ratelimit import charge
from api.responses import JSONResponse, page_response
from api.schemas import Attribution, Claim, Event, EventMatch, HistoryEntry, ListOf, listed
from db.cost import as_of_charge, collapse_charge
from db.filters import FilterError
from db.queries import claims as claim_queries, events as event_queries, history, matches

router = APIRouter(tags=["events"])

EventFields = Annotated[frozenset[str] | None, Depends(sparse_fields(
    Event, not_in_lists=frozenset({"claims", "linked_events"})))]
ClaimFields = Annotated[frozenset[str] | None, Depends(sparse_fields(Claim))]


AsOf = Annotated[IsoDateTime | None, Query(
    description="An ISO timestamp (UTC if it has no offset): the knowledge base as it stood then.")]


@router.get("/events", response_model=ListOf[listed(Event)], response_class=JSONResponse)
async def list_events(request: Request, where: EventFilterDep, page: PageDep, conn: ReadConn, codec: Codec, cache: AnswerCacheDep,
                      fields: EventFields, collapse: CollapseParam = None,
                      sort: Annotated[EventSortName, Query(
                          description="Order: relevance needs q, distance needs near.")] = "-date",
                      as_of: AsOf = None):
    """Events matching every given filter, newest first, one page at a time. With `as_of`,
    the events that matched then, as they stood then (not with q, near or bbox; slower,
    since it reads the history). With `collapse=happening`, one event per happening: the
    first of its records that match, in the list's order (and `total` counts happenings)."""
    if collapse is not None:
        await charge(request.scope, collapse_charge(page.limit))
    if as_of is None:
        result = await event_queries.list_events(conn, page, codec, cache, where, sort=sort, collapse=collapse)
    else:
        await charge(request.scope, as_of_charge(page.limit))
        result = await history.list_events_as_of(conn, page, codec, cache, where, as_of, sort=sort,
                                                 collapse=collapse)
    return page_response(request, result, fields)


async def _event_id(conn: AsyncConnection, ref: str, as_of: dt.datetime | None = None) -> UUID:
    """The event `ref` names (an id or external id); as of a time, one deleted since too."""
    resolved = await (event_queries.event_id_of if as_of is not None else event_queries.resolve_event_id)(conn, ref)
    if resolved is None:
        raise await absent(conn, "event", ref)
    return resolved


@router.get("/events/{event_id}", response_model=Event, response_class=JSONResponse)
async def get_event(event_id: str, conn: ReadConn, as_of: AsOf = None):
    """One event: its place and the place's ancestors, actors with roles and attribution status,
    every claim (claimant, document, stance, value, quote) and external ids. `event_id` is an id
    or an external id such as `conflictkb-seed:al-qasr-strike`. With `as_of`, the event, its
    claims, roles and figures as they stood then (actors', places' and documents' names as now)."""
    if as_of is None:
        event = await event_queries.get_event(conn, event_id)
        if event is None:
            raise await absent(conn, "event", event_id)
        return JSONResponse(event)
    event = await history.get_event_as_of(conn, event_id, as_of)
    if event is None:
        raise Problem(404, f"The event {event_id} did not exist at {as_of.isoformat()}.")
    return JSONResponse(event)


@router.get("/events/{event_id}/attribution", response_model=list[Attribution], response_class=JSONResponse)
async def get_event_attribution(event_id: str, conn: ReadConn, as_of: AsOf = None):
    """Who is said to have done it, and to whom: per actor and role, the attribution status
    and the claims that made it so, by the rule in the README (confirmed, contested,
    alleged, unknown). With `as_of`, as it stood then."""
    resolved = await _event_id(conn, event_id, as_of)
    if as_of is not None and not await history.existed_at(conn, resolved, as_of):
        raise Problem(404, f"The event {event_id} did not exist at {as_of.isoformat()}.")
    return JSONResponse(await history.event_attribution(conn, resolved, as_of))


@router.get("/events/{event_id}/history", response_model=ListOf[HistoryEntry], response_class=JSONResponse)
async def get_event_history(request: Request, event_id: str, page: PageDep, conn: ReadConn, codec: Codec):
    """Every change to the event and to its claims, roles and external ids, oldest first: who,
    when, which fields, the record before and after. A deleted event keeps its history."""
    resolved = await event_queries.event_id_of(conn, event_id)
    result = await history.event_history(conn, resolved, page, codec) if resolved else None
    if result is None or (not result.rows and page.cursor is None):
        raise NotFound("event", event_id)
    return page_response(request, result)


@router.get("/events/{event_id}/claims", response_model=ListOf[listed(Claim)], response_class=JSONResponse)
async def list_event_claims(request: Request, event_id: str, page: PageDep, where: ClaimFilterDep, conn: ReadConn, codec: Codec,
                            cache: AnswerCacheDep, fields: ClaimFields):
    """The claims about one event, with the same filters as /v1/claims."""
    try:
        result = await claim_queries.list_claims(conn, page, codec, cache, replace(where, event=event_id))
    except FilterError as exc:
        if exc.field == "event":  # the event in the path: not a bad filter but no such resource
            raise NotFound("event", event_id) from exc
        raise
    return page_response(request, result, fields)


@router.get("/events/{event_id}/matches", response_model=ListOf[EventMatch], response_class=JSONResponse)
async def list_event_matches(request: Request, event_id: str, page: PageDep, conn: ReadConn, codec: Codec,
                             cache: AnswerCacheDep):
    """Events of other sources that may be the same happening (cross-source linking), best
    score first, one page at a time: each with its score and every part of it, its status
    (linked, contender, candidate) and an editor's verdict on the pair, if any. The rule and
    thresholds are in the README."""
    result = await matches.list_matches(conn, page, codec, cache, await _event_id(conn, event_id))
    return page_response(request, result)
