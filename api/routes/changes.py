"""REST: the change feed, for keeping a mirror in sync without downloading everything again."""

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.deps import Codec, ReadConn
from api.errors import Problem
from api.ratelimit import charge
from api.responses import JSONResponse
from api.schemas import ChangeFeed
from db.cost import LIMITS, changes_charge
from db.pagination import CursorError
from db.queries.history import list_changes

router = APIRouter(tags=["changes"])


@router.get("/changes", response_model=ChangeFeed, response_class=JSONResponse)
async def get_changes(
    request: Request, conn: ReadConn, codec: Codec,
    since: Annotated[str | None, Query(description="The next_cursor of your last answer; none (or empty): "
                                                   "from the start.")] = None,
    limit: Annotated[int, Query(ge=1, le=LIMITS.changes_page_size, description="At most this many changes.")] = 1000,
):
    """Records created, updated, deleted or merged, in the order the writes committed: one
    entry per record and write (a change to an event's claims is listed as the claim's; to
    its roles or external ids, as an update of the event). A mirror applies each entry by
    reading the record (GET /v1/<type>s/<id>; deleted ones answer 410) and keeps
    next_cursor for its next call. The feed never skips a write that commits later."""
    await charge(request.scope, changes_charge(limit))
    try:
        return JSONResponse(await list_changes(conn, since, limit, codec))
    except CursorError as exc:
        raise Problem(400, f"since: {exc}", errors=[{"name": "since", "in": "query", "reason": str(exc)}]) from exc
