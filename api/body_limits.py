"""Request bodies: authenticated before they are read, refused past their size or time.

Three rules, in front of everything that reads a body (FastAPI reads a route's body
before it resolves the route's dependencies, the API key among them):

- A REST write (POST, PUT, PATCH, DELETE under /v1) needs a key: without a valid one it
  is answered 401 before a byte of its body is read.
- A body longer than its limit is answered 413: at once when Content-Length says so,
  else as soon as the bytes read pass it (a chunked body is counted as it arrives, and
  at most the limit is ever held). /graphql has its own, smaller limit: whether an
  operation needs a key is known only from its body, and a query is capped at 2,000
  tokens anyway (schema/app.py).
- A body not received in full within the read timeout is answered 408: a slow client
  holds neither memory nor a connection for longer.

Refusals are problem+json and close the connection (the rest of the body is never read).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import key_problem, refuse
from api.errors import Problem, is_graphql_path

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The body is left unread: the server must not wait for it before the next request.
_CLOSE = {"Connection": "close"}


class BodyRefused(HTTPException):
    """Raised by the limited `receive` while the app reads the body. An HTTPException, so
    that FastAPI lets it through its body parsing (anything else there becomes a 400) to the
    app's handler, which answers it as problem+json (api/errors.py)."""

    def __init__(self, status: int, detail: str):
        super().__init__(status, detail, headers=dict(_CLOSE))

    def problem(self) -> Problem:
        return Problem(self.status_code, self.detail, headers=self.headers)


def too_large(limit: int) -> BodyRefused:
    return BodyRefused(413, f"The request body is over this endpoint's limit of {limit:,} bytes.")


def too_slow(seconds: float) -> BodyRefused:
    return BodyRefused(408, f"The request body was not received within {seconds:g} seconds.")


def _content_length(headers: Headers) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None


class BodyLimitMiddleware:
    """`unlimited_paths`: paths left alone (the bench route, never mounted in production)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_graphql_body_bytes: int,
                 body_timeout_seconds: float, unlimited_paths: Collection[str] = ()):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_graphql_body_bytes = max_graphql_body_bytes
        self.body_timeout_seconds = body_timeout_seconds
        self.unlimited_paths = frozenset(unlimited_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.unlimited_paths:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = _content_length(headers)
        if scope["method"] in WRITE_METHODS and scope["path"].startswith("/v1/"):
            problem = await key_problem(scope)  # the route's own check finds the key looked up
            if problem is not None:
                if declared or "transfer-encoding" in headers:  # a body, left unread
                    problem.headers.update(_CLOSE)
                await refuse(problem, scope, receive, send)
                return
        limit = self.max_graphql_body_bytes if is_graphql_path(scope["path"]) else self.max_body_bytes
        if declared is not None and declared > limit:
            await refuse(too_large(limit).problem(), scope, receive, send)
            return
        body = _LimitedBody(receive, limit, self.body_timeout_seconds)
        started = False

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, body.receive, watching_send)
        except BodyRefused as refused:
            # read by something in front of the app's handlers (none today): answered here
            if started:
                raise
            await refuse(refused.problem(), scope, receive, send)


class _LimitedBody:
    """The app's `receive`: counts the body's bytes as they arrive and raises BodyRefused
    past the limit or the deadline. Once the body is complete it passes messages through
    untimed (a streamed answer listens for the client's disconnect as long as it runs)."""

    def __init__(self, receive: Receive, limit: int, timeout: float):
        self._receive = receive
        self.limit = limit
        self.timeout = timeout
        self.deadline = asyncio.get_running_loop().time() + timeout
        self.received = 0
        self.complete = False

    async def receive(self) -> Message:
        if self.complete:
            return await self._receive()
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self._receive()
        except TimeoutError:
            raise too_slow(self.timeout) from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                raise too_large(self.limit)
            self.complete = not message.get("more_body", False)
        return message
