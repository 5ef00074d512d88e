"""Liveness and readiness."""

import asyncio
import logging

from fastapi import APIRouter, Request

from api.responses import JSONResponse
from api.schemas import Health, Readiness
from db.engine import ping

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

# A probe's answer is about this moment: never kept by a cache.
NOT_STORED = {"Cache-Control": "no-store"}
# How long a client or load balancer may wait before asking a server without PostgreSQL again.
RETRY_AFTER_SECONDS = 5


@router.get("/healthz", response_model=Health, response_class=JSONResponse)
async def healthz():
    """The process is alive (it checks nothing else)."""
    return JSONResponse({"status": "ok"})


async def _reachable(name: str, check, timeout: float) -> bool:
    try:
        await asyncio.wait_for(check(), timeout)
    except Exception as exc:  # any failure means "not reachable"; why is for the log, not the public answer
        log.warning("readiness: %s unreachable (%s: %s)", name, type(exc).__name__, exc)
        return False
    return True


@router.get("/readyz", response_model=Readiness, response_class=JSONResponse, responses={
    503: {"model": Readiness, "description": "PostgreSQL is not reachable."}})
async def readyz(request: Request):
    """`ok`; `degraded` without Redis (answers still come from PostgreSQL, uncached);
    `down`, a 503 with Retry-After, without PostgreSQL. Which service failed and why is
    logged, not answered."""
    state = request.app.state
    where = state.engine.url.render_as_string(hide_password=True)
    postgres, redis = await asyncio.gather(_reachable(f"PostgreSQL at {where}", lambda: ping(state.engine), 2.0),
                                           _reachable("Redis", state.redis.ping, 1.0))
    checks = {"postgres": "ok" if postgres else "down", "redis": "ok" if redis else "down"}
    if not postgres:
        return JSONResponse({"status": "down", "checks": checks}, status_code=503,
                            headers={**NOT_STORED, "Retry-After": str(RETRY_AFTER_SECONDS)})
    replicas = state.read_routing.status()
    degraded = not redis or not all(replica["takes_reads"] for replica in replicas)
    return JSONResponse({"status": "degraded" if degraded else "ok", "checks": checks,
                         **({"replicas": replicas} if replicas else {})}, headers=NOT_STORED)
