"""The indexed read paths answer exactly what the plain definition of the query does:
actor filters in date order (read from the actor's own index, ActorMatch.events_by_date)
and nearest first (points by distance, then each point's events)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from pydantic.alias_generators import to_camel
from sqlalchemy import text

from db.engine import make_engine
from tests.conftest import app_client, generated_database


async def _walk(client, params: dict) -> list[str]:
    """Every page of a list, following next_cursor."""
    ids, cursor = [], None
    while True:
        response = await client.get("/v1/events", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [e["id"] for e in body["data"]]
        if not (cursor := body["next_cursor"]):
            return ids


@pytest.fixture(scope="module")
async def generated_url(databases) -> AsyncIterator[str]:
    """Seed plus 600 generated events: busy towns share a point, coalitions have members."""
    async with generated_database(databases, 600, seed=11) as url:
        yield url


async def test_actor_lists_by_date_match_testing_every_event(generated_url, redis_url):
    engine = make_engine(generated_url, pool_size=2)
    try:
        async with engine.connect() as conn:
            coalition, members = (await conn.execute(text("""
                SELECT g.name, count(*) FROM actor_memberships ms JOIN actors g ON g.id = ms.group_id
                 GROUP BY g.name ORDER BY count(*) DESC, g.name LIMIT 1"""))).one()
            group = await conn.scalar(text("""
                SELECT a.name FROM event_actors ea JOIN actors a ON a.id = ea.actor_id
                 WHERE a.kind = 'armed_group' GROUP BY a.name ORDER BY count(*) DESC, a.name LIMIT 1"""))
            # events where two of the coalition's members act together: listed once each
            shared = await conn.scalar(text("""
                SELECT count(*) FROM (
                  SELECT ea.event_id FROM event_actors ea
                    JOIN actor_memberships ms ON ms.member_id = ea.actor_id
                    JOIN actors g ON g.id = ms.group_id AND g.name = :name
                   GROUP BY ea.event_id HAVING count(DISTINCT ea.actor_id) > 1) s"""), {"name": coalition})
    finally:
        await engine.dispose()
    assert members >= 2

    async with app_client(generated_url, redis_url) as client:
        for params in ({"actor": coalition, "include_members": "true"},
                       {"perpetrator": group},
                       {"target": group, "attribution": "alleged"},
                       {"attribution": ["contested", "confirmed"]},
                       {"actor": coalition, "include_members": "true", "date_to": "2020-06-30"}):
            for sort in ("-date", "date"):
                direct = await _walk(client, {**params, "sort": sort, "limit": 7})
                # the same filter nested under _and is compiled as a test on every event
                inner = {to_camel(k): v for k, v in params.items() if k != "include_members"}
                nested = {"where": json.dumps({"_and": [inner]}),
                          **{k: v for k, v in params.items() if k == "include_members"}}
                tested = await _walk(client, {**nested, "sort": sort, "limit": 500})
                assert direct == tested, (params, sort)
                assert len(direct) == len(set(direct)) > 0, (params, sort)
                total = (await client.get("/v1/events", params={**params, "sort": sort, "count": "true"})).json()
                assert total["total"] == len(direct), (params, sort)
    assert shared > 0  # the case of one event reached through two members was exercised


async def test_an_events_new_dates_reach_its_actors(fresh_client, fresh_database_url):
    engine = make_engine(fresh_database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("""
                UPDATE events SET date_start = '2031-03-01', date_end = '2031-03-31'
                 WHERE id = (SELECT event_id FROM event_external_ids WHERE external_id = 'al-qasr-strike')"""))
    finally:
        await engine.dispose()
    response = await fresh_client.get("/v1/events", params={"perpetrator": "US-led coalition",
                                                            "date_from": "2031-01-01"})
    assert [e["date_start"] for e in response.json()["data"]] == ["2031-03-01"]


async def test_nearest_first_is_distance_then_id(generated_url, redis_url):
    engine = make_engine(generated_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            # the busiest point: many events at one distance, ordered by id among themselves
            lat, lon = (await conn.execute(text("""
                SELECT location[1], location[0] FROM events WHERE location IS NOT NULL
                 GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1"""))).one()
            group = await conn.scalar(text("""
                SELECT a.name FROM event_actors ea JOIN actors a ON a.id = ea.actor_id
                 WHERE a.kind = 'armed_group' GROUP BY a.name ORDER BY count(*) DESC, a.name LIMIT 1"""))
            expected = {}
            for radius, extra in ((300, ""), (120, "AND EXISTS (SELECT 1 FROM event_actors ea JOIN actors a "
                                                    "ON a.id = ea.actor_id WHERE ea.event_id = e.id "
                                                    "AND ea.role = 'perpetrator' AND a.name = :group)")):
                expected[radius] = [str(i) for i in (await conn.scalars(text(f"""
                    SELECT e.id FROM events e
                     WHERE great_circle_km(e.location, :lat, :lon) <= :radius {extra}
                     ORDER BY great_circle_km(e.location, :lat, :lon), e.id"""),
                    {"lat": lat, "lon": lon, "radius": radius, "group": group})).all()]
    finally:
        await engine.dispose()
    assert len(expected[300]) > 100 and expected[120]

    async with app_client(generated_url, redis_url) as client:
        for radius, params in ((300, {}), (120, {"perpetrator": group})):
            near = {"near": f"{lat},{lon},{radius}", "sort": "distance", **params}
            assert await _walk(client, {**near, "limit": 9}) == expected[radius]
            first = (await client.get("/v1/events", params={**near, "limit": 3})).json()["data"]
            assert [e["distance_km"] for e in first] == sorted(e["distance_km"] for e in first)


async def test_an_event_moved_is_found_at_its_new_point(fresh_client, fresh_database_url):
    engine = make_engine(fresh_database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("""
                UPDATE events SET latitude = -33.9, longitude = 18.4, geo_precision = 'exact'
                 WHERE id = (SELECT event_id FROM event_external_ids WHERE external_id = 'al-qasr-strike')"""))
            # two concurrent writers may both list a new point (migration 0004): still one answer each
            await conn.execute(text("INSERT INTO event_points VALUES (18.4, -33.9, point(18.4, -33.9))"))
            assert await conn.scalar(text("SELECT count(*) FROM event_points WHERE latitude = -33.9")) == 2
    finally:
        await engine.dispose()
    response = await fresh_client.get("/v1/events", params={"near": "-33.91,18.41,5", "sort": "distance"})
    assert [e["latitude"] for e in response.json()["data"]] == [-33.9]


AL_QASR = "(SELECT event_id FROM event_external_ids WHERE external_id = 'al-qasr-strike')"


async def test_actor_rows_always_carry_their_events_dates(fresh_database_url):
    engine = make_engine(fresh_database_url, pool_size=2)
    try:
        async with engine.begin() as conn:  # dates given on insert or set later are the event's anyway
            await conn.execute(text(f"""
                INSERT INTO event_actors (event_id, actor_id, role, date_start, date_end)
                SELECT {AL_QASR}, id, 'participant', '1999-01-01', '1999-01-01'
                  FROM actors WHERE name = 'Syrian Observatory for Human Rights'"""))
            await conn.execute(text(f"UPDATE event_actors SET date_start = '1999-01-01' WHERE event_id = {AL_QASR}"))
            rows = (await conn.execute(text(f"""
                SELECT DISTINCT ea.date_start = e.date_start AND ea.date_end = e.date_end
                  FROM event_actors ea JOIN events e ON e.id = ea.event_id WHERE e.id = {AL_QASR}"""))).scalars().all()
        assert rows == [True]

        # an actor row inserted while the event's dates change waits, then takes the new ones
        async with engine.connect() as mover, engine.connect() as adder:
            await mover.begin()
            await mover.execute(text(f"UPDATE events SET date_start = '2031-03-01', date_end = '2031-03-31' "
                                     f"WHERE id = {AL_QASR}"))
            await adder.begin()
            insert = asyncio.create_task(adder.execute(text(f"""
                INSERT INTO event_actors (event_id, actor_id, role)
                SELECT {AL_QASR}, id, 'participant' FROM actors WHERE name = 'Syrian Arab News Agency'""")))
            await asyncio.sleep(0.3)
            assert not insert.done()
            await mover.commit()
            await insert
            await adder.commit()
        async with engine.connect() as conn:
            dates = (await conn.execute(text(f"""
                SELECT DISTINCT date_start, date_end FROM event_actors WHERE event_id = {AL_QASR}"""))).all()
        assert [(str(a), str(b)) for a, b in dates] == [("2031-03-01", "2031-03-31")]
        async with engine.connect() as conn:  # both inserted rows are there
            assert await conn.scalar(text(f"""
                SELECT count(*) FROM event_actors WHERE event_id = {AL_QASR} AND role = 'participant'""")) == 2
    finally:
        await engine.dispose()
