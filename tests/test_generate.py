"""The benchmark data generator: deterministic, realistic in shape, derived like any write."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from db.engine import make_engine
from db.generate import WorldExists, generate


async def _generated(url: str, seed: int) -> dict:
    engine = make_engine(url, pool_size=2)
    try:
        await generate(engine, 400, seed=seed, batch=150)
        async with engine.connect() as conn:
            stats = (await conn.execute(text("""
                SELECT count(*) AS events,
                       min(c.n) AS min_claims, max(c.n) AS max_claims,
                       count(*) FILTER (WHERE e.country_id IS NULL) AS without_country,
                       count(*) FILTER (WHERE e.search_vector IS NULL) AS without_text,
                       count(DISTINCT e.place_id) AS places
                  FROM events e
                  JOIN (SELECT event_id, count(*) AS n FROM claims GROUP BY event_id) c ON c.event_id = e.id
                 WHERE e.id NOT IN (SELECT event_id FROM event_external_ids)"""))).one()
            ids = set((await conn.scalars(text(
                "SELECT id FROM events WHERE id NOT IN (SELECT event_id FROM event_external_ids)"))).all())
            statuses = set((await conn.scalars(text("SELECT DISTINCT status FROM event_actors"))).all())
    finally:
        await engine.dispose()
    return {"stats": stats, "ids": ids, "statuses": statuses}


async def test_the_same_seed_gives_the_same_events(fresh_database_url, databases):
    first = await _generated(fresh_database_url, seed=5)
    other_url = databases.create("t_generate_twin")
    try:
        second = await _generated(other_url, seed=5)
    finally:
        databases.drop("t_generate_twin")
    assert first["ids"] == second["ids"] and len(first["ids"]) == 400

    stats = first["stats"]
    assert stats.events == 400
    assert (stats.min_claims, stats.max_claims) == (1, 4)
    assert stats.without_country == 0 and stats.without_text == 0
    assert stats.places < 400  # skewed: busy towns repeat
    assert {"alleged", "contested", "unknown"} <= first["statuses"]


async def test_a_seed_generated_again_into_the_same_database_is_refused_by_name(fresh_database_url):
    engine = make_engine(fresh_database_url, pool_size=2)
    try:
        await generate(engine, 20, seed=9, batch=10)
        with pytest.raises(WorldExists, match="already holds the events generated with --seed 9"):
            await generate(engine, 20, seed=9, batch=10)
        async with engine.connect() as conn:  # nothing of the second run went in
            generated = await conn.scalar(text(
                "SELECT count(*) FROM events WHERE id NOT IN (SELECT event_id FROM event_external_ids)"))
        assert generated == 20
    finally:
        await engine.dispose()
