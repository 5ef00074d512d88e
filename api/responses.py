"""JSON responses: orjson, and the list envelope with its `Link` header; streamed bodies."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import orjson
from fastapi import Request
from starlette.responses import JSONResponse as StarletteJSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from db.pagination import Page


class JSONResponse(StarletteJSONResponse):
    """JSON by orjson. A JSONResponse to FastAPI, so that a route's `response_model` is
    what the OpenAPI document says it answers; the routes hand it the trees PostgreSQL
    built, so the model describes the answer and is never run over it."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def page_response(request: Request, page: Page, fields: frozenset[str] | None = None) -> JSONResponse:
    """`{"data": [...], "next_cursor": ...}` (+ `total`), with `Link: <next>; rel="next"`;
    with `fields`, each item keeps only those keys."""
    rows = page.rows if fields is None else [{k: v for k, v in row.items() if k in fields} for row in page.rows]
    body: dict[str, Any] = {"data": rows, "next_cursor": page.next_cursor}
    if page.total is not None:
        body["total"] = page.total
    headers = {}
    if page.next_cursor:
        # relative (RFC 8288 resolves it against the request): the same answer, cached,
        # serves clients that reached the API under other hosts
        next_url = request.url.remove_query_params("cursor").include_query_params(cursor=page.next_cursor)
        headers["Link"] = f'<{next_url.path}?{next_url.query}>; rel="next"'
    return JSONResponse(body, headers=headers)


class StreamedResponse(StreamingResponse):
    """A body streamed from an async generator that is closed as soon as the response
    ends, however it ends (a client gone mid-way included): its cleanup (a database
    cursor) runs while the request's connection is still open, not whenever the
    garbage collector reaches it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with aclosing(self.body_iterator):
            await super().__call__(scope, receive, send)
