"""What an operator sees of each request: its id, one access line, and the /metrics series.

One ASGI middleware, the outermost of all (install_observability), so it sees every
answer as the client gets it: cached ones (answered before routing), refusals of the
rate limits and body limits, and the 500 of an unhandled error.

- The request id: a client's `X-Request-ID` (1 to 128 letters, digits and `._:@/+=-`;
  anything else is replaced, since it lands in logs), or a new one; echoed in the
  answer's `X-Request-ID` and carried by every log line written while answering
  (api/logs.py).
- The access line (logger `conflictkb.access`, INFO): method, path and query, the route's
  template, status, duration, bytes sent, `X-Cache`, the API key's id (never the key) and
  the client's address (the one the rate limits charge: X-Forwarded-For from trusted
  proxies only).
- The series of db/metrics.py: requests and their latency by route template, method and
  status; requests in progress.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable
from functools import lru_cache

from fastapi import FastAPI
from starlette.routing import Mount, Route, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import PRINCIPAL
from api.logs import request_id
from api.ratelimit import Networks, client_address
from db.metrics import REQUEST_SECONDS, REQUESTS, REQUESTS_IN_PROGRESS

log = logging.getLogger("conflictkb.access")
errors = logging.getLogger("conflictkb.errors")

REQUEST_ID_HEADER = b"x-request-id"
_ACCEPTED_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
UNMATCHED_ROUTE = "<unmatched>"  # a path no route serves: one label, whatever was asked
_LOGGED_QUERY_CHARACTERS = 1000


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _ACCEPTED_REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


class RouteTemplates:
    """The template of the route a request is for (`/v1/events/{event_id}`), by the
    templates' own patterns: a cached answer never reaches the router, and a middleware
    that copies the scope (HEAD) hides the route the router found. The fewest parameters
    first, so a literal path wins over a template that would also match it."""

    def __init__(self, templates: Iterable[str]):
        ordered = sorted(set(templates), key=lambda template: (template.count("{"), template))
        self._patterns = [(compile_path(template)[0], template) for template in ordered]
        self.of = lru_cache(maxsize=4096)(self._find)

    def _find(self, path: str) -> str:
        return next((template for pattern, template in self._patterns if pattern.match(path)), UNMATCHED_ROUTE)


class ObservedRequests:
    def __init__(self, app: ASGIApp, routes: RouteTemplates, trusted_proxies: Networks):
        self.app = app
        self.routes = routes
        self.trusted_proxies = tuple(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # a websocket: its log lines carry an id, it has no answer to log
            token = request_id.set(_request_id(scope))
            try:
                await self.app(scope, receive, send)
            finally:
                request_id.reset(token)
            return
        started = time.perf_counter()
        this_request = _request_id(scope)
        token = request_id.set(this_request)
        status, cache, sent = 500, None, 0
        echoed = (REQUEST_ID_HEADER, this_request.encode("ascii"))

        async def observed_send(message: Message) -> None:
            nonlocal status, cache, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(name, value) for name, value in message.get("headers", []) if name != REQUEST_ID_HEADER]
                cache = next((value.decode("latin-1") for name, value in headers if name == b"x-cache"), None)
                message = {**message, "headers": [*headers, echoed]}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        REQUESTS_IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, observed_send)
        except Exception:
            # Starlette has answered 500 and re-raised for the server to log: logged here, the
            # line carries the request id (uvicorn's would not: the request's context is over)
            errors.exception("unhandled error answering %s %s", scope["method"], scope["path"])
        finally:
            REQUESTS_IN_PROGRESS.dec()
            duration = time.perf_counter() - started
            route = self.routes.of(scope["path"].removeprefix(scope.get("root_path", "")))
            REQUESTS.labels(route, scope["method"], str(status)).inc()
            REQUEST_SECONDS.labels(route, scope["method"]).observe(duration)
            self._access_line(scope, route, status, duration, sent, cache)
            request_id.reset(token)

    def _access_line(self, scope: Scope, route: str, status: int, duration: float, sent: int,
                     cache: str | None) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        query = scope["query_string"].decode("latin-1")[:_LOGGED_QUERY_CHARACTERS]
        target = f"{scope['path']}?{query}" if query else scope["path"]
        principal = scope.get(PRINCIPAL)
        client = client_address(scope, self.trusted_proxies)
        log.info('%s "%s %s" %d %.1f ms%s', client, scope["method"], target, status, duration * 1000,
                 f" cache={cache}" if cache else "",
                 extra={"method": scope["method"], "path": target, "route": route, "status": status,
                        "duration_ms": round(duration * 1000, 2), "bytes": sent, "cache": cache,
                        "api_key_id": principal.key_id if principal else None, "client": client})


def install_observability(app: FastAPI, templates: Iterable[str], trusted_proxies: Networks) -> None:
    """Wrap the whole middleware stack, security headers and Starlette's handler of
    unhandled errors included (see the module's docstring). `templates`: those of the
    routers the app includes; its own pages (/docs, /openapi.json) and mounts are added."""
    build_stack = app.build_middleware_stack

    def build_observed() -> ASGIApp:
        own = [route.path if isinstance(route, Route) else route.path + "/{path:path}"
               for route in app.routes if isinstance(route, (Route, Mount))]
        return ObservedRequests(build_stack(), RouteTemplates([*templates, *own]), trusted_proxies)

    app.build_middleware_stack = build_observed
