"""Geographic filters: bounding boxes and great-circle radius, right across the
antimeridian and near the poles, with the distance in each result."""

from __future__ import annotations

import datetime as dt
import math
import uuid

import pytest
from sqlalchemy import insert

from db import models as m
from db.engine import make_engine
from tests.conftest import app_client

# name: (latitude, longitude)
SITES = {
    "Suva": (-18.1416, 178.4419),
    "Levuka": (-17.6833, 178.8333),
    "Taveuni": (-16.8500, -179.9700),      # across the antimeridian from Suva
    "Longyearbyen": (78.2232, 15.6267),
    "Ny-Alesund": (78.9250, 11.9300),
    "Alert": (82.5018, -62.3481),
    "Quito": (-0.1807, -78.4678),
}


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    (lat1, lon1), (lat2, lon2) = map(lambda p: (math.radians(p[0]), math.radians(p[1])), (a, b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


@pytest.fixture
async def geo_client(fresh_database_url, redis_url):
    """The seed plus one event at each site (coordinates on the places)."""
    engine = make_engine(fresh_database_url, pool_size=1)
    async with engine.begin() as conn:
        country = uuid.uuid4()
        await conn.execute(insert(m.places).values(id=country, name="Testland", kind="country", iso3="TST"))
        for name, (lat, lon) in SITES.items():
            place = uuid.uuid4()
            await conn.execute(insert(m.places).values(id=place, name=name, kind="locality", parent_id=country,
                                                       latitude=lat, longitude=lon))
            await conn.execute(insert(m.events).values(
                id=uuid.uuid4(), event_type="Battles", sub_event_type="Armed clash", date_start=dt.date(2020, 1, 1),
                date_end=dt.date(2020, 1, 1), date_precision="day", place_id=place, geo_precision="exact",
                summary=f"Clash at {name}"))
    await engine.dispose()
    async with app_client(fresh_database_url, redis_url) as http:
        yield http


async def _sites(client, **params) -> list[str]:
    response = await client.get("/v1/events", params={"country": "TST", "limit": 500, **params})
    assert response.status_code == 200, response.text
    return [e["place"]["name"] for e in response.json()["data"]]


async def test_a_bbox_across_the_antimeridian(geo_client):
    assert set(await _sites(geo_client, bbox="178,-19,-179,-16")) == {"Suva", "Levuka", "Taveuni"}
    assert set(await _sites(geo_client, bbox="178,-19,179,-16")) == {"Suva", "Levuka"}


async def test_a_bbox_in_the_arctic(geo_client):
    assert set(await _sites(geo_client, bbox="-70,75,20,85")) == {"Longyearbyen", "Ny-Alesund", "Alert"}


@pytest.mark.parametrize("centre, radius_km", [
    ("Suva", 100), ("Suva", 300), ("Taveuni", 250),          # the circle crosses 180°
    ("Longyearbyen", 100), ("Alert", 1500),                  # high latitudes: degrees of longitude are short
])
async def test_near_is_the_great_circle_radius(geo_client, centre, radius_km):
    lat, lon = SITES[centre]
    expected = {name for name, site in SITES.items() if haversine_km((lat, lon), site) <= radius_km}
    response = await geo_client.get("/v1/events", params={"country": "TST", "near": f"{lat},{lon},{radius_km}",
                                                          "sort": "distance"})
    events = response.json()["data"]
    assert {e["place"]["name"] for e in events} == expected
    distances = [e["distance_km"] for e in events]
    assert distances == sorted(distances)
    for e in events:
        assert e["distance_km"] == pytest.approx(haversine_km((lat, lon), SITES[e["place"]["name"]]), abs=0.01)


async def test_near_the_north_pole_takes_every_longitude(geo_client):
    expected = {name for name, site in SITES.items() if haversine_km((89.9, 100.0), site) <= 1300}
    assert expected == {"Alert", "Ny-Alesund"}
    assert set(await _sites(geo_client, near="89.9,100,1300")) == expected


async def test_graphql_near_and_bbox(geo_client):
    from tests.test_graphql import gql

    body = await gql(geo_client, """{ events(where: {country: "TST", near: {latitude: -18.1416, longitude: 178.4419,
      radiusKm: 300}}, orderBy: DISTANCE) { edges { node { distanceKm place { name } } } } }""")
    names = [e["node"]["place"]["name"] for e in body["data"]["events"]["edges"]]
    assert names == ["Suva", "Levuka", "Taveuni"]
    body = await gql(geo_client, '{ events(where: {bbox: [178, -19, -179, -16]}) { totalCount } }')
    assert body["data"]["events"]["totalCount"] == 3


async def test_pages_stay_stable_while_events_are_added(geo_client, fresh_database_url):
    """Keyset cursors: rows added between two pages neither repeat nor hide old rows."""
    before = [e["id"] for e in (await geo_client.get("/v1/events", params={"limit": 500})).json()["data"]]
    first = (await geo_client.get("/v1/events", params={"limit": 5})).json()
    engine = make_engine(fresh_database_url, pool_size=1)
    async with engine.begin() as conn:
        for day in (dt.date(2030, 1, 1), dt.date(2000, 1, 1), dt.date(2018, 4, 1)):
            await conn.execute(insert(m.events).values(
                id=uuid.uuid4(), event_type="Battles", sub_event_type="Armed clash", date_start=day, date_end=day,
                date_precision="day", place_id=(await conn.scalar(m.places.select().with_only_columns(
                    m.places.c.id).where(m.places.c.name == "Suva"))), geo_precision="exact"))
    await engine.dispose()
    seen, cursor = [e["id"] for e in first["data"]], first["next_cursor"]
    while cursor:
        body = (await geo_client.get("/v1/events", params={"limit": 5, "cursor": cursor})).json()
        seen += [e["id"] for e in body["data"]]
        cursor = body["next_cursor"]
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in before] == before
