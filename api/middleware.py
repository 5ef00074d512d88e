"""ASGI middleware: HEAD on every GET route, and ETags with 304 Not Modified.

The tag is a hash of the body, so it changes exactly when the answer does, whatever
changed underneath. It is weak (`W/`): the same answer gzipped or not is the same
representation for caching. Streaming bodies (many chunks) pass through untagged.
"""

from __future__ import annotations

import hashlib

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


class ETagMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        if_none_match = Headers(scope=scope).get("if-none-match")
        start: Message | None = None
        streaming = False

        async def tagging_send(message: Message) -> None:
            nonlocal start, streaming
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or streaming or start is None:
                await send(message)
                return
            if message.get("more_body") or start["status"] != 200:
                streaming = True
                await send(start)
                await send(message)
                return
            body = message.get("body", b"")
            headers = MutableHeaders(scope=start)
            etag = 'W/"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
            headers["etag"] = etag
            if if_none_match and _matches(if_none_match, etag):
                del headers["content-length"]
                del headers["content-type"]
                await send({"type": "http.response.start", "status": 304, "headers": headers.raw})
                await send({"type": "http.response.body", "body": b""})
                return
            await send(start)
            await send(message)

        await self.app(scope, receive, tagging_send)


class HeadAsGetMiddleware:
    """HEAD answers like GET without the body, on every route that has a GET."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def bodiless_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, bodiless_send)
