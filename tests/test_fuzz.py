"""schemathesis against the app, in-process (ASGI, lifespan run): every operation of the
OpenAPI document with every check, and the GraphQL schema, must give 0 failures.

Bounded for the suite (a few examples per operation, seeded, so a run is the same run);
`make fuzz` sets CONFLICTKB_FUZZ_EXAMPLES higher. The exceptions (checks not run, and
why) are in the README, under "What the OpenAPI document promises".
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from schemathesis import engine as fuzz_engine
from schemathesis import graphql, openapi
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.graphql.schemas import GraphQLSchema

from api.app import create_app
from schema.errors import CLIENT_ERROR_CODES
from tests.conftest import as_, make_settings

EXAMPLES = int(os.environ.get("CONFLICTKB_FUZZ_EXAMPLES", "6"))
SEED = int(os.environ.get("CONFLICTKB_FUZZ_SEED", "13"))


def _config(*, checks: dict | None = None, **extra) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "seed": SEED,
        # (no example database: a run is its seed's, not what earlier runs saved)
        "generation": {"max-examples": EXAMPLES, "allow-x00": False, "database": "none"},
        "checks": {
            # Valid-looking is not enough where a value must name a record: a filter or a
            # body naming a place, an actor or an event that is not there is a 422 naming
            # it, a stale If-Match a 412, a deleted record's id a 410, a cursor the API did
            # not make a 400 (README).
            "positive_data_acceptance": {"expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "410",
                                                               "412", "422", "429", "5xx"]},
            **(checks or {}),
        },
        **extra,
    })


def _failures(schema) -> list[str]:
    """Run every phase of schemathesis's engine (what `schemathesis run` does) and
    return each failed check, with the request that failed it."""
    found: list[str] = []
    for event in fuzz_engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            recorder = event.recorder
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE:
                        case = recorder.cases[case_id].value
                        failure = check.failure_info.failure
                        found.append(f"{check.name}: {case.as_curl_command()}\n    {failure.title}: "
                                     f"{failure.message.splitlines()[0] if failure.message else ''}"[:600])
        elif isinstance(event, events.NonFatalError | events.FatalError):
            found.append(f"error: {getattr(event, 'label', '')}: {event.info.message if hasattr(event, 'info') else event}")
    return sorted(set(found))


# The API's GraphQL errors that are the request's, not the server's (README, GraphQL
# errors): schemathesis's own not_a_server_error knows only Apollo's client codes and
# takes an error with a `path` (a mutation refused: NOT_FOUND, PRECONDITION_FAILED...)
# for the server's. This check stands in for it on GraphQL, with the API's codes.
GRAPHQL_CLIENT_CODES = CLIENT_ERROR_CODES


@schemathesis.check
def graphql_not_a_server_error(ctx, response, case) -> bool | None:
    if not isinstance(case.operation.schema, GraphQLSchema):
        return None
    assert response.status_code < 500, f"status {response.status_code}"
    errors = (response.json() or {}).get("errors") or []
    server_errors = [e for e in errors if (e.get("extensions") or {}).get("code") not in GRAPHQL_CLIENT_CODES]
    assert not server_errors, f"GraphQL server error: {server_errors[0]}"
    return None


@pytest.fixture
def editor_app(fresh_database_url, redis_url):
    yield create_app(make_settings(), database_url=fresh_database_url, redis_url=redis_url)
    # schemathesis starts an app's lifespan once and keeps it (keyed by the app's id, which
    # a later app may be given): ended here, before the app's database is dropped
    shutdown_lifespans()


def test_openapi_document_holds_under_fuzzing(editor_app, keys):
    # /graphql too, as HTTP (its transport's answers to bodies that are no GraphQL request);
    # what a GraphQL request holds is fuzzed through its GraphQL schema, below
    schema = openapi.from_asgi("/openapi.json", editor_app, config=_config(headers=as_(keys["editor"])))
    failures = _failures(schema)
    assert not failures, "\n".join(failures)


def test_graphql_schema_holds_under_fuzzing(editor_app, keys):
    schema = graphql.from_asgi("/graphql", editor_app, config=_config(
        headers=as_(keys["editor"]), checks={
            "not_a_server_error": {"enabled": False},  # graphql_not_a_server_error instead
            # Inputs are nullable by design (schema/write_inputs.py) and checked by REST's
            # body models (lengths, patterns, ranges GraphQL types cannot say): a
            # valid-looking input refused with BAD_USER_INPUT naming each field is the
            # documented answer (README).
            "positive_data_acceptance": {"enabled": False}}))
    failures = _failures(schema)
    assert not failures, "\n".join(failures)
