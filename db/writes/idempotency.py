"""Idempotency-Key on POST: a repeat gets the first answer and creates nothing.

The key is reserved inside the write's own transaction, before the write: a second
request with the same key waits on the first's uncommitted row, then finds the stored
answer (or, if the first failed and rolled back, the key free again). So a repeat never
writes twice, even when both arrive at once. Keys are per API key and kept a day.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.writes import WriteError

KEPT_FOR = "24 hours"


class IdempotencyKeyReused(WriteError):
    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was used for a different request; use a new key for a new request.")


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    location: str | None
    body: bytes


async def reserve_or_replay(conn: AsyncConnection, api_key_id: UUID, key: str, request_sha256: bytes
                            ) -> StoredAnswer | None:
    """None: the key is this request's now, go on and `remember` the answer. Else the
    answer of the request that used it first (which must have been the same request)."""
    params = {"api_key": api_key_id, "key": key, "sha": request_sha256}
    await conn.execute(text(f"DELETE FROM idempotent_requests WHERE api_key_id = :api_key "
                            f"AND created_at < now() - interval '{KEPT_FOR}'"), params)
    reserved = await conn.scalar(text("""
        INSERT INTO idempotent_requests (api_key_id, key, request_sha256) VALUES (:api_key, :key, :sha)
        ON CONFLICT DO NOTHING RETURNING true"""), params)
    if reserved:
        return None
    row = (await conn.execute(text("""
        SELECT request_sha256, status, location, body FROM idempotent_requests
         WHERE api_key_id = :api_key AND key = :key"""), params)).one()
    if row.request_sha256 != request_sha256:
        raise IdempotencyKeyReused()
    return StoredAnswer(row.status, row.location, row.body)


async def remember(conn: AsyncConnection, api_key_id: UUID, key: str, answer: StoredAnswer) -> None:
    await conn.execute(text("""
        UPDATE idempotent_requests SET status = :status, location = :location, body = :body
         WHERE api_key_id = :api_key AND key = :key"""),
        {"api_key": api_key_id, "key": key, "status": answer.status, "location": answer.location,
         "body": answer.body})
