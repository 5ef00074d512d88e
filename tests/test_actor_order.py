"""Actor filters in date order are read from the actor's own index (ActorMatch.events_by_date):
the answer must be exactly the one of testing every event for the actor."""

from __future__ import annotations

import json

from pydantic.alias_generators import to_camel
from sqlalchemy import text

from db.engine import make_engine
from db.generate import generate
from tests.conftest import app_client


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


async def test_actor_lists_by_date_match_testing_every_event(fresh_database_url, redis_url):
    engine = make_engine(fresh_database_url, pool_size=2)
    try:
        await generate(engine, 600, seed=11, batch=300)
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

    async with app_client(fresh_database_url, redis_url) as client:
        for params in ({"actor": coalition, "include_members": "true"},
                       {"perpetrator": group},
                       {"target": group, "attribution": "alleged"},
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
