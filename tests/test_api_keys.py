"""API keys: made, listed and revoked from the command line, stored only as hashes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from api.apikey_command import create_key, list_keys, revoke_key
from db.api_keys import ApiKeyRefError, ApiPrincipal
from db.engine import make_engine

CONFLICTKB = Path(sys.executable).parent / "conflictkb"


async def _sql(database_url: str, statement: str, **params) -> list:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        await engine.dispose()


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
    assert set(vars(listed[0])) == {"id", "name", "role", "prefix", "created_at", "last_used_at", "revoked_at"}


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
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CONFLICTKB_DATA_DIR")}
    env["DATABASE_URL"] = database_url
    return subprocess.run([str(CONFLICTKB), "apikey", *args], env=env, capture_output=True, text=True, timeout=120)


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
