"""What REST serves is what its OpenAPI document says (issue 16).

The models of api/schemas.py describe the JSON PostgreSQL builds; they never run over
it. So every operation of the document that answers JSON is asked here on real
records (a seeded knowledge base with two sources' records of one clash, linked, and
a near miss: tests/test_happenings.py's `linked`), and each answer is validated
against the document the app serves, vocabularies' enums included, by schemathesis
(the checks of tests/test_fuzz.py's response_schema_conformance, on chosen records
rather than generated ones): a key the document lacks, a key it requires missing, a
null where it says non-null, a value of another type, all fail, naming the operation.
An operation added without a sample here fails too.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis

from api.openapi import GRAPHQL_PATH
from db.api_keys import create_api_key
from db.engine import make_engine
from tests.conftest import AIRSTRIKE, as_
from tests.test_happenings import UCDP_ID, linked  # noqa: F401 (a fixture: its linked records)

SEED = "conflictkb-seed:"
STRIKE, AFRIN = SEED + "al-qasr-strike", SEED + "afrin-capture"
UCDP = f"ucdp-ged:{UCDP_ID}"

# Operations answering JSON with no sample, and why.
NOT_ASKED = {
    ("get", GRAPHQL_PATH): "GraphQL's own transport: tests/test_graphql_transport.py",
    ("post", GRAPHQL_PATH): "GraphQL's own transport: tests/test_graphql_transport.py",
}


def _json_answers(document: dict) -> Iterator[tuple[str, str]]:
    """(method, path) of every operation with a 2xx answer in JSON (or a JSON-based type)."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if status.startswith("2") and any(media == "application/json" or media.endswith("+json")
                                                  for media in response.get("content", {})):
                    yield method, path
                    break


@pytest.fixture(scope="module")
async def editor(linked) -> str:
    engine = make_engine(linked.database_url, pool_size=1)
    async with engine.begin() as conn:
        token = (await create_api_key(conn, "editor", "test response models")).token
    await engine.dispose()
    return token


@pytest.fixture(scope="module")
async def served(linked) -> schemathesis.BaseSchema:
    document = (await linked.get("/openapi.json")).json()
    return schemathesis.openapi.from_dict(document)


def _check(served, method: str, path: str, response: httpx.Response, asked: set) -> dict:
    """The answer, valid by the document; (method, path) noted as asked."""
    assert 200 <= response.status_code < 300, (method, response.request.url, response.text)
    try:
        served[path][method.upper()].validate_response(response)
    except Exception as failure:  # noqa: BLE001 - schemathesis' FailureGroup: its message says what
        raise AssertionError(f"{method.upper()} {response.request.url} is not what the OpenAPI document says "
                             f"of {path}:\n{failure}") from None
    asked.add((method, path))
    return response.json()


async def test_every_read_answer_is_what_the_document_says(linked, served, editor):
    asked: set[tuple[str, str]] = set()

    async def get(path: str, url: str | None = None, **params) -> dict:
        return _check(served, "get", path, await linked.get(url or path, params=params, headers=as_(editor)),
                      asked)

    strike = await get("/v1/events/{event_id}", f"/v1/events/{STRIKE}")
    ucdp = await get("/v1/events/{event_id}", f"/v1/events/{UCDP}")
    assert strike["claims"] and ucdp["linked_events"], "samples with claims and linked events"
    for params in ({}, {"limit": 3, "count": "true"}, {"near": "34.81,36.715,10", "sort": "distance"},
                   {"collapse": "happening"}, {"fields": "id,date_start,fatalities"}, {"q": "strike"}):
        await get("/v1/events", **params)
    for sub in ("attribution", "history", "claims"):
        await get(f"/v1/events/{{event_id}}/{sub}", f"/v1/events/{STRIKE}/{sub}")
    matches = await get("/v1/events/{event_id}/matches", f"/v1/events/{UCDP}/matches")
    assert matches["data"], "a sample with matches"
    happening = await get("/v1/happenings/{happening_id}", f"/v1/happenings/{ucdp['happening']['id']}")
    assert happening["record_count"] == 2
    claims = await get("/v1/claims")
    await get("/v1/claims", stance="denies")
    await get("/v1/claims/{claim_id}", f"/v1/claims/{claims['data'][0]['id']}")
    actors = await get("/v1/actors", limit=500)
    for actor in actors["data"]:
        if actor["members"] or actor["memberships"] or actor["parent"]:
            await get("/v1/actors/{actor_id}", f"/v1/actors/{actor['id']}")
    places = await get("/v1/places", kind="locality")
    await get("/v1/places/{place_id}", f"/v1/places/{places['data'][0]['id']}")
    documents = await get("/v1/documents")
    await get("/v1/documents/{document_id}", f"/v1/documents/{documents['data'][0]['id']}")
    await get("/v1/vocabularies")
    for group_by in ("country,admin1,admin2", "year,month,week,day", "event_type,sub_event_type",
                     "perpetrator,claimant"):
        await get("/v1/stats/events", group_by=group_by)
    await get("/v1/changes")
    await get("/v1/apikeys/me")
    await get("/v1/events.geojson", admin1="Hasakah")
    await get("/healthz")
    await get("/readyz")

    unasked = {(method, path) for method, path in _json_answers(served.raw_schema) if method == "get"} - asked
    assert unasked <= set(NOT_ASKED), f"read operations with no sample here: {sorted(unasked - set(NOT_ASKED))}"


async def test_every_write_answer_is_what_the_document_says(linked, served, editor):
    asked: set[tuple[str, str]] = set()
    headers = as_(editor)

    async def write(method: str, path: str, url: str | None = None, **body) -> dict:
        response = await linked.request(method, url or path, json=body or None, headers=headers)
        return _check(served, method, path, response, asked)

    event = await write("post", "/v1/events", **AIRSTRIKE)
    await write("patch", "/v1/events/{event_id}", f"/v1/events/{event['id']}", summary="Changed.")
    twin = await write("post", "/v1/events", **{**AIRSTRIKE, "summary": "The same strike."})
    claim = await write("post", "/v1/claims", event=event["id"], claimant="SOHR", predicate="fatalities",
                        stance="asserts", value={"low": 2, "best": 3}, quote="three killed")
    await write("patch", "/v1/claims/{claim_id}", f"/v1/claims/{claim['id']}", stance="uncertain")
    await write("post", "/v1/events/{event_id}/merge", f"/v1/events/{twin['id']}/merge", into=event["id"])
    brigade = await write("post", "/v1/actors", name="Test Brigade", kind="armed_group", parent="ISIS",
                          aliases=["TB"])
    await write("patch", "/v1/actors/{actor_id}", f"/v1/actors/{brigade['id']}", description="A test.")
    other = await write("post", "/v1/actors", name="Test Brigade Two", kind="armed_group")
    await write("post", "/v1/actors/{actor_id}/merge", f"/v1/actors/{other['id']}/merge", into=brigade["id"])
    province = event["place"]["ancestors"][-1]
    village = await write("post", "/v1/places", name="Test Village", kind="locality", parent=province["id"],
                          latitude=36.1, longitude=40.2)
    await write("patch", "/v1/places/{place_id}", f"/v1/places/{village['id']}", aliases=["Testville"])
    document = await write("post", "/v1/documents", publisher="Test Wire", title="A report", language="en")
    await write("patch", "/v1/documents/{document_id}", f"/v1/documents/{document['id']}", excerpt="Words.")
    confirmed = await write("post", "/v1/events/{event_id}/links", f"/v1/events/{UCDP}/links", event="acled:SYR-MISS")
    assert confirmed["verdict"] == "confirmed"
    await write("delete", "/v1/events/{event_id}/links/{other_id}", f"/v1/events/{UCDP}/links/acled:SYR-MISS")

    unasked = {answer for answer in _json_answers(served.raw_schema) if answer[0] != "get"} - asked
    assert unasked <= set(NOT_ASKED), f"write operations with no sample here: {sorted(unasked - set(NOT_ASKED))}"
