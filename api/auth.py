"""Who a request speaks for: the API key in `Authorization: Bearer <key>` or
`X-API-Key: <key>` (the keys themselves: db/api_keys.py).

REST routes declare the role they need as a parameter: `key: EditorKey` on a write,
`key: AdminKey`, `key: ReaderKey` for any valid key. GraphQL resolvers ask their context
(`await info.context.principal("editor")`, schema/context.py), which calls
`request_principal` here. Reads are public unless CONFLICTKB_REQUIRE_KEY_FOR_READS is
set; then `RequireKeyForReads` asks every request to /v1 and /graphql for a key. A
request's key is looked up once, however many of these ask for it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import Problem, api_key_problem, database_unavailable, problem_response
from db.api_keys import ApiKeyRefused, ApiPrincipal, Role, principal_for_token
from db.engine import is_database_unavailable

log = logging.getLogger(__name__)

# In the scope of a request whose key has been looked up: the key, or why it was refused.
PRINCIPAL = "conflictkb.api_principal"
REFUSED = "conflictkb.api_key_refused"

HOW_TO_SEND = "send `Authorization: Bearer <key>` or `X-API-Key: <key>`"


def token_from_headers(headers: Headers) -> str:
    """The key a request carries; ApiKeyRefused saying what is wrong when there is none
    or the headers are not what they should be."""
    authorization = headers.get("authorization")
    api_key = headers.get("x-api-key")
    bearer = None
    if authorization is not None:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            bearer = credentials.strip()
            if not bearer:
                raise ApiKeyRefused(f"The Authorization header says Bearer but carries no key; {HOW_TO_SEND}.",
                                    malformed=True)
        elif api_key is None:
            # With an X-API-Key beside it, another scheme is left alone: a proxy in front
            # may hold its own Basic credentials there.
            what = f"uses the {scheme[:20]!r} scheme" if scheme else "is empty"
            raise ApiKeyRefused(f"The Authorization header {what}; {HOW_TO_SEND}.", malformed=True)
    if api_key is not None:
        api_key = api_key.strip()
        if not api_key:
            raise ApiKeyRefused(f"The X-API-Key header is empty; {HOW_TO_SEND}.", malformed=True)
        if bearer is not None and bearer != api_key:
            raise ApiKeyRefused("Authorization and X-API-Key carry different keys; send one.", malformed=True)
    token = bearer or api_key
    if token is None:
        raise ApiKeyRefused(f"This needs an API key: {HOW_TO_SEND} (keys are made with "
                            "`conflictkb apikey create`).", missing=True)
    return token


async def request_principal(connection: HTTPConnection) -> ApiPrincipal:
    """The key the request carries, looked up once per request; ApiKeyRefused when it
    has none, a malformed one, or one that is unknown or revoked."""
    principal = connection.scope.get(PRINCIPAL)
    if principal is None:
        if (refused := connection.scope.get(REFUSED)) is not None:
            raise refused
        try:
            token = token_from_headers(connection.headers)
            async with connection.app.state.engine.begin() as conn:
                principal = await principal_for_token(conn, token)
            if principal is None:
                raise ApiKeyRefused("The API key is not valid: it is unknown or has been revoked.")
        except ApiKeyRefused as exc:
            connection.scope[REFUSED] = exc
            if not exc.missing:  # a key sent and refused: what an operator watches for (never the key)
                log.warning("authentication failed: %s", exc.detail)
            raise
        connection.scope[PRINCIPAL] = principal
    return principal


# Declared so that /docs shows which routes need a key and offers to send one; what the
# headers hold is read by token_from_headers, which can say what is wrong with them.
_DOCUMENTED_BEARER = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ckb_…`.")
_DOCUMENTED_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key: `X-API-Key: ckb_…`.")


def require_role(role: Role) -> Callable[..., Awaitable[ApiPrincipal]]:
    """A dependency: the request's key if its role is `role` or higher; else a 401
    (no valid key) or a 403 (too low a role) problem."""

    async def api_key_with_role(
            request: Request, _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_DOCUMENTED_BEARER)],
            _header: Annotated[str | None, Security(_DOCUMENTED_HEADER)]) -> ApiPrincipal:
        return (await request_principal(request)).require(role)

    return api_key_with_role


ReaderKey = Annotated[ApiPrincipal, Depends(require_role("reader"))]  # any valid key
EditorKey = Annotated[ApiPrincipal, Depends(require_role("editor"))]
AdminKey = Annotated[ApiPrincipal, Depends(require_role("admin"))]


def _is_graphiql_page(scope: Scope) -> bool:
    """A browser asking for the GraphiQL page (strawberry serves it for a GET with no
    query that accepts HTML): the page holds no data, and a browser cannot send a key to
    load it, only from it (GraphiQL's Headers tab)."""
    return (scope["type"] == "http" and scope["method"] == "GET"
            and "query" not in parse_qs(scope["query_string"].decode("latin-1"))
            and "text/html" in Headers(scope=scope).get("accept", ""))


def needs_key_for_reads(scope: Scope) -> bool:
    path = scope["path"]
    if path.startswith("/v1/"):
        return True
    return (path == "/graphql" or path.startswith("/graphql/")) and not _is_graphiql_page(scope)


class RequireKeyForReads:
    """With CONFLICTKB_REQUIRE_KEY_FOR_READS: every request to /v1 and /graphql needs a
    valid key, of any role; /healthz, /readyz and the OpenAPI docs stay open.

    A middleware rather than a dependency of the routers: it must stand in front of the
    answer cache (api/answer_cache.py), which serves a hit before any route, and so any
    dependency, runs. Standing outside the app's exception handlers, it turns the errors
    they would have turned into problems itself."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not needs_key_for_reads(scope):
            await self.app(scope, receive, send)
            return
        problem = await key_problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
        else:
            await refuse(problem, scope, receive, send)


async def key_problem(scope: Scope) -> Problem | None:
    """None if the request carries a valid key (looked up once, kept in the scope); else
    the problem to answer: 401 without a valid key, 503 if PostgreSQL cannot say. For the
    middlewares that check keys in front of the app's exception handlers."""
    try:
        await request_principal(HTTPConnection(scope))
    except ApiKeyRefused as exc:
        return api_key_problem(exc)
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        log.error("database unavailable looking up the API key of %s %s: %r",
                  scope.get("method", "WEBSOCKET"), scope["path"], exc)
        return database_unavailable()
    return None


async def refuse(problem: Problem, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer `problem` from a middleware: a problem+json response, or a websocket closed."""
    if scope["type"] == "websocket":
        # Closed before it is accepted, the handshake is answered 403 (ASGI has no other way).
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008, "reason": problem.detail[:120]})
        return
    await problem_response(problem, scope["path"])(scope, receive, send)
