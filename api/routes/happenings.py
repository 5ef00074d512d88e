"""REST: happenings, the records of one happening from several sources read as one."""

from fastapi import APIRouter

from api.deps import ReadConn
from api.errors import NotFound
from api.responses import JSONResponse
from api.schemas import Happening
from db.queries import happenings

router = APIRouter(tags=["happenings"])


@router.get("/happenings/{happening_id}", response_model=Happening, response_class=JSONResponse)
async def get_happening(happening_id: str, conn: ReadConn):
    """One happening: every record of it (each as /v1/events/{id} gives it, with its claims),
    ordered by source then date, and what all their claims say together (fatalities, and per
    actor and role the attribution status with its claims), by the rules of the README.
    `happening_id` is a happening's id, or the id or external id (`ucdp-ged:259233`) of any of
    its records: the answer is the happening under its own `id` (its earliest record's)."""
    happening = await happenings.get_happening(conn, happening_id)
    if happening is None:
        raise NotFound("happening", happening_id)
    return JSONResponse(happening)
