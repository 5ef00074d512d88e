"""count=true totals: exact, cached in Redis per data generation, never stale after a
write, and answered from PostgreSQL when Redis is gone."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as redis
from sqlalchemy import text

from db.engine import make_engine
from tests.conftest import app_client


async def _total(client, **params) -> int:
    response = await client.get("/v1/events", params={"count": "true", "limit": 1, **params})
    assert response.status_code == 200, response.text
    return response.json()["total"]


async def test_a_cached_total_follows_a_write(fresh_client, fresh_database_url, redis_url):
    before = await _total(fresh_client, country="SYR")
    cache = redis.from_url(redis_url)
    try:
        stored = [await cache.get(key) async for key in cache.scan_iter("conflictkb:v1:*:total:*")]
    finally:
        await cache.aclose()
    assert str(before).encode() in stored  # kept for the next reader at this generation
    engine = make_engine(fresh_database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("""
                DELETE FROM events WHERE id = (SELECT event_id FROM event_external_ids
                                                WHERE external_id = 'al-qasr-strike')"""))
            generation = await conn.scalar(text("SELECT generation FROM data_generation"))
    finally:
        await engine.dispose()
    assert await _total(fresh_client, country="SYR") == before - 1
    # and GraphQL's totalCount reads the same fresh figure
    response = await fresh_client.post("/graphql", json={
        "query": '{ events(first: 1, where: {country: ["SYR"]}) { totalCount } }'})
    assert response.json()["data"]["events"]["totalCount"] == before - 1
    assert generation > 1


async def test_totals_without_redis(database_url, tmp_path):
    async with app_client(database_url, f"unix://{tmp_path}/no-redis.sock") as client:
        assert await _total(client, country="SYR") > 0


async def test_two_databases_sharing_redis_keep_their_own_totals(databases, redis_url):
    """Copies of one database reach the same generation number with different data."""
    names = [f"t_twin_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    urls = [databases.create(name) for name in names]
    try:
        for url, statement in zip(urls, ("DELETE FROM events WHERE country_id = (SELECT id FROM places WHERE iso3 = 'SYR')",
                                         "UPDATE events SET summary = summary")):
            engine = make_engine(url, pool_size=1)
            try:
                async with engine.begin() as conn:
                    await conn.execute(text(statement))
            finally:
                await engine.dispose()
        totals = []
        for url in urls:
            async with app_client(url, redis_url) as client:
                totals.append(await _total(client, country="SYR"))
        assert totals[0] == 0 and totals[1] > 0
    finally:
        for name in names:
            databases.drop(name)


async def test_concurrent_writers_queue_instead_of_deadlocking(fresh_database_url):
    """The generation is taken before a statement's rows: a writer holding it never
    waits for a row held by one waiting for it."""
    engine = make_engine(fresh_database_url, pool_size=2)
    event = "(SELECT event_id FROM event_external_ids WHERE external_id = 'al-qasr-strike')"
    try:
        async with engine.connect() as first, engine.connect() as second:
            await first.begin()
            await first.execute(text("UPDATE places SET name = name WHERE false"))  # a write: holds the generation
            await second.begin()
            later = asyncio.create_task(second.execute(text(f"UPDATE events SET summary = 'second' WHERE id = {event}")))
            await asyncio.sleep(0.3)
            assert not later.done()  # queued at its first write, holding no row
            await first.execute(text(f"UPDATE events SET summary = 'first' WHERE id = {event}"))
            await first.commit()
            await later
            await second.commit()
        async with engine.connect() as conn:
            assert await conn.scalar(text(f"SELECT summary FROM events WHERE id = {event}")) == "second"
    finally:
        await engine.dispose()
