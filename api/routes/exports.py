"""REST: the events of any filter as one file (CSV with ACLED's columns, GeoJSON, NDJSON),
streamed as PostgreSQL hands out the rows (api/exports.py, db/queries/export.py)."""

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ReadConn
from api.exports import EXPORT_FORMATS, ExportFormat, export_body
from api.params import EventFilterDep, EventSortName
from api.responses import StreamedResponse
from api.schemas import PROBLEM_RESPONSES
from db.queries.export import export_statement, stream_rows

router = APIRouter(tags=["exports"], responses=PROBLEM_RESPONSES)

# The paths, for the answer cache to leave alone (api/app.py).
EXPORT_PATHS = tuple(f"/events.{name}" for name in EXPORT_FORMATS)


def _export_route(export_format: ExportFormat):
    async def export_events(conn: ReadConn, where: EventFilterDep,
                            sort: Annotated[EventSortName, Query(
                                description="Order: relevance needs q, distance needs near.")] = "-date"):
        # The filter is compiled (names resolved) before the response starts: a bad
        # one is a 422, not a file cut short. The rows are then read on the request's
        # read connection, which FastAPI keeps open until the response has been sent.
        statement = await export_statement(conn, where, sort)
        return StreamedResponse(export_body(export_format, stream_rows(conn, statement)),
                                media_type=export_format.media_type,
                                headers={"Content-Disposition": f'attachment; filename="{export_format.filename}"'})

    export_events.__name__ = f"export_events_{export_format.name}"
    return export_events


for _format in EXPORT_FORMATS.values():
    router.add_api_route(
        f"/events.{_format.name}", _export_route(_format), methods=["GET"], response_class=StreamedResponse,
        summary=f"Export events as {_format.name.upper()}",
        description=(f"{_format.description} Every event matching the filters of `GET /v1/events`, newest "
                     "first unless `sort` says otherwise, in one streamed response (no paging)."),
        responses={200: {"content": {_format.media_type: {"schema": {"type": "string"}}},
                         "description": f"The events, as `{_format.filename}`."}})
