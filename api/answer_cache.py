"""Cache-aside for the public GET answers of /v1 (lists, details, stats), in Redis.

The key is the path and the query parameters in a canonical order, under the data
generation (db/cache.py): any committed write moves the generation, so the next
request misses and a stale answer is never served. A hit costs one PostgreSQL query
(the generation) and one Redis read, and skips parameter parsing and the query layer;
answers other than 200 are not stored. Identical concurrent misses compute once
(single-flight) and Redis trouble answers from PostgreSQL (fail-open), both by
db/cache.AnswerCache.

Responses say `X-Cache: hit` or `miss`, and `Cache-Control: public, no-cache`: a
shared cache may keep them but must revalidate (the ETag gives a 304), since the next
write can change them. A request with `Cache-Control: no-cache` is computed afresh,
totals and stats inside it included.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import database_unavailable, problem_response
from db.cache import KEY_PREFIX, answering_request
from db.engine import is_database_unavailable

log = logging.getLogger(__name__)

CACHED_PREFIX = "/v1/"
# Headers of an answer worth keeping; the rest is per response.
_KEPT_HEADERS = (b"content-type", b"link")


@dataclass
class CapturedResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def encode(self) -> bytes | None:
        """Stored form: the kept headers as JSON, a newline, the body. None: not stored."""
        if self.status != 200:
            return None
        kept = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.headers if k in _KEPT_HEADERS]
        return orjson.dumps(kept) + b"\n" + self.body

    @classmethod
    def decode(cls, stored: bytes) -> CapturedResponse:
        head, _, body = stored.partition(b"\n")
        return cls(200, [(k.encode("latin-1"), v.encode("latin-1")) for k, v in orjson.loads(head)], body)


def cache_key(generation: str, scope: Scope) -> str:
    """The answer's key: path and query with the parameters sorted by name; the values
    of a repeated parameter keep their order (`group_by=year&group_by=country` is not
    `group_by=country&group_by=year`)."""
    params = sorted(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True),
                    key=lambda pair: pair[0])
    digest = hashlib.sha256(f"{scope['path']}?{urlencode(params)}".encode()).hexdigest()[:40]
    return f"{KEY_PREFIX}:{generation}:http:{digest}"


class AnswerCacheMiddleware:
    """`uncached_paths`: GET paths under /v1 left alone. An export of every event is
    streamed as it is read and may be gigabytes: capturing it to store would hold the
    whole of it in memory (and then in Redis) before the first byte left. An answer
    about the caller (`/v1/apikeys/me`) must never be served to another caller, nor
    computed once for callers arriving together."""

    def __init__(self, app: ASGIApp, uncached_paths: Collection[str] = ()):
        self.app = app
        self.uncached_paths = frozenset(uncached_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "GET" or not scope["path"].startswith(CACHED_PREFIX)
                or scope["path"] in self.uncached_paths):
            await self.app(scope, receive, send)
            return
        cache = scope["app"].state.answer_cache
        try:
            generation = await cache.read_generation()
        except Exception as exc:  # noqa: BLE001 - no generation, no caching: the route answers (503 without PostgreSQL)
            log.debug("answer cache: no generation (%s)", exc)
            await self.app(scope, receive, send)
            return

        async def compute() -> CapturedResponse:
            return await _capture(self.app, scope, receive)

        # the totals and stats under this answer: the same generation, as fresh
        try:
            with answering_request(generation, fresh="no-cache" in Headers(scope=scope).get("cache-control", "")):
                answer = await cache.answer_at(cache_key(generation, scope), compute,
                                               encode=CapturedResponse.encode, decode=CapturedResponse.decode)
        except Exception as exc:
            # outside the app's exception handlers: a lost database is answered here
            if not is_database_unavailable(exc):
                raise
            log.error("database unavailable answering %s: %r", scope["path"], exc)
            await problem_response(database_unavailable(), scope["path"])(scope, receive, send)
            return
        response: CapturedResponse = answer.value
        headers = [*response.headers, (b"content-length", str(len(response.body)).encode())]
        if response.status == 200:
            headers += [(b"x-cache", b"hit" if answer.status == "hit" else b"miss"),
                        (b"cache-control", b"public, no-cache")]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})


async def _capture(app: ASGIApp, scope: Scope, receive: Receive) -> CapturedResponse:
    """Run the route and keep its whole response (the answers cached here are not streamed)."""
    start: Message = {}
    chunks: list[bytes] = []

    async def capture(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture)
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    return CapturedResponse(start["status"], headers, b"".join(chunks))
