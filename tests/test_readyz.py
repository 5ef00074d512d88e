"""/readyz: ok, degraded (no Redis: answers still come from PostgreSQL) or down (no
PostgreSQL: 503 with Retry-After); which and why goes to the log, never into the answer."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.conftest import app_client

EVERYTHING_UP = {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}


def assert_no_internals(text: str, tmp_path: Path) -> None:
    for internal in (str(tmp_path), ".sock", "Error", "connect", "Exception"):
        assert internal not in text, internal


async def test_ready(client):
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == EVERYTHING_UP
    assert ready.headers["cache-control"] == "no-store"


async def test_degraded_without_redis(database_url, tmp_path, caplog):
    dead_socket = tmp_path / "redis.sock"  # nothing listens there
    caplog.set_level(logging.WARNING, logger="api.routes.health")
    async with app_client(database_url, f"unix://{dead_socket}") as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "degraded", "checks": {"postgres": "ok", "redis": "down"}}
        assert_no_internals(ready.text, tmp_path)
        # answers still come, from PostgreSQL
        assert (await http.get("/v1/events", params={"limit": 1})).status_code == 200
    logged = [r.getMessage() for r in caplog.records if r.name == "api.routes.health"]
    assert any("Redis unreachable" in line and str(dead_socket) in line for line in logged), logged


async def test_down_without_postgres(redis_url, tmp_path, caplog):
    unreachable = f"postgresql+asyncpg://postgres@/conflictkb?host={tmp_path}"
    caplog.set_level(logging.WARNING, logger="api.routes.health")
    async with app_client(unreachable, redis_url) as http:
        assert (await http.get("/healthz")).status_code == 200  # alive all the same
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["retry-after"] == "5"
        assert ready.json() == {"status": "down", "checks": {"postgres": "down", "redis": "ok"}}
        assert_no_internals(ready.text, tmp_path)
    logged = [r.getMessage() for r in caplog.records if r.name == "api.routes.health"]
    where = make_url(unreachable).render_as_string(hide_password=True)
    assert any(line.startswith(f"readiness: PostgreSQL at {where} unreachable (") for line in logged), logged
