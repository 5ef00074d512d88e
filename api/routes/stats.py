"""REST: event stats (counts and fatality sums by place, period, type, actor)."""

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from api.deps import ReadConn
from api.params import CollapseParam, EventFilterDep
from api.ratelimit import charge
from api.responses import JSONResponse
from api.schemas import EventStats
from db.cost import LIMITS, check_stats, collapse_stats_charge, stats_charge, stats_size_charge
from db.queries.stats import DIMENSIONS, StatsRequest, event_stats, parse_group_by

router = APIRouter(tags=["stats"])


@router.get("/stats/events", response_model=EventStats, response_class=JSONResponse)
async def stats_events(http_request: Request, where: EventFilterDep, conn: ReadConn,
                       group_by: Annotated[list[str], Query(description=(
                           f"Comma-separated or repeated, from: {', '.join(DIMENSIONS)}. None: one row, the total."
                       ))] = [],
                       fill: Annotated[bool, Query(description=(
                           "Zero rows for periods without events, between date_from and date_to (else the first "
                           "and last period found), for each combination of the other groups."))] = False,
                       collapse: CollapseParam = None):
    """Events and fatality sums per group, with every event filter. An event counts once, in the
    period holding its first day inside the asked dates (see the README for the rule). With
    `collapse=happening`, a happening counts once, as its first matching record newest first
    (its place, period and figures: nothing is counted twice)."""
    request = StatsRequest(group_by=parse_group_by(group_by), fill=fill, collapse=collapse)
    check_stats(request.group_by, LIMITS)
    await charge(http_request.scope, stats_charge(request.group_by, fill))
    if collapse is not None:
        await charge(http_request.scope, collapse_stats_charge(request.group_by, fill))
    # Whole answers are cached by api/answer_cache.py: the groups need no cache of their
    # own, and only an answer made here (not a cached one) is charged by its size.
    rows = await event_stats(conn, None, where, request)
    await charge(http_request.scope, stats_size_charge(len(rows)))
    # the groups arrive as JSON text: put in place, not parsed and printed again
    body = b"".join((b'{"group_by":', orjson.dumps(list(request.group_by)), b',"data":', rows, b"}"))  # one copy
    return Response(body, media_type="application/json")
