"""schemathesis against the app, in-process (ASGI, lifespan run): every operation of the
OpenAPI document with every check, and the GraphQL schema, must give 0 failures.

Bounded for the suite (a few examples per operation, seeded, so a run is the same run);
`make fuzz` sets CONFLICTKB_FUZZ_EXAMPLES higher. The exceptions (checks not run, and
why) are in the README, under "What the OpenAPI document promises".
"""

from __future__ import annotations

import os

import pytest
from schemathesis import engine as fuzz_engine
from schemathesis import graphql, openapi
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events

from api.app import create_app
from tests.conftest import as_, make_settings

EXAMPLES = int(os.environ.get("CONFLICTKB_FUZZ_EXAMPLES", "6"))
SEED = int(os.environ.get("CONFLICTKB_FUZZ_SEED", "13"))


def _config(**extra) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "seed": SEED,
        "generation": {"max-examples": EXAMPLES, "allow-x00": False},
        "checks": {
            # Valid-looking is not enough where a value must name a record: a filter or a
            # body naming a place, an actor or an event that is not there is a 422 naming
            # it, a stale If-Match a 412, a deleted record's id a 410, a cursor the API did
            # not make a 400 (README).
            "positive_data_acceptance": {"expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "410",
                                                               "412", "422", "429", "5xx"]},
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


@pytest.fixture
def editor_app(fresh_database_url, redis_url):
    return create_app(make_settings(), database_url=fresh_database_url, redis_url=redis_url)


def test_openapi_document_holds_under_fuzzing(editor_app, keys):
    # /graphql is fuzzed through its GraphQL schema (below), which says what a request holds
    schema = openapi.from_asgi("/openapi.json", editor_app, config=_config(headers=as_(keys["editor"]))
                               ).exclude(path="/graphql")
    failures = _failures(schema)
    assert not failures, "\n".join(failures)


def test_graphql_schema_holds_under_fuzzing(editor_app, keys):
    schema = graphql.from_asgi("/graphql", editor_app, config=_config(headers=as_(keys["editor"])))
    failures = _failures(schema)
    assert not failures, "\n".join(failures)
