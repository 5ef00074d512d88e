"""The REST read API: filters, pagination, trees and errors, on the seeded knowledge base."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from api import schemas
from db.seed import SEEDS_DIR, read_seed_file, seed_id
from tests.conftest import event_url

SEED_EVENTS = read_seed_file(SEEDS_DIR / "article.yaml").events


async def _keys(client, **params) -> list[str]:
    """Seed keys of the events a filter returns, in order."""
    response = await client.get("/v1/events", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    keys = {str(seed_id("event", e.key)): e.key for e in SEED_EVENTS}
    return [keys[e["id"]] for e in response.json()["data"]]


async def test_hasakah_lists_the_al_qasr_strike(client):
    assert await _keys(client, admin1="Hasakah") == ["al-qasr-strike"]


@pytest.mark.parametrize("spelling", ["hasakeh", "Al-Hasakah", "AL HASAKAH GOVERNORATE", "Hassakeh"])
async def test_province_names_match_through_aliases_and_case(client, spelling):
    assert await _keys(client, admin1=spelling) == ["al-qasr-strike"]


async def test_a_country_includes_everything_inside_it(client):
    syria = await _keys(client, country="SYR")
    assert "al-qasr-strike" in syria and "afrin-capture" in syria and "raf-mosul-strikes" not in syria
    assert await _keys(client, country="Iraq") == ["raf-mosul-strikes", "isis-2014-iraq"]  # 2017, 2014
    assert await _keys(client, country="IQ") == await _keys(client, country="Iraq")


async def test_repeated_values_are_ored(client):
    both = await _keys(client, country=["SYR", "IRQ"])
    assert len(both) == len(SEED_EVENTS)


async def test_place_by_id_includes_descendants(client):
    aleppo = str(seed_id("place", "aleppo-governorate"))
    assert set(await _keys(client, place=aleppo)) == {"afrin-offensive", "afrin-capture"}


async def test_dates_select_events_whose_interval_overlaps(client):
    # Afrin was captured some time in March 2018: a range inside March finds it.
    march = await _keys(client, date_from="2018-03-10", date_to="2018-03-12")
    assert "afrin-capture" in march and "afrin-offensive" in march
    assert "al-qasr-strike" not in march
    assert set(await _keys(client, date_to="2014-12-31")) == {"isis-2014-iraq", "isis-2014-syria"}


async def test_default_order_is_newest_first_and_others_on_request(client):
    newest = await _keys(client)
    assert set(newest[-2:]) == {"isis-2014-iraq", "isis-2014-syria"}  # same dates: ties go by id
    assert await _keys(client, sort="date") == list(reversed(newest))
    assert (await _keys(client, sort="-fatalities"))[0] == "al-qasr-strike"


async def test_type_actor_claimant_attribution_and_fatality_filters(client):
    assert set(await _keys(client, sub_event_type="Air/drone strike")) == {
        "al-qasr-strike", "raf-motorbike-strike", "raf-mosul-strikes"}
    assert len(await _keys(client, event_type="Strategic developments")) == 6
    assert set(await _keys(client, perpetrator="RAF")) == {"raf-motorbike-strike", "raf-mosul-strikes"}
    isis = set(await _keys(client, actor="Daesh"))
    assert isis == set(await _keys(client, actor="ISIS")) and "raf-motorbike-strike" in isis
    assert await _keys(client, claimant="SOHR") == ["al-qasr-strike"]
    assert await _keys(client, attribution="contested") == ["al-qasr-strike"]
    assert await _keys(client, min_civilian_fatalities=2) == ["al-qasr-strike"]
    assert await _keys(client, min_fatalities=1, max_fatalities=1) == ["raf-motorbike-strike"]
    assert await _keys(client, external_id="conflictkb-seed:dumayr-surrender") == ["dumayr-surrender"]


async def test_filters_combine_with_and(client):
    assert await _keys(client, country="SYR", sub_event_type="Air/drone strike", attribution="confirmed") == [
        "raf-motorbike-strike"]


async def test_pages_walk_every_event_once(client):
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/events", params=params)
        body = response.json()
        seen += [e["id"] for e in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            assert "link" not in response.headers
            break
        assert response.headers["link"].endswith('; rel="next"') and "cursor=" in response.headers["link"]
    assert pages == 4 and len(seen) == len(set(seen)) == len(SEED_EVENTS)


async def test_count_gives_the_total(client):
    body = (await client.get("/v1/events", params={"country": "SYR", "limit": 1, "count": "true"})).json()
    assert body["total"] == 12 and len(body["data"]) == 1


async def test_a_tampered_cursor_is_a_400(client):
    cursor = (await client.get("/v1/events", params={"limit": 1})).json()["next_cursor"]
    forged = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    response = await client.get("/v1/events", params={"cursor": forged})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["name"] == "cursor"
    other_sort = await client.get("/v1/events", params={"cursor": cursor, "sort": "date"})
    assert other_sort.status_code == 400 and "sort" in other_sort.json()["detail"]


async def test_the_event_tree(client):
    response = await client.get(event_url("al-qasr-strike"))
    assert response.status_code == 200
    event = response.json()
    schemas.Event.model_validate(event)  # the documented shape is the real one
    assert {"dataset": "conflictkb-seed", "id": "al-qasr-strike"} in event["external_ids"]
    assert len(event["claims"]) >= 5
    by_id = await client.get(f"/v1/events/{event['id']}")
    assert by_id.json() == event


async def test_an_events_claims(client):
    body = (await client.get(event_url("al-qasr-strike") + "/claims")).json()
    event = (await client.get(event_url("al-qasr-strike"))).json()
    assert sorted(c["id"] for c in body["data"]) == sorted(c["id"] for c in event["claims"])
    TypeAdapter(schemas.ListOf[schemas.Claim]).validate_python(body)


async def test_claims_across_events(client):
    denials = (await client.get("/v1/claims", params={"stance": "denies"})).json()["data"]
    assert [(c["claimant"]["name"], c["predicate"]) for c in denials] == [("US-led coalition", "perpetrator")]
    sohr = (await client.get("/v1/claims", params={"claimant": "the Observatory", "predicate": "perpetrator"})).json()
    assert len(sohr["data"]) == 2


async def test_actors_places_documents(client):
    actors = (await client.get("/v1/actors", params={"kind": "monitor"})).json()
    TypeAdapter(schemas.ListOf[schemas.Actor]).validate_python(actors)
    assert [a["name"] for a in actors["data"]] == ["Syrian Observatory for Human Rights"]
    actor = (await client.get(f"/v1/actors/{actors['data'][0]['id']}")).json()
    assert "SOHR" in actor["aliases"]

    countries = (await client.get("/v1/places", params={"kind": "country"})).json()
    TypeAdapter(schemas.ListOf[schemas.Place]).validate_python(countries)
    assert [p["iso3"] for p in countries["data"]] == ["IRQ", "SYR"]
    syria = countries["data"][1]["id"]
    provinces = (await client.get("/v1/places", params={"parent": syria, "kind": "admin1"})).json()["data"]
    assert "Al Hasakah Governorate" in [p["name"] for p in provinces]
    hasakah = (await client.get("/v1/places", params={"q": "hasakeh"})).json()["data"][0]
    assert hasakah["parent"]["name"] == "Syria"

    documents = (await client.get("/v1/documents")).json()
    TypeAdapter(schemas.ListOf[schemas.Document]).validate_python(documents)
    document = (await client.get(f"/v1/documents/{documents['data'][0]['id']}")).json()
    assert document["claim_count"] >= 40 and document["published_at"] is None  # not stated


async def test_the_vocabularies_hold_the_whole_acled_taxonomy(client):
    vocab = (await client.get("/v1/vocabularies")).json()
    assert len(vocab["event_types"]) == 6
    assert sum(len(t["sub_event_types"]) for t in vocab["event_types"]) == 25
    assert [p["code"] for p in vocab["date_precisions"]] == ["day", "week", "month", "year"]


@pytest.mark.parametrize("path", ["/v1/events/not-an-id", "/v1/events/00000000-0000-0000-0000-000000000000",
                                  "/v1/events/ucdp-ged:0", "/v1/actors/nobody", "/v1/places/nowhere",
                                  "/v1/documents/none", "/v1/claims/none", "/v1/events/not-an-id/claims",
                                  "/v1/no-such-thing"])
async def test_unknown_ids_are_404_problems(client, path):
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 404 and problem["title"] and problem["detail"]


@pytest.mark.parametrize("params, name", [
    ({"date_from": "yesterday"}, "date_from"),
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"min_fatalities": "-1"}, "min_fatalities"),
    ({"sort": "popularity"}, "sort"),
    ({"attribution": "likely"}, "attribution"),
    ({"admin1": "Narnia"}, "admin1"),
    ({"country": "Atlantis"}, "country"),
    ({"perpetrator": "Nobody At All"}, "perpetrator"),
    ({"sub_event_type": "Dance-off"}, "sub_event_type"),
    ({"date_from": "2019-01-01", "date_to": "2018-01-01"}, "date_to"),
    ({"contry": "SYR"}, "contry"),
])
async def test_a_bad_parameter_is_a_422_that_names_it(client, params, name):
    response = await client.get("/v1/events", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert name in [e["name"] for e in problem["errors"]]
    assert name in problem["detail"]


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"
    assert set(ready.json()["checks"]) == {"postgres", "redis"}


async def test_openapi_documents_the_contract(client):
    spec = (await client.get("/openapi.json")).json()
    for path in ["/v1/events", "/v1/events/{event_id}", "/v1/events/{event_id}/claims", "/v1/claims",
                 "/v1/actors", "/v1/actors/{actor_id}", "/v1/places", "/v1/places/{place_id}",
                 "/v1/documents/{document_id}", "/healthz", "/readyz"]:
        assert path in spec["paths"], path
    assert (await client.get("/docs")).status_code == 200


async def test_an_events_claims_take_the_claim_filters(client):
    body = (await client.get(event_url("al-qasr-strike") + "/claims", params={"stance": "denies"})).json()
    assert [c["claimant"]["name"] for c in body["data"]] == ["US-led coalition"]


async def test_lists_count_claims_and_the_detail_carries_them(client):
    listed = (await client.get("/v1/events", params={"admin1": "Hasakah"})).json()["data"][0]
    assert "claims" not in listed
    detail = (await client.get(event_url("al-qasr-strike"))).json()
    assert listed["claim_count"] == len(detail["claims"]) == detail["claim_count"]


async def test_browsers_on_other_origins_may_read(client):
    preflight = await client.options("/v1/events", headers={
        "Origin": "https://charts.example", "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] in ("*", "https://charts.example")
    response = await client.get("/v1/events", headers={"Origin": "https://charts.example"})
    assert "link" in response.headers["access-control-expose-headers"].lower()


async def test_large_answers_are_compressed(client):
    response = await client.get("/v1/events", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert len(response.json()["data"]) == 14  # httpx decompresses


@pytest.mark.parametrize("path, name", [("/v1/actors?q=--", "q"), ("/v1/places?parent=nowhere", "parent"),
                                        ("/v1/claims?stance=maybe", "stance"), ("/v1/places?kind=planet", "kind")])
async def test_bad_list_parameters_are_named(client, path, name):
    response = await client.get(path)
    assert response.status_code == 422
    assert [e["name"] for e in response.json()["errors"]] == [name]


@pytest.mark.parametrize("path, name", [
    ("/v1/events?min_fatalities=3000000000", "min_fatalities"),           # beyond a 32-bit count
    ("/v1/events?event_type=%00", "event_type"),                          # PostgreSQL text holds no NUL
    ("/v1/events?external_id=a:%00", "external_id"),
    ("/v1/events/a:%00", "event_id"),
    ("/v1/events?sort=-date&sort=date", "sort"),                          # one value only
    ("/v1/events?limit=1&limit=2", "limit"),
    ("/v1/events?country=SYR&country=Narnia", "country"),                 # every value must name a place
    ("/v1/events?claimant=SOHR&claimant=Nobody%20Known", "claimant"),
    ("/v1/events?external_id=conflictkb-seed:nope", "external_id"),
    ("/v1/events?where=%7B%22admin1%22%3A%22%5Cu0000%22%7D", "admin1"),   # a NUL inside the where JSON
    ("/v1/actors?kind=bogus", "kind"),
    ("/v1/actors?q=", "q"),
    ("/v1/places?q=", "q"),
    ("/v1/places?parent=00000000-0000-0000-0000-000000000000", "parent"),
    ("/v1/claims?predicate=bogus", "predicate"),
    ("/v1/events/conflictkb-seed:al-qasr-strike/claims?predicate=bogus", "predicate"),
])
async def test_nothing_is_silently_ignored_or_a_500(client, path, name):
    response = await client.get(path)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert name in [e["name"] for e in response.json()["errors"]]


async def test_the_unmatched_value_is_the_one_named(client):
    problem = (await client.get("/v1/events", params={"country": ["SYR", "Narnia"]})).json()
    assert "'Narnia'" in problem["detail"] and "'SYR'" not in problem["detail"]


@pytest.mark.parametrize("spelling", ["Al-Hasakeh", "Hasakeh Governorate", "al-Hasakah province"])
async def test_query_names_drop_articles_and_admin_words_too(client, spelling):
    assert (await client.get("/v1/events", params={"admin1": spelling})).json()["data"][0]["place"]["name"] == "Al-Qasr"


async def test_cursors_belong_to_their_list(client):
    cursor = (await client.get("/v1/actors", params={"limit": 1})).json()["next_cursor"]
    assert (await client.get("/v1/places", params={"cursor": cursor})).status_code == 400
    odd = await client.get("/v1/events", params={"cursor": "YQ.é"})
    assert odd.status_code == 400 and odd.json()["errors"][0]["name"] == "cursor"


async def test_head_answers_like_get_without_a_body(client):
    for path in ("/healthz", "/v1/events", event_url("al-qasr-strike")):
        get, head = await client.get(path), await client.head(path)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["etag"] == get.headers["etag"]


async def test_losing_the_database_is_a_503_not_a_500(redis_url, tmp_path):
    from tests.conftest import app_client

    async with app_client(f"postgresql+asyncpg://postgres@/conflictkb?host={tmp_path}", redis_url) as broken:
        response = await broken.get("/v1/events")
        assert response.status_code == 503 and response.headers["retry-after"]
        assert response.headers["content-type"] == "application/problem+json"
