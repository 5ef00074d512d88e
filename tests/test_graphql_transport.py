"""/graphql refuses what is not a GraphQL request with a 4xx and a GraphQL error body
(`errors[].extensions.code`), never a 500 and never text/plain."""

from __future__ import annotations

import pytest

JSON = {"Content-Type": "application/json"}


def assert_bad_request(response, status: int = 400, says: str | None = None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] in ("application/json", "application/graphql-response+json")
    body = response.json()
    assert set(body) == {"errors"}, body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    if says is not None:
        assert says in error["message"], error["message"]
    return error["message"]


@pytest.mark.parametrize(("body", "kind"), [
    (b"null", "null"), (b"42", "a number"), (b'"x"', "a string"), (b"[]", "an array"), (b"true", "a boolean"),
    (b'[{"query": "{ __typename }"}]', "an array"),
])
async def test_a_json_body_that_is_not_an_object_is_refused(client, body: bytes, kind: str):
    response = await client.post("/graphql", content=body, headers=JSON)
    message = assert_bad_request(response, says=f"Expected a JSON object, got {kind}")
    assert '"query"' in message  # says what a request looks like


@pytest.mark.parametrize("body", [b"{", b"", b"{'query': 1}", b'{"query": "{ __typename }"} trailing'])
async def test_invalid_json_is_refused(client, body: bytes):
    assert_bad_request(await client.post("/graphql", content=body, headers=JSON), says="not valid JSON")


async def test_a_body_that_is_not_utf8_is_refused(client):
    body = '{"query": "{ __typename }", "operationName": "caf\u00e9"}'.encode("latin-1")
    assert_bad_request(await client.post("/graphql", content=body, headers=JSON), says="UTF-8")


@pytest.mark.parametrize(("body", "says"), [
    ({}, "No GraphQL query"),
    ({"variables": {}}, "No GraphQL query"),
    ({"query": 42}, "`query` must be a string"),
    ({"query": "{ __typename }", "variables": [1]}, "`variables` must be an object"),
    ({"query": "{ __typename }", "extensions": "x"}, "`extensions` must be an object"),
])
async def test_a_malformed_request_object_is_refused(client, body: dict, says: str):
    assert_bad_request(await client.post("/graphql", json=body), says=says)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
async def test_a_body_of_another_content_type_is_refused(client, content_type: str):
    response = await client.post("/graphql", content=b'{"query": "{ __typename }"}',
                                 headers={"Content-Type": content_type})
    assert_bad_request(response, says="content type")


async def test_a_get_carrying_a_mutation_is_refused(client):
    response = await client.get("/graphql", params={"query": 'mutation { deleteEvent(id: "x") { id } }'})
    assert response.status_code in (400, 405), response.text
    assert response.json()["errors"][0]["extensions"]["code"] in ("BAD_REQUEST", "METHOD_NOT_ALLOWED")
    assert "mutation" in response.json()["errors"][0]["message"].lower()


@pytest.mark.parametrize("variables", ["42", "null-ish", "[1]"])
async def test_get_variables_that_are_not_a_json_object_are_refused(client, variables: str):
    response = await client.get("/graphql", params={"query": "{ __typename }", "variables": variables})
    assert_bad_request(response)


async def test_a_get_without_a_query_from_a_program_is_refused(client):
    response = await client.get("/graphql", headers={"Accept": "application/json"})
    assert_bad_request(response, says="No GraphQL query")


async def test_a_well_formed_request_still_runs(client):
    response = await client.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}
    response = await client.get("/graphql", params={"query": "{ __typename }", "variables": "{}"})
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_query_that_does_not_parse_says_so_with_a_code(client, method: str):
    # (strawberry answers a syntax error before the operation's extensions run)
    query = "{ events(first: 1) { totalCount }"
    response = await (client.get("/graphql", params={"query": query}) if method == "GET"
                      else client.post("/graphql", json={"query": query}))
    [error] = response.json()["errors"]
    assert error["message"].startswith("Syntax Error")
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
