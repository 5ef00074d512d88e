"""Exports: GET /v1/events.{csv,geojson,ndjson} and `conflictkb export`, on the real
PostgreSQL: every filter of the list, the same events in the same order, files that
parse, streamed in chunks with flat memory, never cached whole."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import os
import subprocess
import tempfile
import tracemalloc

import pytest
from sqlalchemy import text

from api.answer_cache import cache_key
from api.exports import CSV_COLUMNS
from db.engine import make_engine
from db.queries import export as export_queries
from db.queries.export import EXPORT_FIELDS
from tests.conftest import CONFLICTKB, app_client, generated_database, make_settings

FORMATS = ("csv", "geojson", "ndjson")

FILTERS = [
    {},
    {"country": "SYR"},
    {"date_from": "2018-01-01", "date_to": "2018-03-31"},
    {"perpetrator": "US-led coalition", "include_members": "true"},
    {"sort": "-fatalities"},
    {"where": json.dumps({"_or": [{"admin1": "Hasakah"}, {"country": "IRQ"}]})},
]


def parse(format_name: str, body: str) -> list[dict]:
    """The exported events as records (CSV rows as a DictReader gives them)."""
    if format_name == "csv":
        return list(csv.DictReader(io.StringIO(body, newline="")))
    if format_name == "geojson":
        collection = json.loads(body)
        assert collection["type"] == "FeatureCollection"
        for feature in collection["features"]:
            assert feature["type"] == "Feature" and feature["id"] == feature["properties"]["id"]
        return [feature["properties"] for feature in collection["features"]]
    assert body == "" or body.endswith("\n")
    return [json.loads(line) for line in body.splitlines()]


async def export(client, format_name: str, **params) -> list[dict]:
    response = await client.get(f"/v1/events.{format_name}", params=params)
    assert response.status_code == 200, response.text
    return parse(format_name, response.text)


async def listed_ids(client, **params) -> list[str]:
    """The ids GET /v1/events gives for the filters, every page walked."""
    ids, cursor = [], None
    while True:
        response = await client.get("/v1/events", params={**params, "limit": 3, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [event["id"] for event in body["data"]]
        if not (cursor := body["next_cursor"]):
            return ids


@pytest.mark.parametrize("params", FILTERS, ids=lambda p: ",".join(p) or "no filter")
@pytest.mark.parametrize("format_name", FORMATS)
async def test_an_export_holds_the_lists_events_in_its_order(client, format_name, params):
    expected = await listed_ids(client, **params)
    assert expected  # every filter here matches something
    assert [record["id"] for record in await export(client, format_name, **params)] == expected


@pytest.mark.parametrize("format_name", FORMATS)
async def test_the_response_is_a_download_of_its_type(client, format_name):
    response = await client.get(f"/v1/events.{format_name}")
    assert response.headers["content-type"] == {
        "csv": "text/csv; charset=utf-8", "geojson": "application/geo+json", "ndjson": "application/x-ndjson"}[format_name]
    assert response.headers["content-disposition"] == f'attachment; filename="events.{format_name}"'


@pytest.mark.parametrize("format_name", FORMATS)
@pytest.mark.parametrize("params, name", [
    ({"country": "Narnia"}, "country"),
    ({"contry": "SYR"}, "contry"),
    ({"date_from": "yesterday"}, "date_from"),
    ({"sort": "relevance"}, "sort"),
    ({"limit": "10"}, "limit"),  # no paging here: the whole answer is one file
])
async def test_a_bad_filter_is_a_422_that_names_it(client, format_name, params, name):
    response = await client.get(f"/v1/events.{format_name}", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["name"] for error in response.json()["errors"]] == [name]


@pytest.mark.parametrize("format_name", FORMATS)
async def test_an_export_of_nothing_is_still_a_valid_file(client, format_name):
    response = await client.get(f"/v1/events.{format_name}", params={"date_to": "1990-12-31"})
    assert parse(format_name, response.text) == []
    if format_name == "csv":
        assert response.text == ",".join(CSV_COLUMNS) + "\r\n"


async def test_csv_has_acleds_columns_then_ours(client):
    response = await client.get("/v1/events.csv", params={"admin1": "Hasakah"})
    assert response.text.splitlines()[0].split(",") == list(CSV_COLUMNS)
    assert CSV_COLUMNS[:5] == ("event_id_cnty", "event_date", "year", "time_precision", "disorder_type")
    [al_qasr] = parse("csv", response.text)
    assert {k: al_qasr[k] for k in (
        "event_id_cnty", "event_date", "year", "time_precision", "disorder_type", "sub_event_type", "actor1",
        "assoc_actor_1", "actor2", "civilian_targeting", "iso", "country", "admin1", "location", "latitude",
        "geo_precision", "fatalities", "date_end", "date_precision", "fatalities_low", "fatalities_high",
        "civilian_fatalities_best", "actor1_status", "assoc_actor_1_status", "actor2_status")} == {
        "event_id_cnty": "conflictkb-seed:al-qasr-strike",
        "event_date": "2018-04-01", "year": "2018", "time_precision": "3",  # known to the month
        "disorder_type": "Political violence", "sub_event_type": "Air/drone strike",
        # contested before unknown: the firmer attribution is actor1
        "actor1": "US-led coalition", "assoc_actor_1": "Iraqi forces", "actor2": "Civilians",
        "civilian_targeting": "Civilian targeting",
        "iso": "SYR", "country": "Syria", "admin1": "Al Hasakah Governorate", "location": "Al-Qasr",
        "latitude": "",  # no coordinates: an empty field, not 0
        "geo_precision": "1", "fatalities": "25",
        "date_end": "2018-05-31", "date_precision": "month",
        "fatalities_low": "25", "fatalities_high": "",  # "over two dozen": no upper bound
        "civilian_fatalities_best": "25",
        "actor1_status": "contested", "assoc_actor_1_status": "unknown", "actor2_status": "alleged",
    }
    assert set(al_qasr["source"].split("; ")) >= {"Syrian Observatory for Human Rights", "US-led coalition"}


async def test_geojson_points_are_longitude_latitude_and_null_without_coordinates(client):
    features = json.loads((await client.get("/v1/events.geojson", params={"country": "SYR"})).text)["features"]
    by_key = {f["properties"]["external_ids"][0]: f for f in features}
    afrin = by_key["conflictkb-seed:afrin-capture"]
    assert afrin["geometry"]["type"] == "Point"
    assert afrin["geometry"]["coordinates"] == [afrin["properties"]["longitude"], afrin["properties"]["latitude"]]
    assert 36 < afrin["properties"]["longitude"] < 37 and 36 < afrin["properties"]["latitude"] < 37  # Afrin, not swapped
    assert by_key["conflictkb-seed:al-qasr-strike"]["geometry"] is None


async def test_ndjson_records_carry_places_figures_and_attributed_actors(client):
    [record] = await export(client, "ndjson", external_id="conflictkb-seed:al-qasr-strike")
    assert list(record) == list(EXPORT_FIELDS)
    assert (record["country"], record["iso3"], record["admin1"], record["place"]) == (
        "Syria", "SYR", "Al Hasakah Governorate", "Al-Qasr")
    assert (record["fatalities_low"], record["fatalities_best"], record["fatalities_high"]) == (25, 25, None)
    assert [(a["role"], a["name"], a["status"]) for a in record["actors"]] == [
        ("perpetrator", "US-led coalition", "contested"), ("perpetrator", "Iraqi forces", "unknown"),
        ("target", "Civilians", "alleged")]
    assert record["external_ids"] == ["conflictkb-seed:al-qasr-strike"]


@pytest.mark.parametrize("format_name, always", [("geojson", {"id", "latitude", "longitude"}), ("ndjson", {"id"})])
async def test_fields_narrow_each_record_to_the_keys_named(client, format_name, always):
    params = {"country": "SYR", "date_from": "2018-01-01"}
    whole = await export(client, format_name, **params)
    narrow = await export(client, format_name, fields="sources,fatalities_best,place", **params)
    named = {"sources", "fatalities_best", "place"} | always
    assert [set(record) for record in narrow] == [named] * len(whole)  # every event, each with only those keys
    assert narrow == [{key: record[key] for key in named} for record in whole]


async def test_a_narrowed_geojson_keeps_each_features_point(client):
    params = {"external_id": ["conflictkb-seed:afrin-capture", "conflictkb-seed:al-qasr-strike"]}
    whole = json.loads((await client.get("/v1/events.geojson", params=params)).text)["features"]
    narrow = json.loads((await client.get("/v1/events.geojson", params={**params, "fields": "date_start"})).text)
    assert [(f["id"], f["geometry"]) for f in narrow["features"]] == [(f["id"], f["geometry"]) for f in whole]
    assert sorted(f["geometry"] is None for f in narrow["features"]) == [False, True]  # Afrin's, and Al-Qasr's none


@pytest.mark.parametrize("format_name, fields, reason", [
    ("geojson", "place,actorz", "unknown field(s) actorz"),
    ("ndjson", ",", "names no field"),
    ("csv", "place", "unknown parameter"),  # ACLED's columns are fixed
])
async def test_fields_that_cannot_be_given_are_a_422_naming_fields(client, format_name, fields, reason):
    response = await client.get(f"/v1/events.{format_name}", params={"fields": fields})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert {"name": "fields", "in": "query", "reason": reason} in response.json()["errors"]


async def test_text_with_commas_quotes_and_line_breaks_round_trips(fresh_database_url, redis_url):
    summary = 'Strike on "Al-Qasr", near Hasakah;\nover two dozen killed,\r\n says SOHR — «الحسكة»'
    engine = make_engine(fresh_database_url, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE events SET summary = :summary WHERE id = (SELECT event_id "
                                "FROM event_external_ids WHERE external_id = 'al-qasr-strike')"),
                           {"summary": summary})
    await engine.dispose()
    async with app_client(fresh_database_url, redis_url) as client:
        exported = {name: await export(client, name, admin1="Hasakah") for name in FORMATS}
    assert exported["csv"][0]["notes"] == summary
    assert exported["ndjson"][0]["summary"] == summary == exported["geojson"][0]["summary"]


async def test_exports_are_not_kept_in_the_answer_cache(client):
    """A whole export would have to be held in memory to be stored: the cache lets it
    stream past (the list beside it is cached, which shows the key is the right one)."""
    await client.get("/v1/events", params={"country": "SYR"})
    for format_name in FORMATS:
        response = await client.get(f"/v1/events.{format_name}", params={"country": "SYR"})
        assert "x-cache" not in response.headers and "etag" not in response.headers
    state = client.app.state
    await state.answer_cache.drain()
    generation = await state.answer_cache.read_generation()

    def stored(path: str) -> bool:
        return state.redis.exists(cache_key(generation, {"path": path, "query_string": b"country=SYR"}))

    assert await stored("/v1/events")
    for format_name in FORMATS:
        assert not await stored(f"/v1/events.{format_name}")


def _get_scope(path: str, query: str = "", headers: list[tuple[bytes, bytes]] = ()) -> dict:
    """An ASGI scope of a GET as a server passes it to the app."""
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": query.encode(), "headers": [(b"host", b"test"), *headers],
            "client": ("127.0.0.1", 1), "server": ("test", 80)}


async def _stream(app, path: str, query: str, headers: list[tuple[bytes, bytes]] = (),
                  leave_after: int | None = None) -> tuple[dict, list[bytes], int]:
    """GET through the whole middleware stack as a server would: the response start,
    each body message as sent, and the most memory Python held meanwhile (tracemalloc;
    the messages go to a file as they come, so what this client keeps is not counted).
    `leave_after`: the client disconnects after that many body messages, slowly sent."""
    start, sizes = {}, []
    gone = asyncio.Event()

    async def receive():
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        else:
            sizes.append(received.write(message.get("body", b"")))
            if len(sizes) == leave_after:
                await asyncio.sleep(0.3)  # a slow client: the next rows are read meanwhile
                gone.set()

    scope = _get_scope(path, query, headers)
    with tempfile.TemporaryFile() as received:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            await app(scope, receive, send)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        received.seek(0)
        body = received.read()
    bodies, offset = [], 0
    for size in sizes:
        bodies.append(body[offset:offset + size])
        offset += size
    return start, bodies, peak


@pytest.fixture(scope="module")
async def generated_url(databases):
    async with generated_database(databases, 2000, seed=11) as url:
        yield url


@pytest.mark.parametrize("format_name", FORMATS)
async def test_a_large_export_is_streamed_in_chunks_with_flat_memory(generated_url, redis_url, format_name,
                                                                      monkeypatch):
    # chunks of 100 rows: 2,000 events are then as many chunks as 20,000 would be
    monkeypatch.setattr(export_queries, "EXPORT_CHUNK_ROWS", 100)
    path = f"/v1/events.{format_name}"
    async with app_client(generated_url, redis_url) as client:
        await _stream(client.app, path, "country=SYR")  # warmed up: first-use caches are not the export's
        _, small, small_peak = await _stream(client.app, path, "country=SYR")
        start, large, large_peak = await _stream(client.app, path, "")
    assert start["status"] == 200
    small_size, large_size = sum(map(len, small)), sum(map(len, large))
    rows = len(parse(format_name, b"".join(large).decode()))
    assert rows > 2000
    # sent as it was read: a message per chunk of rows (plus the head and the end)
    assert len(large) >= rows // 100 + 2
    assert max(map(len, large)) < large_size / 10
    # four times the rows, about the same memory: a chunk at a time, never the file
    assert large_size > 3 * small_size
    assert large_peak - small_peak < (large_size - small_size) / 4


async def test_gzip_compresses_the_stream_as_it_goes(generated_url, redis_url):
    async with app_client(generated_url, redis_url) as client:
        start, plain, _ = await _stream(client.app, "/v1/events.csv", "")
        start, zipped, _ = await _stream(client.app, "/v1/events.csv", "", [(b"accept-encoding", b"gzip")])
    assert (b"content-encoding", b"gzip") in start["headers"]
    assert len(zipped) >= 4
    assert gzip.decompress(b"".join(zipped)) == b"".join(plain)


async def test_a_client_gone_mid_way_ends_the_export_cleanly_and_frees_its_slot(generated_url, redis_url, caplog):
    async with app_client(generated_url, redis_url) as client:
        slots = client.app.state.settings.max_concurrent_exports
        for _ in range(slots + 1):  # more than the slots: each is freed when its client leaves
            start, cut_short, _ = await _stream(client.app, "/v1/events.ndjson", "", leave_after=2)
            assert start["status"] == 200
        _, whole, _ = await _stream(client.app, "/v1/events.ndjson", "")
    assert len(cut_short) < len(whole) - 1  # stopped reading, not read to the end
    # the read under way when the client left is finished before the connection is
    # handed back, not left running under the rollback (a logged 500 and a lost connection)
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    assert len(parse("ndjson", b"".join(whole).decode())) > 2000


def _conflictkb_export(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CONFLICTKB_DATA_DIR")}
    env["DATABASE_URL"] = database_url
    return subprocess.run([str(CONFLICTKB), "export", *args], env=env, capture_output=True, timeout=120)


async def test_the_command_line_writes_what_the_route_serves(client, database_url, tmp_path):
    route_csv = (await client.get("/v1/events.csv", params={"country": "SYR", "date_from": "2018-01-01"})).content
    route_ndjson = (await client.get("/v1/events.ndjson", params={"perpetrator": "RAF"})).content
    to_file = await asyncio.to_thread(_conflictkb_export, database_url, "--format", "csv", "--country", "SYR",
                                      "--date-from", "2018-01-01", "--output", str(tmp_path / "syria.csv"))
    to_stdout = await asyncio.to_thread(_conflictkb_export, database_url, "--format", "ndjson",
                                        "--perpetrator", "RAF")
    assert to_file.returncode == 0, to_file.stderr
    assert (tmp_path / "syria.csv").read_bytes() == route_csv
    assert f"export: {len(parse('csv', route_csv.decode()))} events" in to_file.stderr.decode()
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout == route_ndjson


async def test_the_command_line_names_a_bad_filter_and_writes_nothing(database_url, tmp_path):
    result = await asyncio.to_thread(_conflictkb_export, database_url, "--format", "csv", "--country", "Narnia",
                                     "--output", str(tmp_path / "out.csv"))
    assert result.returncode == 2
    assert "--country" in result.stderr.decode() and "Narnia" in result.stderr.decode()
    assert list(tmp_path.iterdir()) == []


async def test_exports_at_once_are_capped_and_the_next_is_told_to_retry(generated_url, redis_url):
    """Each export holds a connection until its client has it all: slow clients must not
    take every connection from the API's other answers."""
    settings = make_settings()
    settings.max_concurrent_exports = 1
    async with app_client(generated_url, redis_url, settings) as client:
        release = asyncio.Event()
        first_chunk = asyncio.Event()

        async def receive():
            await asyncio.Event().wait()  # a client that stays (and reads slowly)

        async def slow_send(message):
            if message["type"] == "http.response.body":
                first_chunk.set()
                await release.wait()

        slow = asyncio.create_task(client.app(_get_scope("/v1/events.csv"), receive, slow_send))
        await asyncio.wait_for(first_chunk.wait(), 30)
        refused = await client.get("/v1/events.ndjson")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "10"
        assert "exports are being sent" in refused.json()["detail"]
        assert (await client.get("/v1/events", params={"limit": 1})).status_code == 200  # the rest still answers
        release.set()
        await asyncio.wait_for(slow, 60)
        assert (await client.get("/v1/events.ndjson", params={"country": "SYR"})).status_code == 200  # freed


async def test_head_checks_the_filters_without_reading_the_events(client):
    head = await client.head("/v1/events.csv", params={"country": "SYR"})
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/csv") and head.content == b""
    assert (await client.head("/v1/events.csv", params={"country": "Narnia"})).status_code == 422
