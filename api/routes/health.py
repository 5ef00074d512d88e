"""Liveness and readiness."""

import asyncio
import time

from fastapi import APIRouter, Request

from api.responses import JSONResponse
from api.schemas import Health, Readiness
from db.engine import ping

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, response_class=JSONResponse)
async def healthz():
    """The process is alive (it checks nothing else)."""
    return JSONResponse({"status": "ok"})


async def _timed(check, timeout: float) -> dict:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout)
    except Exception as exc:  # any failure means "not reachable", reported with its reason
        return {"status": "unavailable", "error": f"{type(exc).__name__}: {exc}"[:200]}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


@router.get("/readyz", response_model=Readiness, response_class=JSONResponse, responses={
    503: {"model": Readiness, "description": "PostgreSQL is not reachable."}})
async def readyz(request: Request):
    """PostgreSQL and Redis reachable? 503 without PostgreSQL; Redis down is `degraded`
    (answers still come from PostgreSQL)."""
    state = request.app.state

    postgres_check, redis_check = await asyncio.gather(_timed(lambda: ping(state.engine), 2.0),
                                                       _timed(state.redis.ping, 1.0))
    if postgres_check["status"] != "ok":
        status, code = "unavailable", 503
    elif redis_check["status"] != "ok":
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return JSONResponse({"status": status, "checks": {"postgres": postgres_check, "redis": redis_check}},
                        status_code=code)
