"""Keyset pagination with opaque, signed cursors, shared by every list.

A cursor is the sort key of the last row of a page, so the next page is an index
range scan from there: page 1000 costs what page 1 costs, and rows added meanwhile
never shift a page. It is signed (HMAC) so a client cannot forge positions, and it
names its sort so it cannot be replayed under another order.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Select, tuple_


class CursorError(ValueError):
    """A cursor that was not made by this server, was altered, or belongs to another sort."""


@dataclass(frozen=True)
class Sort:
    """A sort order of one list (`scope`): its public name and key columns, all
    ascending or all descending. Constants in key expressions must be SQL literals, not
    bound parameters, or the expression indexes that serve them are not used."""

    name: str
    columns: tuple[ColumnElement, ...]
    decoders: tuple[Callable[[Any], Any], ...]
    descending: bool
    scope: str
    variant: str = ""  # what the key depends on beyond the row: a text query, a point

    @property
    def key(self) -> str:
        """What a cursor is valid for: this order of this list (and of this query or point)."""
        return f"{self.scope}:{self.name}:{self.variant}" if self.variant else f"{self.scope}:{self.name}"

    def apply(self, stmt: Select, after: Sequence[Any] | None) -> Select:
        if after is not None:
            key = tuple_(*self.columns)
            stmt = stmt.where(key < tuple_(*after) if self.descending else key > tuple_(*after))
        return stmt.order_by(*(c.desc() if self.descending else c.asc() for c in self.columns))


def _encode_value(value: Any) -> Any:
    if isinstance(value, (dt.date, UUID)):
        return str(value)
    return value


def decode_date(value: Any) -> dt.date:
    return dt.date.fromisoformat(value)


class CursorCodec:
    def __init__(self, key: bytes):
        self._key = key

    def _sign(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, payload, hashlib.sha256).digest()[:16]).decode().rstrip("=")

    def encode(self, sort: Sort, values: Sequence[Any]) -> str:
        payload = json.dumps([sort.key, [_encode_value(v) for v in values]], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._sign(payload)

    def decode(self, token: str, sort: Sort) -> list[Any]:
        try:
            body, signature = token.split(".")
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError as exc:
            raise CursorError("cursor is malformed") from exc
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            raise CursorError("cursor is not valid (altered, or from another server)")
        key, values = json.loads(payload)
        if key != sort.key:
            raise CursorError(f"cursor belongs to another list or sort ({key}), not {sort.key}")
        try:
            return [decode(v) for decode, v in zip(sort.decoders, values, strict=True)]
        except (TypeError, ValueError) as exc:
            raise CursorError("cursor is malformed") from exc


@dataclass(frozen=True)
class PageRequest:
    """What a client asks of a list: how many, after which cursor, and the total?"""

    limit: int = 50
    cursor: str | None = None
    count: bool = False


@dataclass
class Page:
    """One page of a list: its rows (JSON trees), each row's sort key, more to come?
    Cursors are signed only when asked for (REST wants one, GraphQL one per edge)."""

    rows: list[Any]
    keys: list[Sequence[Any]]
    has_next: bool
    sort: Sort
    codec: CursorCodec
    total: int | None = None

    @property
    def cursors(self) -> list[str]:
        return [self.codec.encode(self.sort, key) for key in self.keys]

    def cursor_at(self, index: int) -> str:
        return self.codec.encode(self.sort, self.keys[index])

    @property
    def next_cursor(self) -> str | None:
        return self.codec.encode(self.sort, self.keys[-1]) if self.has_next and self.keys else None
