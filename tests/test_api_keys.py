"""API keys: made, listed and revoked from the command line, stored only as hashes, and
checked on requests (401 / 403 problems, roles, the setting that closes reads)."""

from __future__ import annotations

import hashlib
import subprocess
import uuid

import pytest
import strawberry
from pydantic import TypeAdapter
from sqlalchemy import text
from starlette.requests import Request

from api.apikey_command import create_key, list_keys, revoke_key
from api.auth import AdminKey, EditorKey, request_principal
from api.schemas import CallingApiKey
from db.api_keys import ApiKeyRefError, ApiPrincipal
from db.engine import make_engine
from schema.context import GraphQLContext
from schema.errors import ErrorCodes, Schema
from schema.queries import Query
from tests.conftest import app_client, run_conflictkb, make_settings, websocket_handshake

ME = "/v1/apikeys/me"


async def _sql(database_url: str, statement: str, **params) -> list:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        await engine.dispose()


# --- making, listing and revoking keys ---------------------------------------------


async def test_a_key_is_shown_once_and_only_its_hash_is_stored(fresh_database_url):
    made = await create_key(fresh_database_url, "editor", "ci bot")
    assert made.token.startswith("ckb_") and len(made.token) == 4 + 43
    assert made.key.prefix == made.token[:12] and made.key.role == "editor" and made.key.name == "ci bot"
    [row] = await _sql(fresh_database_url, "SELECT key_sha256, row_to_json(api_keys)::text AS whole FROM api_keys")
    assert bytes(row.key_sha256) == hashlib.sha256(made.token.encode()).digest()
    assert made.token not in row.whole and made.token[12:] not in row.whole  # the secret part nowhere
    assert not any(made.token in str(value) for value in vars(made.key).values())


async def test_the_list_shows_every_key_and_no_secret(fresh_database_url):
    kept = await create_key(fresh_database_url, "reader", "dashboard")
    gone = await create_key(fresh_database_url, "admin", "old laptop")
    revoked, newly = await revoke_key(fresh_database_url, str(gone.key.id))
    assert newly and revoked.revoked_at is not None
    listed = await list_keys(fresh_database_url)
    assert [(k.name, k.role, k.prefix, k.revoked_at is None, k.last_used_at) for k in listed] == [
        ("dashboard", "reader", kept.key.prefix, True, None), ("old laptop", "admin", gone.key.prefix, False, None)]
    assert set(vars(listed[0])) == {"id", "name", "role", "prefix", "created_at", "last_used_at", "revoked_at",
                                 "rate_limit"}


async def test_a_key_is_revoked_by_its_id_prefix_or_token_and_stays_revoked(fresh_database_url):
    keys = [await create_key(fresh_database_url, "editor", f"key {i}") for i in range(3)]
    revoked_at = {}
    for key, ref in zip(keys, (str(keys[0].key.id), keys[1].key.prefix, keys[2].token)):
        revoked, newly = await revoke_key(fresh_database_url, ref)
        assert newly and revoked.id == key.key.id and revoked.revoked_at is not None
        revoked_at[revoked.id] = revoked.revoked_at
    again, newly = await revoke_key(fresh_database_url, keys[1].key.prefix)
    assert not newly and again.revoked_at == revoked_at[keys[1].key.id]  # the first date stays
    with pytest.raises(ApiKeyRefError, match="No API key"):
        await revoke_key(fresh_database_url, "ckb_nothing")


async def test_a_prefix_two_keys_share_revokes_neither(fresh_database_url):
    first = await create_key(fresh_database_url, "editor", "one")
    await create_key(fresh_database_url, "editor", "two")
    await _sql(fresh_database_url, "UPDATE api_keys SET prefix = :prefix", prefix=first.key.prefix)
    with pytest.raises(ApiKeyRefError, match="2 API keys have the prefix"):
        await revoke_key(fresh_database_url, first.key.prefix)
    assert all(key.revoked_at is None for key in await list_keys(fresh_database_url))


def _conflictkb(database_url: str, *args: str) -> subprocess.CompletedProcess:
    return run_conflictkb(database_url, "apikey", *args)


async def test_the_command_line_makes_lists_and_revokes_keys(fresh_database_url):
    made = _conflictkb(fresh_database_url, "create", "--role", "editor", "--name", "ci bot")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()  # the key alone on standard output, for KEY=$(...)
    assert token.startswith("ckb_") and "\n" not in token
    assert "only time it is shown" in made.stderr and f"Authorization: Bearer {token}" in made.stderr
    listed = _conflictkb(fresh_database_url, "list")
    header, row = listed.stdout.splitlines()
    assert header.split()[:4] == ["id", "prefix", "role", "name"]
    assert token[:12] in row and "editor" in row and "ci bot" in row and token not in listed.stdout
    revoked = _conflictkb(fresh_database_url, "revoke", token[:12])
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    unknown = _conflictkb(fresh_database_url, "revoke", "ckb_nothing")
    assert unknown.returncode == 1 and "No API key" in unknown.stderr
    assert (await list_keys(fresh_database_url))[0].revoked_at is not None


def test_roles_include_the_ones_below():
    admin = ApiPrincipal(key_id=uuid.uuid4(), name="a", role="admin")
    reader = ApiPrincipal(key_id=uuid.uuid4(), name="r", role="reader")
    assert all(admin.has_role(role) for role in ("reader", "editor", "admin"))
    assert reader.has_role("reader") and not reader.has_role("editor")


# --- keys on requests ----------------------------------------------------------------


@pytest.fixture
async def tokens(fresh_database_url: str) -> dict[str, str]:
    """A key of each role, and one revoked, on a private database."""
    made = {role: (await create_key(fresh_database_url, role, f"{role} test key")).token
            for role in ("reader", "editor", "admin")}
    made["revoked"] = (await create_key(fresh_database_url, "admin", "revoked test key")).token
    await revoke_key(fresh_database_url, made["revoked"])
    return made


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Test-only routes behind the dependencies the write routes will declare (none exists
# yet). Added to the real app, so its middleware and error handlers answer as they will.
async def _editor_only(key: EditorKey) -> dict:
    return {"name": key.name, "role": key.role}


async def _admin_only(key: AdminKey) -> dict:
    return {"name": key.name, "role": key.role}


@pytest.fixture
async def api(fresh_database_url: str, redis_url: str, tokens):
    async with app_client(fresh_database_url, redis_url) as http:
        http.app.add_api_route("/test/editor-only", _editor_only, methods=["POST"])
        http.app.add_api_route("/test/admin-only", _admin_only, methods=["POST"])
        yield http


@pytest.fixture
async def closed_api(fresh_database_url: str, redis_url: str, tokens):
    """The app with CONFLICTKB_REQUIRE_KEY_FOR_READS=true."""
    settings = make_settings()
    settings.require_key_for_reads = True
    async with app_client(fresh_database_url, redis_url, settings) as http:
        yield http


def _assert_refused(response, status: int, says: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert says in response.json()["detail"], response.json()
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_the_calling_key_is_named_with_either_header(api, tokens):
    for headers in (bearer(tokens["editor"]), {"X-API-Key": tokens["editor"]},
                    {"authorization": f"bearer {tokens['editor']}"},
                    {**bearer(tokens["editor"]), "X-API-Key": tokens["editor"]}):
        response = await api.get(ME, headers=headers)
        assert response.status_code == 200, response.text
        me = TypeAdapter(CallingApiKey).validate_python(response.json())
        assert (me.name, me.role) == ("editor test key", "editor")
    assert response.headers["cache-control"] == "no-store" and "x-cache" not in response.headers
    reader = await api.get(ME, headers=bearer(tokens["reader"]))
    assert reader.json()["role"] == "reader"  # never the editor's answer, cached


async def test_no_key_a_bad_key_or_a_revoked_key_is_a_401_that_says_which(api, tokens):
    _assert_refused(await api.get(ME), 401, "This needs an API key")
    assert (await api.get(ME)).headers["www-authenticate"] == 'Bearer realm="conflictkb"'
    _assert_refused(await api.get(ME, headers=bearer("ckb_" + "x" * 43)), 401, "not valid")
    _assert_refused(await api.get(ME, headers={"X-API-Key": "not-even-a-key"}), 401, "not valid")
    revoked = await api.get(ME, headers=bearer(tokens["revoked"]))
    _assert_refused(revoked, 401, "revoked")
    assert 'error="invalid_token"' in revoked.headers["www-authenticate"]


@pytest.mark.parametrize("headers, says", [
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "uses the 'Basic' scheme"),
    ({"Authorization": "Bearer"}, "carries no key"),
    ({"Authorization": "Bearer   "}, "carries no key"),
    ({"Authorization": ""}, "is empty"),
    ({"X-API-Key": ""}, "X-API-Key header is empty"),
    ({"Authorization": "Bearer ckb_one", "X-API-Key": "ckb_two"}, "different keys"),
])
async def test_a_malformed_header_is_a_401_that_says_so(api, headers, says):
    response = await api.get(ME, headers=headers)
    _assert_refused(response, 401, says)
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


async def test_another_scheme_beside_an_x_api_key_is_left_to_the_proxy_that_set_it(api, tokens):
    response = await api.get(ME, headers={"Authorization": "Basic dXNlcjpwYXNz", "X-API-Key": tokens["reader"]})
    assert response.status_code == 200 and response.json()["role"] == "reader"


async def test_roles_are_ordered_reader_editor_admin(api, tokens):
    _assert_refused(await api.post("/test/editor-only", headers=bearer(tokens["reader"])), 403, "the editor role")
    _assert_refused(await api.post("/test/admin-only", headers=bearer(tokens["editor"])), 403, "the admin role")
    for role in ("editor", "admin"):
        response = await api.post("/test/editor-only", headers=bearer(tokens[role]))
        assert response.status_code == 200 and response.json()["role"] == role
    assert (await api.post("/test/admin-only", headers={"X-API-Key": tokens["admin"]})).status_code == 200
    _assert_refused(await api.post("/test/editor-only"), 401, "This needs an API key")


async def test_last_used_is_written_at_most_once_a_minute(api, tokens, fresh_database_url):
    async def last_used():
        [row] = await _sql(fresh_database_url, "SELECT last_used_at FROM api_keys WHERE name = 'reader test key'")
        return row.last_used_at

    assert await last_used() is None
    await api.get(ME, headers=bearer(tokens["reader"]))
    first = await last_used()
    assert first is not None
    await api.get(ME, headers=bearer(tokens["reader"]))
    assert await last_used() == first
    await _sql(fresh_database_url, "UPDATE api_keys SET last_used_at = last_used_at - interval '61 seconds'")
    await api.get(ME, headers=bearer(tokens["reader"]))
    assert await last_used() > first


async def test_reads_are_public_by_default(api):
    assert (await api.get("/v1/events", params={"limit": 1})).status_code == 200
    # a key, even a bad one, is not looked at where none is needed
    assert (await api.get("/v1/events", params={"limit": 1}, headers=bearer("ckb_bad"))).status_code == 200
    assert (await api.post("/graphql", json={"query": "{ events(first: 1) { totalCount } }"})).status_code == 200


async def test_reads_can_require_a_key_of_any_role(closed_api, tokens):
    params = {"country": "SYR", "limit": 2}
    _assert_refused(await closed_api.get("/v1/events", params=params), 401, "This needs an API key")
    for _ in range(2):  # the second is a cache hit: the key is checked in front of the cache
        response = await closed_api.get("/v1/events", params=params, headers=bearer(tokens["reader"]))
        assert response.status_code == 200 and len(response.json()["data"]) == 2
    assert response.headers["x-cache"] == "hit"
    _assert_refused(await closed_api.get("/v1/events", params=params), 401, "This needs an API key")
    _assert_refused(await closed_api.get("/v1/events", params=params, headers=bearer(tokens["revoked"])), 401,
                    "revoked")
    _assert_refused(await closed_api.get("/v1/events.csv", params=params), 401, "This needs an API key")
    assert (await closed_api.head("/v1/events", params=params)).status_code == 401
    assert (await closed_api.get(ME, headers={"X-API-Key": tokens["editor"]})).json()["role"] == "editor"
    for open_path in ("/healthz", "/readyz", "/openapi.json"):
        assert (await closed_api.get(open_path)).status_code == 200, open_path


async def test_graphql_reads_can_require_a_key_but_graphiql_loads(closed_api, tokens):
    query = {"query": "{ events(first: 1) { totalCount } }"}
    _assert_refused(await closed_api.post("/graphql", json=query), 401, "This needs an API key")
    _assert_refused(await closed_api.get("/graphql", params=query), 401, "This needs an API key")
    answer = await closed_api.post("/graphql", json=query, headers=bearer(tokens["reader"]))
    assert answer.status_code == 200 and answer.json()["data"]["events"]["totalCount"] > 0
    page = await closed_api.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


async def test_a_websocket_without_a_key_is_closed_when_reads_need_one(closed_api):
    sent = await websocket_handshake(closed_api.app, [])
    assert [(m["type"], m["code"]) for m in sent] == [("websocket.close", 1008)]


async def test_an_unreachable_database_while_checking_a_key_is_a_503(redis_url):
    settings = make_settings()
    settings.require_key_for_reads = True
    async with app_client("postgresql://nobody@127.0.0.1:1/none", redis_url, settings) as http:
        response = await http.get("/v1/events", headers=bearer("ckb_" + "x" * 43))
    assert response.status_code == 503 and response.headers["retry-after"] == "5"


# --- GraphQL: the context's principal, for mutations ------------------------------------


@strawberry.type
class _Mutation:
    @strawberry.mutation
    async def editors_only(self, info: strawberry.Info) -> str:
        return (await info.context.principal("editor")).name


_SCHEMA = Schema(query=Query, mutation=_Mutation, extensions=[ErrorCodes])


async def _mutate(app, headers: dict[str, str]) -> dict:
    request = Request({"type": "http", "method": "POST", "path": "/graphql", "query_string": b"", "app": app,
                       "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]})
    context = GraphQLContext(None, None, None, authenticate=lambda: request_principal(request))
    result = await _SCHEMA.execute("mutation { editorsOnly }", context_value=context)
    return {"data": result.data, "errors": [{"message": e.message, **e.extensions} for e in result.errors or []]}


async def test_a_mutation_asks_its_context_for_the_key_and_gets_typed_errors(api, tokens):
    assert (await _mutate(api.app, bearer(tokens["editor"])))["data"] == {"editorsOnly": "editor test key"}
    assert (await _mutate(api.app, {"X-API-Key": tokens["admin"]}))["data"] == {"editorsOnly": "admin test key"}
    [missing] = (await _mutate(api.app, {}))["errors"]
    assert missing["code"] == "UNAUTHENTICATED" and "needs an API key" in missing["message"]
    [revoked] = (await _mutate(api.app, bearer(tokens["revoked"])))["errors"]
    assert revoked["code"] == "UNAUTHENTICATED" and "revoked" in revoked["message"]
    [reader] = (await _mutate(api.app, bearer(tokens["reader"])))["errors"]
    assert reader == {"code": "FORBIDDEN", "requiredRole": "editor", "message": reader["message"]}
    assert "editor role" in reader["message"]
