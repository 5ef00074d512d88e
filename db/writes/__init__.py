"""Writes to the knowledge base: editors' creates, patches and deletes (issue 6).

Each write runs in one transaction the caller opens with `writing(engine, who)`:
everything it does commits together or not at all. The database records every row
version and the change feed itself (migration 0013) and moves the data generation
(migration 0005), so a write needs nothing else to be in the history, the feed and
the cache's invalidation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.replicas import note_commit
from db.api_keys import ApiPrincipal
from db.engine import allow_long_statements


@dataclass(frozen=True)
class FieldError:
    name: str  # dotted path in the body: `place.kind`, `value.low`
    reason: str
    where: str = "body"  # or "path": a REST path parameter (the other event of a link)


class WriteError(Exception):
    """A write refused; nothing of it was written."""


class InvalidInput(WriteError):
    """The input names things that are not there or do not fit together; `errors`
    names every bad field."""

    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.name}: {e.reason}" for e in errors))
        self.errors = errors


class RecordNotFound(WriteError):
    def __init__(self, record_type: str, ref: str):
        super().__init__(f"No {record_type} with id {ref!r}.")
        self.record_type, self.ref = record_type, ref


class RecordGone(WriteError):
    """The record was deleted (or merged into another); `tombstone` says when."""

    def __init__(self, tombstone: dict):
        super().__init__(f"The {tombstone['type']} {tombstone['id']} was deleted.")
        self.tombstone = tombstone


class StaleRecord(WriteError):
    """If-Match named another version than the record's current one."""

    def __init__(self, current_etag: str):
        super().__init__(f"The record has changed since that version; its current ETag is {current_etag}.")
        self.current_etag = current_etag


class StillReferenced(WriteError):
    def __init__(self, detail: str):
        super().__init__(detail)


@dataclass
class Checks:
    """Collects every problem of an input before refusing it, so one answer names them all."""

    errors: list[FieldError] = field(default_factory=list)

    def fail(self, name: str, reason: str) -> None:
        self.errors.append(FieldError(name, reason))

    def raise_any(self) -> None:
        if self.errors:
            raise InvalidInput(self.errors)


def who(principal: ApiPrincipal) -> str:
    """How the history names the writer (REST and GraphQL alike)."""
    return f"{principal.name} (API key {principal.key_id}, {principal.role})"


@asynccontextmanager
async def writing(engine: AsyncEngine, who: str) -> AsyncIterator[AsyncConnection]:
    """One write transaction on a connection of its own (see writing_on)."""
    async with engine.connect() as conn:
        async with writing_on(conn, who):
            yield conn
        await note_commit(conn)  # (the answer's consistency token)


@asynccontextmanager
async def writing_on(conn: AsyncConnection, who: str) -> AsyncIterator[AsyncConnection]:
    """One write transaction on `conn` (which has none open); `who` (an API key's name
    and id) goes into the history.

    It moves the data generation first (migration 0005 would at its first row), so it
    holds the generation's row lock before any record's: a write that locked a record
    (If-Match) and then waited for the generation could deadlock with one holding the
    generation and waiting for that record (a new claim checking its event)."""
    async with conn.begin():
        await start_writing(conn, who)
        yield conn


async def start_writing(conn: AsyncConnection, who: str) -> None:
    """The start of every write transaction (see writing_on), in `conn`'s open one."""
    # The long statement budget first: the read budget of the API's connections
    # (db/engine.py) must cut short neither the wait for the generation's lock nor the write.
    await allow_long_statements(conn)
    await conn.execute(text("SELECT take_generation(), set_config('conflictkb.actor', :who, true)"), {"who": who})
