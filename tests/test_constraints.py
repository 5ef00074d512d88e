"""The database itself refuses what the vocabularies and hierarchies forbid, so no
writer (API, seed, bulk import) can store an event the API could not explain."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import DBAPIError

from db import models as m
from db.engine import make_engine
from db.seed import seed_id


@pytest.fixture
async def conn(fresh_database_url):
    engine = make_engine(fresh_database_url, pool_size=1)
    async with engine.connect() as connection:
        yield connection
        await connection.rollback()
    await engine.dispose()


def _event(**overrides) -> dict:
    row = dict(id=uuid.uuid4(), event_type="Battles", sub_event_type="Armed clash", date_start=dt.date(2018, 3, 1),
               date_end=dt.date(2018, 3, 31), date_precision="month", place_id=seed_id("place", "afrin"),
               geo_precision="exact")
    return row | overrides


@pytest.mark.parametrize("overrides, message", [
    ({"sub_event_type": "Air/drone strike"}, "foreign key"),  # a sub-type of another type
    ({"event_type": "Skirmish"}, "foreign key"),
    ({"date_precision": "fortnight"}, "foreign key"),
    ({"geo_precision": "roughly"}, "foreign key"),
    ({"date_end": dt.date(2018, 2, 1)}, "check constraint"),
    ({"date_precision": "day"}, "check constraint"),  # a day-precise event spans one day
    ({"type_of_violence": 4}, "check constraint"),
    ({"latitude": 91.0, "longitude": 0.0}, "check constraint"),
])
async def test_events_outside_the_vocabularies_are_refused(conn, overrides, message):
    with pytest.raises(DBAPIError, match=message):
        await conn.execute(insert(m.events).values(_event(**overrides)))


async def test_a_valid_event_is_stored(conn):
    await conn.execute(insert(m.events).values(_event()))


async def test_moving_a_place_moves_everything_inside_it(conn):
    lineage = m.place_lineage.c
    iraq, afrin_district = seed_id("place", "iraq"), seed_id("place", "afrin-district")
    await conn.execute(update(m.places).where(m.places.c.id == afrin_district).values(parent_id=iraq))
    ancestors_of_afrin = set((await conn.scalars(
        select(lineage.ancestor_id).where(lineage.descendant_id == seed_id("place", "afrin")))).all())
    assert iraq in ancestors_of_afrin
    assert seed_id("place", "syria") not in ancestors_of_afrin


async def test_a_place_cannot_be_moved_under_itself(conn):
    with pytest.raises(DBAPIError, match="cycle"):
        await conn.execute(update(m.places).where(m.places.c.id == seed_id("place", "syria"))
                           .values(parent_id=seed_id("place", "al-qasr")))


async def test_members_count_only_while_they_are_members(fresh_database_url, redis_url):
    """The YPG joined the SDF in this test in 2019: its 2018 fighting is not the SDF's."""
    from tests.conftest import app_client

    engine = make_engine(fresh_database_url, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(update(m.actor_memberships).where(
            m.actor_memberships.c.member_id == seed_id("actor", "ypg")).values(
            valid_from=dt.date(2019, 1, 1), valid_to=dt.date(2020, 12, 31)))
        later = _event(date_start=dt.date(2019, 6, 1), date_end=dt.date(2019, 6, 30))
        await conn.execute(insert(m.events).values(later))
        await conn.execute(insert(m.event_actors).values(event_id=later["id"], actor_id=seed_id("actor", "ypg"),
                                                          role="target"))
    await engine.dispose()
    async with app_client(fresh_database_url, redis_url) as client:
        found = (await client.get("/v1/events", params={"target": "SDF", "include_members": "true"})).json()["data"]
    assert [e["id"] for e in found] == [str(later["id"])]  # not the 2018 Afrin events
