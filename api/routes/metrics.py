"""`GET /metrics`: the Prometheus series of db/metrics.py, summed over the worker processes."""

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from db.metrics import exposition

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, responses={
    200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
          "description": "Prometheus text format: requests, latency, answer cache, database pool, "
                         "rate-limit refusals, imported rows (README, Running in production)."}})
async def metrics() -> Response:
    """Operational series for Prometheus: never cached, free of the rate limits (a scrape
    refused 429 would read as an outage)."""
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
