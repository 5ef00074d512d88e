"""Which server answers a request's reads (db/replicas.py), and the consistency token
on the answers of writes: the header a client sends back to read its own writes."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import Problem, problem_response
from db.replicas import TOKEN_HEADER, BadToken, format_token, read_on_primary

_TOKEN_HEADER_LOWER = TOKEN_HEADER.lower()


class ReadRoutingMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        routing = scope["app"].state.read_routing
        # (a websocket's token is not read: a subscription outlives any one write)
        token = Headers(scope=scope).get(_TOKEN_HEADER_LOWER) if scope["type"] == "http" else None
        try:
            routed_request = routing.request(token)
            routed = routed_request.__enter__()
        except BadToken as exc:
            await problem_response(Problem(400, str(exc), errors=[{"header": TOKEN_HEADER, "code": "bad_token",
                                                                    "message": str(exc)}]),
                                   scope["path"])(scope, receive, send)
            return

        if b"as_of=" in scope.get("query_string", b""):
            # (a replica has every commit up to a moment ago, not necessarily up to the
            # time asked for: as_of reads are the primary's, to be exact)
            read_on_primary()

        async def send_with_token(message: Message) -> None:
            if message["type"] == "http.response.start" and routed.written is not None:
                MutableHeaders(scope=message).append(TOKEN_HEADER, format_token(routed.written))
            await send(message)

        try:
            await self.app(scope, receive, send_with_token)
        finally:
            routed_request.__exit__(None, None, None)
