"""The FastAPI application factory."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import redis.asyncio as redis
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.ext.asyncio import AsyncConnection

from api.answer_cache import AnswerCacheMiddleware
from api.auth import RequireKeyForReads, request_principal
from api.body_limits import BodyLimitMiddleware
from api.deps import request_connection
from api.errors import install_error_handlers
from api.middleware import ETagMiddleware, HeadAsGetMiddleware, IsalGZipMiddleware
from api.observability import REQUEST_ID_HEADER, install_observability
from api.openapi import install_openapi, load_vocabularies
from api.pages import GRAPHQL_PATH, install_pages, render_graphiql, root_of
from api.params import check_query_params
from api.ratelimit import RateLimitMiddleware, request_charge
from api.routes import (
    apikeys,
    bench,
    changes,
    entities,
    events,
    exports,
    happenings,
    health,
    metrics,
    stats,
    writes,
)
from api.security_headers import install_security_headers
from api.settings import Settings, normalise_database_url
from db.cache import AnswerCache, GenerationReader
from db.engine import make_engine, watch_pool
from db.metrics import forget_killed_processes, process_exited
from db.pagination import CursorCodec
from db.rate_limits import RateLimiter
from schema.app import graphql_router
from schema.context import GraphQLContext

V1 = "/v1"

DESCRIPTION = """
A knowledge base of conflict events, actors, places and the **source claims** behind
every figure. Each event's fatalities and each actor's attribution status
(confirmed / alleged / contested / unknown) are derived from the claims, and every
answer says which claims.

Errors are `application/problem+json` (RFC 9457). Lists are paged with opaque
cursors: follow `next_cursor` (or the `Link: rel="next"` header).

GraphQL (with the GraphiQL explorer) is at [/graphql](/graphql); a page for people at [/](/).
"""


async def graphql_context(request: Request) -> AsyncIterator[GraphQLContext]:
    # (the app's parts from its state, not as dependencies of their own: FastAPI solves
    # each dependency at every request, and this one is on every GraphQL request's path)
    state = request.app.state
    async with AsyncExitStack() as stack:
        async def connect() -> AsyncConnection:
            return await stack.enter_async_context(request_connection(state.engine))

        yield GraphQLContext(connect, state.cursor_codec, state.answer_cache, authenticate=lambda: request_principal(request),
                             charge=request_charge(request.scope),
                             plan_reads=state.settings.graphql_planner,
                             fresh="no-cache" in request.headers.get("cache-control", ""))


def tune_collector() -> None:
    """What start-up allocated lives as long as the process: keep the collector from
    walking it on every collection, and collect less often (answers allocate many
    short-lived objects; full passes were the p95 outliers)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)


def worker_app() -> FastAPI:
    """The app of one worker of `conflictkb serve --workers N`, a process of its own: its
    settings, the database and Redis URLs included, from the environment `serve` prepared."""
    app = create_app(Settings())
    tune_collector()
    return app


def create_app(settings: Settings | None = None, *, database_url: str | None = None,
               redis_url: str | None = None,
               replica_urls: list[str] | None = None) -> FastAPI:  # routed by the lead's branch
    settings = settings or Settings()
    database_url = normalise_database_url(database_url or settings.database_url or "")
    redis_url = redis_url or settings.redis_url
    if not database_url or not redis_url:
        raise ValueError("create_app needs a database URL and a Redis URL (`conflictkb serve` starts both)")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.settings = settings
        app.state.engine = make_engine(database_url, pool_size=settings.db_pool_size,
                                       statement_timeout=settings.read_statement_timeout,
                                       long_statement_timeout=settings.write_statement_timeout)
        watch_pool(app.state.engine)
        forget_killed_processes()
        # Short timeouts: Redis is a cache, and a slow cache must never slow an answer.
        app.state.redis = redis.from_url(redis_url, socket_timeout=settings.redis_timeout_seconds,
                                         socket_connect_timeout=settings.redis_timeout_seconds)
        app.state.cursor_codec = CursorCodec(settings.cursor_key)
        await load_vocabularies(app, app.state.engine)  # the OpenAPI document's enums
        app.state.read_generation = GenerationReader(database_url)
        app.state.answer_cache = AnswerCache(app.state.redis, app.state.read_generation,
                                             retry_after=settings.redis_retry_seconds)
        app.state.rate_limiter = RateLimiter(app.state.redis, retry_after=settings.redis_retry_seconds)
        # Everything alive now (modules, the schema, the app) lives as long as the
        # process: moved out of the collector's reach, a full collection no longer
        # walks it in the middle of a request (~10 ms at p95 on a page of events).
        gc.freeze()
        try:
            yield
        finally:
            await app.state.answer_cache.drain()
            await app.state.read_generation.close()
            await app.state.redis.aclose()
            await app.state.engine.dispose()
            process_exited(os.getpid())  # this worker's live gauges leave the sums

    # Swagger UI at /docs is api/pages.py's (from files the package ships, where FastAPI's
    # loads it from a CDN); no ReDoc, whose page loads fonts from Google; no OAuth2 flow.
    app = FastAPI(title="conflictkb", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None, swagger_ui_oauth2_redirect_url=None)
    install_error_handlers(app)
    install_openapi(app, keys_for_reads=settings.require_key_for_reads)
    # Added innermost first: the answer cache (api/answer_cache.py) keeps plain bodies;
    # the key check for reads in front of it (a hit answers before any route runs); ETags
    # on the bodies; HEAD outside (the tag of the body it drops); gzip; CORS outermost.
    app.add_middleware(AnswerCacheMiddleware,
                       uncached_paths=[V1 + path for path in (*exports.EXPORT_PATHS, *apikeys.PER_CALLER_PATHS)])
    if settings.require_key_for_reads:
        app.add_middleware(RequireKeyForReads)
    app.add_middleware(ETagMiddleware)
    app.add_middleware(HeadAsGetMiddleware)
    # Browser frontends on other origins read the API; large JSON answers travel gzipped.
    # Level 1 (nginx's default; zlib's level 5 took 26 ms for a 3 MB stats answer, ISA-L's
    # level 1 takes 3). Compressed in the event loop's thread: handed to a worker thread
    # (Starlette's default above 128 KiB), the same answer took twice as long to read
    # from PostgreSQL (the two threads contend for the interpreter lock).
    app.add_middleware(IsalGZipMiddleware, minimum_size=1024, compresslevel=1, thread_minimum_size=1 << 62)
    # Bodies checked (key, size, time) before anything reads them; inside CORS, so a
    # browser can read the refusal.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes,
                       max_graphql_body_bytes=settings.max_graphql_body_bytes,
                       body_timeout_seconds=settings.body_timeout_seconds,
                       unlimited_paths=["/bench/bytes"] if settings.bench_routes else [])
    # Rate limits (api/ratelimit.py) in front of the cache, so cached answers count;
    # inside CORS, so a browser can read a 429 (and a preflight costs nothing).
    if settings.rate_limits:
        app.add_middleware(RateLimitMiddleware, settings=settings)
    app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
                       allow_headers=["*"], max_age=3600,
                       expose_headers=["Link", "ETag", "Location", "RateLimit", "RateLimit-Policy", "Retry-After",
                                       REQUEST_ID_HEADER.decode()])
    # Everything served, by prefix: the routes, and their templates, by which /metrics and
    # the access log name requests (api/observability.py).
    # (GraphQL first: a request is matched against the routes in order, and /graphql is
    # one path where /v1 is dozens)
    served: list[tuple[str, APIRouter]] = [
        (GRAPHQL_PATH, graphql_router(graphql_context,
                                      ide_page=lambda request: render_graphiql(root_of(request.scope)))),
        *((V1, router) for router in (events.router, happenings.router, exports.router, entities.router,
                                      stats.router, apikeys.router, changes.router, writes.router)),
        ("", health.router),
        ("", metrics.router),
        *([("", bench.router)] if settings.bench_routes else []),
    ]
    for prefix, router in served:
        app.include_router(router, prefix=prefix, dependencies=[Depends(check_query_params)] if prefix == V1 else None)
    pages = install_pages(app)  # the front page, /docs and /static (GraphiQL: the GraphQL router's)
    # Outermost, around even the handler of unhandled errors: every answer carries them.
    install_security_headers(app, pages=pages, hsts_max_age=settings.hsts_max_age_seconds)
    # Around everything, the security headers too: every answer is counted and logged as sent.
    install_observability(app, [prefix + route.path for prefix, router in served for route in router.routes],
                          settings.trusted_proxies)
    return app
