"""The OpenAPI document: FastAPI's, completed with what the routes alone do not say.

Each route declares its answer (`response_model`, a model of api/schemas.py that
describes the JSON PostgreSQL builds, never run over it). What is the same for many
routes is added here, once, from what the document already says of each operation:

- the problems (`application/problem+json`) it can answer with, by what it takes: a
  path id (404, 410; 308 where its kind of record can be merged), a key (401, 403), an
  If-Match (412), a cursor (400), a body (413), and everywhere 422, 429 and 503;
- the enums of fields whose values are a vocabulary's (db/queries/vocabulary.py
  `in_vocabulary`): the rows of the tables the migrations seed, read at start-up.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from api.schemas import PROBLEM_RESPONSES, GeoJSONFeatureCollection, GraphQLRequest, GraphQLResponse, ProblemDetail
from db.queries.vocabulary import VOCABULARY_KEY, vocabularies, vocabulary_values

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Models the document refers to by name outside any route's own models.
_MODELS: tuple[type[BaseModel], ...] = (ProblemDetail, GeoJSONFeatureCollection, GraphQLRequest, GraphQLResponse)

_SECONDS = {"type": "string", "pattern": r"^[0-9]+$"}
RETRY_AFTER = {"description": "Seconds to wait before trying again.", "required": True, "schema": _SECONDS}
RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": {"description": "The quota that applies (draft-ietf-httpapi-ratelimit-headers), e.g. "
                                        '`"default";q=600;w=60`.', "schema": {"type": "string"}},
    "RateLimit": {"description": 'What is left of it and when it is renewed, e.g. `"default";r=598;t=42`.',
                  "schema": {"type": "string"}},
}
_PROBLEM_HEADERS: dict[int, dict[str, Any]] = {
    308: {"Location": {"description": "The survivor of the merge.", "required": True, "schema": {"type": "string"}}},
    401: {"WWW-Authenticate": {"description": "`Bearer`, with `error` when a key was sent.", "required": True,
                               "schema": {"type": "string"}}},
    412: {"ETag": {"description": "The record's current ETag.", "required": True, "schema": {"type": "string"}}},
    429: {"Retry-After": RETRY_AFTER, **RATE_LIMIT_HEADERS},
    503: {"Retry-After": RETRY_AFTER},
}
WRITE_METHODS = ("post", "put", "patch", "delete")


GRAPHQL_PATH = "/graphql"
_GRAPHQL_ANSWER = {"application/json": {"schema": {"$ref": "#/components/schemas/GraphQLResponse"}}}
_NOT_A_GRAPHQL_REQUEST = {"description": "Not a GraphQL request (not a JSON object, not UTF-8, no query, "
                                         "variables that are not an object), with a GraphQL error body.",
                          "content": _GRAPHQL_ANSWER}
_GRAPHQL_OPERATIONS: dict[str, dict[str, Any]] = {
    "get": {
        "summary": "GraphiQL, or a query in the URL",
        "description": "A browser (Accept: text/html) gets the GraphiQL explorer; `?query=...` runs a query "
                       "(not a mutation). See POST for the answers.",
        "parameters": [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                       for name in ("query", "variables", "operationName")],
        "responses": {"200": {"description": "The GraphiQL page, or the query's answer.",
                              "content": {"text/html": {"schema": {"type": "string"}}, **_GRAPHQL_ANSWER}},
                      "400": _NOT_A_GRAPHQL_REQUEST},
    },
    "post": {
        "summary": "Run a GraphQL request",
        "description": "Queries and mutations (mutations need an editor's key). A request GraphQL can run is "
                       "answered 200, with `errors` beside `data` for what went wrong, each with "
                       "`extensions.code` (README, GraphQL errors); a body that is not a GraphQL request, 400 "
                       "with a GraphQL error body.",
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/GraphQLRequest"}}}},
        "responses": {"200": {"description": "`data` and/or `errors`.", "content": _GRAPHQL_ANSWER},
                      "400": _NOT_A_GRAPHQL_REQUEST},
    },
}
HEALTH_PATHS = ("/healthz", "/readyz")


def problem_statuses(path: str, method: str, operation: dict[str, Any], *, keys_for_reads: bool,
                     mergeable: frozenset[str]) -> set[int]:
    """The problem statuses `method path` can answer with, from what it takes."""
    params = operation.get("parameters", [])
    taken = {(p["in"], p["name"].lower()) for p in params}
    by_id = any(where == "path" for where, _ in taken)
    statuses = {429, 503}
    if path.startswith("/v1/"):  # (api/params.py check_query_params: unknown parameters too)
        statuses.add(422)
    if method in WRITE_METHODS or "requestBody" in operation:
        statuses |= {400, 408, 413}  # (400: a body that is not JSON; 408, 413: api/body_limits.py)
    if by_id:
        statuses |= {404, 410}
        if method == "get" and any(path.startswith(prefix) for prefix in mergeable):
            statuses.add(308)
    if {("query", "cursor"), ("query", "since")} & taken:
        statuses.add(400)
    if operation.get("security") or (keys_for_reads and path.startswith(("/v1/", "/graphql"))):
        statuses |= {401, 403}
    if ("header", "if-match") in taken:
        statuses.add(412)
    if method == "delete":
        statuses.add(409)
    return statuses


def _problem_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": PROBLEM_RESPONSES[status],
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}}}
    if status in _PROBLEM_HEADERS:
        response["headers"] = _PROBLEM_HEADERS[status]
    return response


def _is_fastapi_validation_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref", "").endswith("/HTTPValidationError")


def declare_problems(document: dict[str, Any], *, keys_for_reads: bool) -> None:
    """Every operation's problem answers; a status a route declares itself is its own
    (/readyz's 503 is its JSON report), but for FastAPI's own 422, which the API never
    sends (its 422 is a problem, api/errors.py)."""
    paths = document.get("paths", {})
    if GRAPHQL_PATH in paths:  # strawberry's routes say nothing of the request or the answer
        paths[GRAPHQL_PATH] = {method: {**operation, **_GRAPHQL_OPERATIONS[method]}
                               for method, operation in paths[GRAPHQL_PATH].items() if method in _GRAPHQL_OPERATIONS}
    # A record kind that has a merge operation: reads of a merged one answer 308.
    mergeable = frozenset(path.split("{", 1)[0] for path in paths if path.endswith("/merge"))
    for path, operations in paths.items():
        if path in HEALTH_PATHS:  # they answer what they declare, whatever else is down or limited
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in sorted(problem_statuses(path, method, operation, keys_for_reads=keys_for_reads,
                                                  mergeable=mergeable)):
                declared = responses.get(str(status))
                if declared is None or _is_fastapi_validation_error(declared):
                    responses[str(status)] = _problem_response(status)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in _MODELS:
        definition = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
        schemas.update(definition.pop("$defs", {}))
        schemas[model.__name__] = definition
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def _with_enum(schema: dict[str, Any], values: list[str]) -> None:
    if schema.get("type") == "array":
        schema["items"] = {**schema.get("items", {}), "enum": values}
    elif "anyOf" in schema:  # optional: the string branch takes the enum
        for branch in schema["anyOf"]:
            if branch.get("type") in ("string", "array"):
                _with_enum(branch, values)
    else:
        schema["enum"] = values


def declare_vocabularies(node: Any, values: dict[str, list[str]]) -> None:
    """Each schema marked `in_vocabulary(name)` takes the vocabulary's values as an enum."""
    if isinstance(node, dict):
        name = node.get(VOCABULARY_KEY)
        if isinstance(name, str) and values.get(name):
            _with_enum(node, values[name])
        for child in node.values():
            declare_vocabularies(child, values)
    elif isinstance(node, list):
        for child in node:
            declare_vocabularies(child, values)


async def load_vocabularies(app: FastAPI, engine: AsyncEngine) -> None:
    """Read the vocabularies for the document (at start-up: they change only with a
    migration). PostgreSQL not there yet: the document goes without enums, and says
    where the values are (GET /v1/vocabularies)."""
    try:
        async with asyncio.timeout(5), engine.connect() as conn:
            app.state.vocabulary_values = vocabulary_values(await vocabularies(conn) or {})
    except Exception as exc:  # the document is not worth failing to start for
        log.warning("the OpenAPI document goes without enums: vocabularies not read (%s)", exc)


def documented_methods(app: FastAPI, path: str) -> set[str]:
    """The methods the OpenAPI document lists for the path `path` falls under."""
    templates = getattr(app.state, "documented_paths", None)
    if templates is None:
        templates = app.state.documented_paths = [
            (re.compile("^" + re.sub(r"\\{[^}/]+\\}", "[^/]+", re.escape(template)) + "$"),
             {method.upper() for method in operations})
            for template, operations in app.openapi().get("paths", {}).items()]
    return {method for pattern, methods in templates if pattern.match(path) for method in methods}


def install_openapi(app: FastAPI, *, keys_for_reads: bool) -> None:
    """Make `app.openapi()` (served at /openapi.json, shown at /docs) the completed document."""
    fastapi_document = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = fastapi_document()
            declare_problems(document, keys_for_reads=keys_for_reads)
            values = getattr(app.state, "vocabulary_values", None)
            if values:
                declare_vocabularies(document, values)
            else:  # built again once the vocabularies have been read
                app.openapi_schema = None
                return document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
