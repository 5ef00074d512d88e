"""API keys (table `api_keys`, migration 0012): made, listed, revoked, and found by the
token a request carries.

A token is `ckb_` and 32 random bytes in URL-safe base64, shown once when it is made;
only its SHA-256 is stored. The `ckb_` makes a leaked token recognisable (secret
scanners, logs) and its first characters, kept as `prefix`, tell keys apart in
`conflictkb apikey list` without revealing them.

Roles are ordered: a reader may read (when reads need a key at all), an editor also
write, an admin also administer; each role includes the ones before it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal, get_args
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

Role = Literal["reader", "editor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)  # lowest first

TOKEN_PREFIX = "ckb_"
# `ckb_` and 8 random characters (48 bits): two keys sharing one are a 1 in 10^14 event.
PREFIX_LENGTH = len(TOKEN_PREFIX) + 8
# secrets.token_urlsafe(32) is 43 characters; anything much longer is no token of ours
# and is refused before it is hashed.
MAX_TOKEN_LENGTH = 100


@dataclass(frozen=True)
class ApiPrincipal:
    """Who a request speaks for: the key it carries."""

    key_id: UUID
    name: str
    role: Role
    rate_limit: int | None = None  # units per rate-limit window; None: the role's quota

    def has_role(self, needed: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(needed)

    def require(self, needed: Role) -> ApiPrincipal:
        if not self.has_role(needed):
            raise ApiRoleTooLow(needed, self)
        return self


class ApiKeyRefused(Exception):
    """The request carries no usable key (none, a malformed header, an unknown or
    revoked key): 401 in REST, UNAUTHENTICATED in GraphQL. `detail` says which."""

    def __init__(self, detail: str, *, missing: bool = False, malformed: bool = False):
        super().__init__(detail)
        self.detail = detail
        self.missing = missing
        self.malformed = malformed


class ApiRoleTooLow(Exception):
    """A valid key whose role is below the one needed: 403 in REST, FORBIDDEN in GraphQL."""

    def __init__(self, needed: Role, principal: ApiPrincipal):
        self.needed = needed
        self.principal = principal
        self.detail = (f"This needs an API key with the {needed} role or higher; "
                       f"the key {principal.name!r} has the {principal.role} role.")
        super().__init__(self.detail)


@dataclass(frozen=True)
class ApiKey:
    """A key as `apikey list` shows it: never its token or hash."""

    id: UUID
    name: str
    role: Role
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None
    rate_limit: int | None  # units per rate-limit window; None: the role's quota


@dataclass(frozen=True)
class NewApiKey:
    key: ApiKey
    token: str  # shown once: nothing can show it again


class ApiKeyRefError(LookupError):
    """An id, prefix or token that names no key, or a prefix that names several."""


def token_sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


_KEY_COLUMNS = "id, name, role, prefix, created_at, last_used_at, revoked_at, rate_limit"

_INSERT = text(f"""
INSERT INTO api_keys (name, role, key_sha256, prefix, rate_limit)
VALUES (:name, :role, :key_sha256, :prefix, :rate_limit)
RETURNING {_KEY_COLUMNS}""")


def _checked_rate_limit(rate_limit: int | None) -> int | None:
    if rate_limit is not None and rate_limit < 1:
        raise ValueError(f"a rate limit is a number of units of at least 1, not {rate_limit}")
    return rate_limit


async def create_api_key(conn: AsyncConnection, role: Role, name: str, rate_limit: int | None = None) -> NewApiKey:
    """A new key; `rate_limit`: its own units per rate-limit window (None: its role's quota)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = (await conn.execute(_INSERT, {"name": name, "role": role, "key_sha256": token_sha256(token),
                                        "prefix": token[:PREFIX_LENGTH],
                                        "rate_limit": _checked_rate_limit(rate_limit)})).one()
    return NewApiKey(ApiKey(*row), token)


async def list_api_keys(conn: AsyncConnection) -> list[ApiKey]:
    """Every key, revoked ones too (the history names them), oldest first."""
    rows = await conn.execute(text(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"))
    return [ApiKey(*row) for row in rows]


_FIND_BY_REF = text(f"""
SELECT {_KEY_COLUMNS} FROM api_keys
WHERE id = CAST(:id AS uuid) OR prefix = :ref OR key_sha256 = :key_sha256
ORDER BY created_at, id""")

# coalesce: of two revocations at once, the first one's date stays.
_REVOKE = text(f"""
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = :id RETURNING {_KEY_COLUMNS}""")


async def _key_named(conn: AsyncConnection, ref: str, doing: str) -> ApiKey:
    """The one key `ref` names: its id, its prefix as `apikey list` shows it, or the
    whole token. A prefix two keys share names neither (ApiKeyRefError says so)."""
    try:
        key_id = str(UUID(ref))
    except ValueError:
        key_id = None
    found = [ApiKey(*row) for row in await conn.execute(
        _FIND_BY_REF, {"id": key_id, "ref": ref, "key_sha256": token_sha256(ref)})]
    if not found:
        raise ApiKeyRefError(f"No API key has the id, prefix or token {ref!r} (`conflictkb apikey list`).")
    if len(found) > 1:
        raise ApiKeyRefError(f"{len(found)} API keys have the prefix {ref!r}; {doing} one by its id: "
                             + ", ".join(str(key.id) for key in found))
    return found[0]


async def revoke_api_key(conn: AsyncConnection, ref: str) -> tuple[ApiKey, bool]:
    """Revoke the key `ref` names (see _key_named). The key, and whether this revoked it
    (False: it already was)."""
    found = await _key_named(conn, ref, "revoke")
    if found.revoked_at is not None:
        return found, False
    return ApiKey(*(await conn.execute(_REVOKE, {"id": found.id})).one()), True


_SET_RATE_LIMIT = text(f"UPDATE api_keys SET rate_limit = :rate_limit WHERE id = :id RETURNING {_KEY_COLUMNS}")


async def set_api_key_rate_limit(conn: AsyncConnection, ref: str, rate_limit: int | None) -> ApiKey:
    """Give the key `ref` names (see _key_named) a rate limit of its own, in units per
    window, or (None) its role's quota again. It applies from the key's next request on
    (the limiter reads it with the key), against what the key has spent in the window."""
    found = await _key_named(conn, ref, "set the limit of")
    return ApiKey(*(await conn.execute(_SET_RATE_LIMIT, {"id": found.id,
                                                         "rate_limit": _checked_rate_limit(rate_limit)})).one())


# By the unique index on the hash, not with hmac.compare_digest over candidates: how
# long the index takes can only tell an attacker about the hashes of tokens they chose,
# and a hash, even known whole, gives no way back to a 256-bit random token (SHA-256
# is preimage resistant). Comparing in constant time protects secrets an attacker can
# approach a character at a time, which a hashed random token is not.
_PRINCIPAL = text("""
SELECT id, name, role, rate_limit, last_used_at IS NULL OR last_used_at < now() - interval '1 minute' AS touch
FROM api_keys WHERE key_sha256 = :key_sha256 AND revoked_at IS NULL""")

# At most once a minute per key: a write per request would queue requests with one key
# on its row's lock and fill the table with dead row versions. The condition again
# here, so requests that raced past the read write once.
_TOUCH = text("""
UPDATE api_keys SET last_used_at = now()
WHERE id = :id AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')""")


async def principal_for_token(conn: AsyncConnection, token: str) -> ApiPrincipal | None:
    """The key `token` is, unless it is unknown or revoked; marks it used. The caller
    commits (the mark is the only write, and only once a minute)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        return None
    row = (await conn.execute(_PRINCIPAL, {"key_sha256": token_sha256(token)})).one_or_none()
    if row is None:
        return None
    if row.touch:
        await conn.execute(_TOUCH, {"id": row.id})
    return ApiPrincipal(row.id, row.name, row.role, row.rate_limit)
