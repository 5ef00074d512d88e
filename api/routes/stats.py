"""REST: event stats (counts and fatality sums by place, period, type, actor)."""

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AnswerCacheDep, ReadConn
from api.params import EventFilterDep
from api.responses import JSONResponse
from api.schemas import PROBLEM_RESPONSES, EventStats
from db.queries.stats import DIMENSIONS, StatsRequest, event_stats, parse_group_by

router = APIRouter(tags=["stats"], responses=PROBLEM_RESPONSES)


@router.get("/stats/events", response_model=EventStats, response_class=JSONResponse)
async def stats_events(conn: ReadConn, cache: AnswerCacheDep, where: EventFilterDep,
                       group_by: Annotated[list[str], Query(description=(
                           f"Comma-separated or repeated, from: {', '.join(DIMENSIONS)}. None: one row, the total."
                       ))] = [],
                       fill: Annotated[bool, Query(description=(
                           "Zero rows for periods without events, between date_from and date_to (else the first "
                           "and last period found), for each combination of the other groups."))] = False):
    """Events and fatality sums per group, with every event filter. An event counts once, in the
    period holding its first day inside the asked dates (see the README for the rule)."""
    request = StatsRequest(group_by=parse_group_by(group_by), fill=fill)
    answer = await event_stats(conn, cache, where, request)
    return JSONResponse({"group_by": list(request.group_by), "data": answer.value})
