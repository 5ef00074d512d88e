"""Errors as RFC 9457 problem details (`application/problem+json`).

Every error the API returns has `type`, `title`, `status` and `detail`; errors about
the request's input add `errors`, one entry per bad parameter, each naming it.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from pydantic import BaseModel
from pydantic.alias_generators import to_camel
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.exc import DBAPIError
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.openapi import documented_methods
from db.api_keys import ApiKeyRefused, ApiRoleTooLow
from db.cost import CostLimitExceeded, QuotaExceeded
from db.engine import DATABASE_ERRORS, DATABASE_RETRY_AFTER_SECONDS, is_database_unavailable, is_unstorable_text
from db.filters import FilterError
from db.pagination import CursorError
from db.queries.common import parse_uuid
from db.queries.history import tombstone
from db.writes import InvalidInput, RecordGone, RecordNotFound, StaleRecord, StillReferenced, WriteError
from db.writes.idempotency import IdempotencyKeyReused
from db.writes.inputs import chosen_form_errors
from schema.errors import http_error

log = logging.getLogger(__name__)

PROBLEM_TYPES = {
    308: ("/problems/merged", "Merged into another record"),
    400: ("/problems/bad-request", "Bad request"),
    401: ("/problems/unauthenticated", "Not authenticated"),
    403: ("/problems/forbidden", "Forbidden"),
    404: ("/problems/not-found", "Not found"),
    405: ("/problems/method-not-allowed", "Method not allowed"),
    408: ("/problems/body-timeout", "Request body too slow"),
    409: ("/problems/conflict", "Conflict"),
    410: ("/problems/gone", "Gone"),
    412: ("/problems/precondition-failed", "Precondition failed"),
    413: ("/problems/body-too-large", "Request body too large"),
    422: ("/problems/invalid-parameters", "Invalid parameters"),
    429: ("/problems/rate-limited", "Too many requests"),
    500: ("/problems/internal-error", "Internal server error"),
    503: ("/problems/unavailable", "Service unavailable"),
}

# A 422 of its own type: the request is valid but asks for more than one request may.
COST_LIMIT_PROBLEM = ("/problems/cost-limit-exceeded", "Over a cost limit")


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(self, status: int, detail: str, *, errors: list[dict] | None = None,
                 type_: str | None = None, title: str | None = None, headers: dict | None = None):
        super().__init__(detail)
        default_type, default_title = PROBLEM_TYPES.get(status, ("about:blank", "Error"))
        self.status = status
        self.detail = detail
        self.errors = errors
        self.type = type_ or default_type
        self.title = title or default_title
        self.headers = headers or {}


class NotFound(Problem):
    def __init__(self, what: str, ref: str):
        super().__init__(404, f"No {what} with id {ref!r}.")


def database_unavailable() -> Problem:
    return Problem(503, "The database is unavailable; try again shortly.",
                   headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})


def api_key_problem(exc: ApiKeyRefused | ApiRoleTooLow) -> Problem:
    """401 for no usable key, with the challenge RFC 6750 asks for (its `error` tells a
    malformed header from a bad key); 403 for too low a role."""
    if isinstance(exc, ApiRoleTooLow):
        return Problem(403, exc.detail)
    challenge = 'Bearer realm="conflictkb"'
    if not exc.missing:
        challenge += ', error="invalid_request"' if exc.malformed else ', error="invalid_token"'
    return Problem(401, exc.detail, headers={"WWW-Authenticate": challenge})


def internal_error() -> Problem:
    return Problem(500, "The server failed to answer this request; it has been logged.")


def quota_exceeded(exc: QuotaExceeded) -> Problem:
    """429, with the RateLimit headers and when to try again (api/ratelimit.py)."""
    return Problem(429, exc.detail, headers={**exc.headers, "Retry-After": str(exc.retry_after)})


class Gone(Problem):
    """A deleted record (410), or a merged one (a read: 308 to the survivor); the
    tombstone says when, and where a merge went. A write to a merged record is a 410
    too: a client that follows redirects must not repeat a DELETE on the survivor."""

    def __init__(self, tombstone: dict, *, redirect_merged: bool = True):
        merged = tombstone.get("merged_into")
        if merged and redirect_merged:
            super().__init__(308, f"The {tombstone['type']} {tombstone['id']} was merged into {merged}.",
                             headers={"Location": f"/v1/{tombstone['type']}s/{merged}"})
        else:
            super().__init__(410, f"The {tombstone['type']} {tombstone['id']} was "
                                  + (f"merged into {merged}." if merged else "deleted."))
        self.tombstone = tombstone


async def absent(conn: AsyncConnection, record_type: str, ref: str) -> Problem:
    """The problem of a record that is not there: 410 with its tombstone if it was
    deleted or merged, else 404."""
    record_id = parse_uuid(ref)
    stone = await tombstone(conn, record_type, record_id) if record_id else None
    return Gone(stone) if stone else NotFound(record_type, ref)


def filter_problem(exc: FilterError, within: str | None = None) -> Problem:
    """A value refused by a filter's checks (422), named as REST names it: the query
    parameter (`near`), with the part at fault in the reason (`radius_km must be ...`);
    inside the JSON of a parameter `within` (`where`), that parameter, and the dotted
    path in it in the grammar's camelCase (`_or.0.near.radiusKm`). `code` says which
    check refused it (db.filters.FILTER_ERROR_CODES), as GraphQL's `inputCode` does."""
    if within is None:
        name, message = exc.field, exc.message  # the filter's names are REST's parameters
        reason = " ".join([*map(str, exc.path[1:]), message])
    else:
        name = within
        reason = f"{'.'.join(to_camel(p) if isinstance(p, str) else str(p) for p in exc.path)}: " \
                 f"{exc.message_named(to_camel)}"
    if exc.code == "not_in_vocabulary":
        reason += "; see GET /v1/vocabularies"
    return Problem(422, f"{name}: {reason}", errors=[{"name": name, "in": "query", "reason": reason,
                                                      "code": exc.code}])


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    body: dict[str, Any] = {"type": problem.type, "title": problem.title, "status": problem.status,
                            "detail": problem.detail}
    if instance:
        body["instance"] = instance
    if problem.errors:
        body["errors"] = problem.errors
    elif instance and is_graphql_path(instance):
        # refused before GraphQL ran (no key, too large a body, no database): a GraphQL
        # client reads the same refusal from `errors[].extensions.code`
        body["errors"] = [http_error(problem.status, problem.detail)]
    if isinstance(problem, Gone):
        body["tombstone"] = problem.tombstone
        merged = problem.tombstone.get("merged_into")
        if problem.status == 308 and instance and problem.tombstone["id"] in instance:
            # the same resource of the survivor (its attribution, its history)
            problem.headers["Location"] = instance.replace(problem.tombstone["id"], merged)
    return Response(orjson.dumps(body), status_code=problem.status, media_type="application/problem+json",
                    headers=problem.headers)


def is_graphql_path(path: str) -> bool:
    return path == "/graphql" or path.startswith("/graphql/")


def _body_model(request: Request) -> type[BaseModel] | None:
    field = getattr(request.scope.get("route"), "body_field", None)
    model = field.field_info.annotation if field is not None else None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _validation_errors(request: Request, exc: RequestValidationError) -> list[dict]:
    errors = []
    model = _body_model(request)
    if model is not None:  # a write's body: each field named as the client wrote it
        body_errors = [{**e, "loc": tuple(e["loc"][1:])} for e in exc.errors() if e.get("loc", ())[:1] == ("body",)]
        errors += [{"name": ".".join(map(str, path)) or "body", "in": "body", "reason": reason}
                   for path, reason in chosen_form_errors(body_errors, exc.body, model)] if body_errors else []
    for err in exc.errors():
        if model is not None and err.get("loc", ())[:1] == ("body",):
            continue
        loc = [str(part) for part in err.get("loc", ())]
        where = loc[0] if loc and loc[0] in ("query", "path", "body", "header") else None
        if where in ("query", "path", "header"):
            name = loc[1] if len(loc) > 1 else where  # `attribution`, not `attribution.0`
        else:
            name = ".".join(loc[1:] if where else loc) or "request"
        errors.append({"name": name, "in": where, "reason": err.get("msg", "invalid")})
    return errors


def method_not_allowed(request: Request, starlette_allow: str) -> Response:
    """A method the path does not take: 405 with every method it does take in `Allow`
    (Starlette's names those of the first route of the path only, GET where PATCH and
    DELETE are routes of their own); OPTIONS is answered 204 with the same `Allow`."""
    methods = {"OPTIONS", *(m.strip() for m in starlette_allow.split(",") if m.strip())}
    methods |= documented_methods(request.app, request.url.path)
    if "GET" in methods:
        methods.add("HEAD")
    allow = {"Allow": ", ".join(sorted(methods))}
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=allow)
    return problem_response(Problem(405, f"{request.method} is not a method of {request.url.path}; it takes "
                                         f"{allow['Allow']}.", headers=allow), request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = _validation_errors(request, exc)
        detail = "; ".join(f"{e['name']}: {e['reason']}" for e in errors)
        return problem_response(Problem(422, detail, errors=errors), request.url.path)

    @app.exception_handler(FilterError)
    async def _bad_filter(request: Request, exc: FilterError) -> Response:
        return problem_response(filter_problem(exc), request.url.path)

    @app.exception_handler(CostLimitExceeded)
    async def _over_cost_limit(request: Request, exc: CostLimitExceeded) -> Response:
        errors = [{"name": exc.parameter, "in": "query", "limit": exc.limit,
                   "reason": f"{exc.given} {exc.what}, more than the limit of {exc.limit}"}]
        type_, title = COST_LIMIT_PROBLEM
        return problem_response(Problem(422, f"{exc}; see the limits in the README.", errors=errors,
                                        type_=type_, title=title), request.url.path)

    @app.exception_handler(InvalidInput)
    async def _invalid_write(request: Request, exc: InvalidInput) -> Response:
        errors = [{"name": e.name, "in": e.where, "reason": e.reason} for e in exc.errors]
        return problem_response(Problem(422, str(exc), errors=errors), request.url.path)

    @app.exception_handler(WriteError)
    async def _refused_write(request: Request, exc: WriteError) -> Response:
        if isinstance(exc, RecordGone):
            return problem_response(Gone(exc.tombstone, redirect_merged=False), request.url.path)
        if isinstance(exc, StaleRecord):
            return problem_response(Problem(412, str(exc), headers={"ETag": exc.current_etag}), request.url.path)
        status = {RecordNotFound: 404, StillReferenced: 409, IdempotencyKeyReused: 422}.get(type(exc), 400)
        errors = [{"name": "Idempotency-Key", "in": "header", "reason": str(exc)}] \
            if isinstance(exc, IdempotencyKeyReused) else None
        return problem_response(Problem(status, str(exc), errors=errors), request.url.path)

    @app.exception_handler(CursorError)
    async def _bad_cursor(request: Request, exc: CursorError) -> Response:
        errors = [{"name": "cursor", "in": "query", "reason": str(exc)}]
        return problem_response(Problem(400, f"cursor: {exc}", errors=errors), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 405:
            return method_not_allowed(request, (getattr(exc, "headers", None) or {}).get("Allow", ""))
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no resource at {request.url.path}."
        return problem_response(Problem(exc.status_code, detail, headers=getattr(exc, "headers", None)),
                                request.url.path)

    @app.exception_handler(ApiKeyRefused)
    @app.exception_handler(ApiRoleTooLow)
    async def _api_key(request: Request, exc: ApiKeyRefused | ApiRoleTooLow) -> Response:
        return problem_response(api_key_problem(exc), request.url.path)

    @app.exception_handler(QuotaExceeded)
    async def _quota_exceeded(request: Request, exc: QuotaExceeded) -> Response:
        return problem_response(quota_exceeded(exc), request.url.path)

    async def _database_error(request: Request, exc: Exception) -> Response:
        if is_database_unavailable(exc):
            log.error("database unavailable on %s %s: %r", request.method, request.url.path, exc)
            return problem_response(database_unavailable(), request.url.path)
        if isinstance(exc, DBAPIError) and is_unstorable_text(exc):
            return problem_response(Problem(422, "A parameter contains a NUL character, which text cannot hold.",
                                            errors=[{"name": "request", "in": None, "reason": "NUL character"}]),
                                    request.url.path)
        return await _unexpected(request, exc)

    for error in DATABASE_ERRORS:
        app.add_exception_handler(error, _database_error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if is_database_unavailable(exc):  # raised outside the routes (a middleware's own query)
            log.error("database unavailable on %s %s: %r", request.method, request.url.path, exc)
            return problem_response(database_unavailable(), request.url.path)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(internal_error(), request.url.path)
