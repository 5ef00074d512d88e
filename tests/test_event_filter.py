"""The event filter is declared once (db.filters.EventFilter): every field is a REST
parameter and a GraphQL EventWhere field with the same description, a bad value is
refused by the same check with the same code and message on both interfaces (each
naming the field its own way), and a list and its total look names up once."""

from __future__ import annotations

import json

import pytest
from strawberry.utils.str_converters import to_camel_case

from db.filters import FILTER_FIELDS
from tests.conftest import statements_run
from tests.test_graphql import gql

FILTERED_PATHS = ("/v1/events", "/v1/stats/events", "/v1/events.csv", "/v1/events.geojson", "/v1/events.ndjson")


async def test_every_filter_field_is_a_rest_parameter_and_a_graphql_field_alike(client):
    document = (await client.get("/openapi.json")).json()
    introspected = await gql(client, '{ __type(name: "EventWhere") { inputFields { name description } } }')
    graphql = {f["name"]: f["description"] for f in introspected["data"]["__type"]["inputFields"]}
    for path in FILTERED_PATHS:
        rest = {p["name"]: p.get("description") for p in document["paths"][path]["get"]["parameters"]}
        for name, spec in FILTER_FIELDS.items():
            assert rest.get(name) == spec.description, (path, name)
    for name, spec in FILTER_FIELDS.items():
        assert graphql.get(to_camel_case(name)) == spec.description, name
    assert set(graphql) == {to_camel_case(name) for name in FILTER_FIELDS} | {"_and", "_or", "_not"}


EVENTS = "query ($where: EventWhere) { events(where: $where) { totalCount } }"


# The same bad value: as REST's parameters, as GraphQL's `where`; the parameter REST
# names, the argument GraphQL names; the check's code; the field the message mentions,
# by REST's name and by GraphQL's.
BAD_RANGES = [
    ({"near": "95,40,10"}, {"near": {"latitude": 95, "longitude": 40, "radiusKm": 10}},
     "near", "where.near.latitude", "out_of_range", None),
    ({"near": "36,40,0"}, {"near": {"latitude": 36, "longitude": 40, "radiusKm": 0}},
     "near", "where.near.radiusKm", "out_of_range", None),
    ({"near": "36,-181,10"}, {"near": {"latitude": 36, "longitude": -181, "radiusKm": 10}},
     "near", "where.near.longitude", "out_of_range", None),
    ({"bbox": "10,50,20,40"}, {"bbox": [10, 50, 20, 40]}, "bbox", "where.bbox", "out_of_order", None),
    ({"bbox": "170,0,190,10"}, {"bbox": [170, 0, 190, 10]}, "bbox", "where.bbox", "out_of_range", None),
    ({"bbox": "1,2,3"}, {"bbox": [1, 2, 3]}, "bbox", "where.bbox", "malformed", None),
    ({"date_from": "2019-01-01", "date_to": "2018-01-01"}, {"dateFrom": "2019-01-01", "dateTo": "2018-01-01"},
     "date_to", "where.dateTo", "out_of_order", ("date_from", "dateFrom")),
    ({"min_fatalities": "-1"}, {"minFatalities": -1}, "min_fatalities", "where.minFatalities", "out_of_range", None),
]


@pytest.mark.parametrize("params, where, parameter, argument, code, mentioned", BAD_RANGES,
                         ids=lambda value: value if isinstance(value, str) else None)
async def test_a_bad_range_is_refused_alike_on_both_interfaces(client, params, where, parameter, argument, code,
                                                               mentioned):
    response = await client.get("/v1/events", params=params)
    assert response.status_code == 422, response.text
    (problem,) = response.json()["errors"]
    assert (problem["name"], problem["code"]) == (parameter, code)
    body = await gql(client, EVENTS, where=where)
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument, "inputCode": code}
    message = error["message"].removeprefix(f"{argument}: ")
    rest_name, graphql_name = mentioned or ("", "")
    # REST says which part of its parameter: `near` "latitude must be ...", GraphQL's argument does
    assert problem["reason"].endswith(message.replace(graphql_name, rest_name)), (problem, error)
    assert response.json()["detail"] == f"{parameter}: {problem['reason']}"

    # REST's `where` is GraphQL's grammar, named `where` and then as GraphQL names it
    in_where = (await client.get("/v1/events", params={"where": json.dumps(where)})).json()["errors"]
    assert in_where == [{"name": "where", "in": "query", "code": code,
                         "reason": error["message"].removeprefix("where.")}]


async def test_a_nested_bad_value_is_named_by_its_path(client):
    where = {"_or": [{"country": "SYR"}, {"_not": {"near": {"latitude": 0, "longitude": 0, "radiusKm": -5}}}]}
    (error,) = (await gql(client, EVENTS, where=where))["errors"]
    assert error["extensions"]["argument"] == "where._or.1._not.near.radiusKm"
    (problem,) = (await client.get("/v1/events", params={"where": json.dumps(where)})).json()["errors"]
    assert problem["reason"].startswith("_or.1._not.near.radiusKm: ")


async def test_a_list_and_its_total_look_names_up_once(client):
    # (month-aligned dates and an area: the total is summed from the monthly rollup;
    # no-cache: the total is counted, not read from Redis)
    params = {"admin1": "Hasakeh", "date_from": "2017-01-01", "date_to": "2018-12-31", "count": "true"}
    with statements_run(client) as statements:
        response = await client.get("/v1/events", params=params, headers={"Cache-Control": "no-cache"})
    assert response.status_code == 200 and response.json()["total"] >= 1, response.text
    assert any("event_month_counts" in statement for statement in statements)
    assert sum("name_norm" in statement for statement in statements) == 1, statements
