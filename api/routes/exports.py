"""REST: the events of any filter as one file (CSV with ACLED's columns, GeoJSON, NDJSON),
streamed as PostgreSQL hands out the rows (api/exports.py, db/queries/export.py)."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from api.deps import ReadConn
from api.errors import Problem
from api.exports import EXPORT_FORMATS, ExportFormat, export_body
from api.middleware import HEAD_REQUEST
from api.params import EventFilterDep, EventSortName, fields_parameter
from api.ratelimit import charge
from api.responses import StreamedResponse
from api.schemas import GeoJSONFeatureCollection
from db.cost import EXPORT_COUNT_CAP, export_charge
from db.engine import allow_long_statements
from db.queries.export import EXPORT_FIELDS, export_size, export_statement, stream_rows

router = APIRouter(tags=["exports"])

# What a JSON export's body is, for the OpenAPI document (CSV and NDJSON: text).
_BODY_SCHEMAS = {"geojson": {"$ref": "#/components/schemas/GeoJSONFeatureCollection"}}

# The paths, for the answer cache to leave alone (api/app.py).
EXPORT_PATHS = tuple(f"/events.{name}" for name in EXPORT_FORMATS)


async def export_slot(request: Request) -> AsyncIterator[None]:
    """One of CONFLICTKB_MAX_CONCURRENT_EXPORTS, held until the export has been sent:
    each export holds a pooled connection for as long as its client takes to download,
    so slow clients must not take all of them from the API's other answers. Taken
    before the connection (the parameter comes first); none free: 503, retry later."""
    state = request.app.state
    streaming = getattr(state, "exports_streaming", 0)
    if streaming >= state.settings.max_concurrent_exports:
        raise Problem(503, f"{streaming} exports are being sent, the most at once; try again shortly.",
                      headers={"Retry-After": "10"})
    state.exports_streaming = streaming + 1
    try:
        yield
    finally:
        state.exports_streaming -= 1


async def _no_rows() -> AsyncIterator[list]:
    return
    yield


async def _all_fields() -> None:
    """A format with fixed columns (CSV) takes no `fields`."""


def _export_route(export_format: ExportFormat):
    narrowed = (_all_fields if export_format.sparse_fields_need is None
                else fields_parameter(EXPORT_FIELDS, always=export_format.sparse_fields_need))

    async def export_events(request: Request, where: EventFilterDep, _slot: Annotated[None, Depends(export_slot)],
                            conn: ReadConn, fields: Annotated[frozenset[str] | None, Depends(narrowed)],
                            sort: Annotated[EventSortName, Query(
                                description="Order: relevance needs q, distance needs near.")] = "-date"):
        # The filter is compiled (names resolved) before the response starts: a bad
        # one is a 422, not a file cut short. The rows are then read on the request's
        # read connection, which FastAPI keeps open until the response has been sent,
        # with the long statement budget (a large export's sort takes longer than a read's).
        await allow_long_statements(conn)
        statement = await export_statement(conn, where, sort, fields)
        if request.scope.get(HEAD_REQUEST):  # headers only
            rows = _no_rows()
        else:  # charged by size before the first row is sent: its rows, counted (up to a cap)
            await charge(request.scope, export_charge(await export_size(conn, statement, EXPORT_COUNT_CAP)))
            rows = stream_rows(conn, statement)
        return StreamedResponse(export_body(export_format, rows),
                                media_type=export_format.media_type,
                                headers={"Content-Disposition": f'attachment; filename="{export_format.filename}"'})

    export_events.__name__ = f"export_events_{export_format.name}"
    return export_events


for _format in EXPORT_FORMATS.values():
    router.add_api_route(
        f"/events.{_format.name}", _export_route(_format), methods=["GET"], response_class=StreamedResponse,
        summary=f"Export events as {_format.name.upper()}",
        description=(f"{_format.description} Every event matching the filters of `GET /v1/events`, newest "
                     "first unless `sort` says otherwise, in one streamed response (no paging)."
                     + ("" if _format.sparse_fields_need is None else
                        f" `fields` narrows each record to the keys named (always with "
                        f"{', '.join(sorted(_format.sparse_fields_need))}): a map's points, say, at a tenth "
                        "of the size.")),
        responses={200: {"content": {_format.media_type: {"schema": _BODY_SCHEMAS.get(_format.name, {"type": "string"})}},
                         "description": f"The events, as `{_format.filename}`."}})
