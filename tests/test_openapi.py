"""The OpenAPI document says what the API does: answers' schemas, every status, enums,
and the methods each path takes (OPTIONS, 405)."""

from __future__ import annotations

import pytest

from tests.conftest import AIRSTRIKE, app_client, as_, event_url, make_settings

WRITE_STATUSES = {"401", "403", "413", "422", "429", "503"}


@pytest.fixture(scope="module")
async def document(client) -> dict:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(document: dict):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def _resolve(document: dict, schema: dict) -> dict:
    ref = schema.get("$ref")
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


async def test_every_json_answer_has_its_model_not_a_string(document):
    for path, method, operation in _operations(document):
        success = {status: r for status, r in operation["responses"].items() if status in ("200", "201")}
        for status, response in success.items():
            for media_type, content in response.get("content", {}).items():
                if media_type in ("application/json", "application/geo+json"):  # (NDJSON: text lines)
                    schema = _resolve(document, content["schema"])
                    assert schema and schema.get("type") != "string", (method, path, status, schema)
    def answer(path: str) -> dict:
        return _resolve(document, document["paths"][path]["get"]["responses"]["200"]["content"][
            "application/json"]["schema"])

    assert set(answer("/v1/events")["properties"]) == {"data", "next_cursor", "total"}
    assert set(answer("/v1/events/{event_id}/matches")["properties"]) == {"data", "next_cursor", "total"}
    happening = answer("/v1/happenings/{happening_id}")
    assert {"id", "records", "sources", "date_start", "date_end", "fatalities", "attribution"} <= set(
        happening["properties"])


async def test_problems_are_declared_once_for_all_by_what_an_operation_takes(document):
    paths = document["paths"]
    for path, method, operation in _operations(document):
        statuses = set(operation["responses"])
        if path.startswith("/v1/"):
            assert {"422", "429", "503"} <= statuses, (method, path)
            problem = operation["responses"]["422"]["content"]
            assert list(problem) == ["application/problem+json"]
        if method in ("patch", "delete"):
            # (a verdict on a pair, DELETE .../links/{other}, replaces any other: no If-Match)
            assert WRITE_STATUSES | {"404", "410"} | ({"412"} if "/links/" not in path else set()) <= statuses, \
                (method, path)
        if method == "post" and path.startswith("/v1/"):
            assert WRITE_STATUSES <= statuses, (method, path)
    assert "308" in paths["/v1/events/{event_id}"]["get"]["responses"]  # events and actors can be merged
    assert "308" not in paths["/v1/places/{place_id}"]["get"]["responses"]
    assert "404" in paths["/v1/happenings/{happening_id}"]["get"]["responses"]
    assert "400" in paths["/v1/events/{event_id}/matches"]["get"]["responses"]  # a cursor: paged
    collapse = {p["name"]: p for p in paths["/v1/events"]["get"]["parameters"]}["collapse"]
    assert _resolve(document, collapse["schema"]["anyOf"][0])["enum"] == ["happening"]
    too_many = paths["/v1/events"]["get"]["responses"]["429"]
    assert too_many["headers"]["Retry-After"]["required"] and "RateLimit" in too_many["headers"]
    assert paths["/v1/events"]["get"]["responses"]["503"]["headers"]["Retry-After"]["required"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


async def test_vocabularies_are_enums_of_the_database_rows(client, document):
    vocabularies = (await client.get("/v1/vocabularies")).json()
    schemas = document["components"]["schemas"]
    actor_kinds = [row["code"] for row in vocabularies["actor_kinds"]]
    assert schemas["ActorInput"]["properties"]["kind"]["enum"] == actor_kinds
    assert schemas["ActorPatch"]["properties"]["kind"]["anyOf"][0]["enum"] == actor_kinds
    event = schemas["EventInput"]["properties"]
    assert event["event_type"]["enum"] == [t["name"] for t in vocabularies["event_types"]]
    assert "Air/drone strike" in event["sub_event_type"]["enum"]
    assert event["date_precision"]["enum"] == ["day", "week", "month", "year"]
    assert set(schemas["ClaimInput"]["properties"]["stance"]["enum"]) == {"asserts", "denies", "uncertain", "concedes"}
    claims = {p["name"]: p for p in document["paths"]["/v1/claims"]["get"]["parameters"]}
    assert "civilian_fatalities" in claims["predicate"]["schema"]["items"]["enum"]


async def test_a_body_the_document_allows_is_taken(fresh_client, keys):
    # a kind from the enum, a PATCH that sets a field: both as the document says
    created = await fresh_client.post("/v1/actors", json={"name": "Test monitor", "kind": "monitor"},
                                      headers=as_(keys["editor"]))
    assert created.status_code == 201, created.text
    blank = await fresh_client.patch(created.headers["Location"], json={"name": "  "}, headers=as_(keys["editor"]))
    assert blank.status_code == 422 and blank.json()["errors"][0]["name"] == "name"  # minLength + \S, as documented


async def test_options_and_405_name_every_method_of_the_path(fresh_client, keys):
    options = await fresh_client.options(event_url("al-qasr-strike"))
    assert options.status_code == 204
    assert set(options.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH", "DELETE", "OPTIONS"}
    wrong = await fresh_client.put("/v1/events", json=AIRSTRIKE, headers=as_(keys["editor"]))
    assert wrong.status_code == 405
    assert wrong.headers["content-type"] == "application/problem+json"
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "HEAD", "POST", "OPTIONS"}


@pytest.mark.parametrize("params", [{"fields": ""}, {"bbox": ""}, {"near": ""}, {"q": ""}, {"where": ""}])
async def test_an_empty_text_parameter_is_as_if_not_given(client, params):
    response = await client.get("/v1/events", params=params)
    assert response.status_code == 200, response.text
    assert response.json() == (await client.get("/v1/events")).json()


async def test_an_empty_cursor_is_refused_as_the_document_says(client, document):
    # a client sending back a null next_cursor must not be given the first page again
    assert (await client.get("/v1/events", params={"cursor": ""})).status_code == 400
    cursor = next(p for p in document["paths"]["/v1/events"]["get"]["parameters"] if p["name"] == "cursor")
    assert cursor["schema"]["minLength"] == 1


async def test_a_date_is_what_its_format_says(client):
    response = await client.get("/v1/events", params={"date_to": "0"})
    assert response.status_code == 422 and response.json()["errors"][0]["name"] == "date_to"


@pytest.mark.parametrize("as_of", ["0.5", "2018-05-01"])
async def test_a_time_is_what_its_pattern_says(client, document, as_of):
    response = await client.get("/v1/events", params={"as_of": as_of})
    assert response.status_code == 422 and response.json()["errors"][0]["name"] == "as_of"
    assert (await client.get("/v1/events", params={"as_of": "2026-01-01T00:00"})).status_code == 200
    parameter = next(p for p in document["paths"]["/v1/events"]["get"]["parameters"] if p["name"] == "as_of")
    assert "pattern" in parameter["schema"]["anyOf"][0]


async def test_with_keys_for_reads_every_operation_declares_401(database_url, redis_url):
    settings = make_settings(require_key_for_reads=True)
    async with app_client(database_url, redis_url, settings) as http:
        document = (await http.get("/openapi.json")).json()
    for path, method, operation in _operations(document):
        if path.startswith(("/v1/", "/graphql")):
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
