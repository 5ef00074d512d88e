"""A bare route for bench/cache_throughput.py (mounted only with CONFLICTKB_BENCH_ROUTES).

It answers GET with bytes held in memory, through the same app and middleware as the
API, so a cached answer's throughput can be set beside the best this app could do
with the same bytes.
"""

from fastapi import APIRouter, Request
from starlette.responses import Response

router = APIRouter(prefix="/bench", include_in_schema=False)


@router.put("/bytes")
async def keep_bytes(request: Request) -> Response:
    request.app.state.bench_bytes = await request.body()
    return Response(status_code=204)


@router.get("/bytes")
async def bare_bytes(request: Request) -> Response:
    return Response(getattr(request.app.state, "bench_bytes", b""), media_type="application/json")
