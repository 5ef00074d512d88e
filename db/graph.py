"""The record types as SQL: each field of each type with the expression that reads it,
so that PostgreSQL can build a whole answer with exactly the fields a client selected.

The GraphQL planner (schema/planner.py) turns a query's selection into a `Selection`
and asks for the records' JSON here, in one statement per page whatever its depth:
a page of 100 events with their place, actors and claims is one statement, not some
2,000 fields completed in Python. The GraphQL types (schema/types.py) are checked
against these declarations field by field (tests/test_graphql_planner.py), and the
answers of both paths against each other.

A field's expression is written over `{t}`, the alias of the row it belongs to; a
related record's source (`FROM ... WHERE ...`) names that record `{r}` (and helper
rows `{r}_x`). Each nesting level gets an alias of its own, so sources never clash.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Union
from uuid import UUID

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class Value:
    """A scalar, or a list of scalars, read from the row. `kind`: "enum" for a value
    shown by its GraphQL name (upper case), "datetime" for a timestamp written as
    Python writes it (ISO 8601, microseconds only when there are some)."""
    sql: str
    kind: str = "plain"


@dataclass(frozen=True)
class One:
    """One related record, or null: the row of `table` whose id is the row's `column`.
    It is outer joined to the row's own FROM (a join is a third cheaper for PostgreSQL
    than a subquery per row: 28 claims, each with its claimant, document and source)."""
    type: str
    table: str
    column: str


@dataclass(frozen=True)
class Many:
    """Related records, `FROM source WHERE where ORDER BY order` (an empty list when
    there are none)."""
    type: str
    source: str
    where: str
    order: str


@dataclass(frozen=True)
class Part:
    """An object made of the same row's columns (an event's fatalities, a claim's
    value); null unless `present` (a condition over `{t}`) holds, when given."""
    type: str
    present: str | None = None


FieldSpec = Union[Value, One, Many, Part]


@dataclass(frozen=True)
class RecordType:
    """A type's fields by their Python (snake_case) names; `table` for a type whose
    records are rows of their own (the roots of a page)."""
    name: str
    fields: dict[str, FieldSpec]
    table: str | None = None


# A request's selection, transport-neutral: for each key of the answer object (an
# alias or the field's name), the field and what is selected under it (None for a
# scalar). The field `__typename` gives the type's name.
Selection = tuple[tuple[str, str, "Selection | None"], ...]
TYPENAME = "__typename"

# A timestamp as Python's isoformat() writes it (the resolvers' path shows what
# PostgreSQL's JSON gives, through Python's datetime).
_ISO_DATETIME = ("(to_char({sql}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN to_char({sql}, 'US') <> '000000' "
                 "THEN to_char({sql}, '.US') ELSE '' END || to_char({sql}, 'TZH:TZM'))")

_ACTOR_ORDER = "array_position(ARRAY['perpetrator', 'target', 'participant'], {r}.role), {r}_a.name"


def _external_ids(table: str, owner: str) -> Many:
    return Many("ExternalId", f"{table} {{r}}", f"{{r}}.{owner} = {{t}}.id", "{r}.dataset, {r}.external_id")


def _aliases(table: str, owner: str) -> Value:
    return Value(f"coalesce((SELECT json_agg(DISTINCT n.name) FROM {table} n "
                 f"WHERE n.{owner} = {{t}}.id AND n.name <> {{t}}.name), '[]'::json)")


def _actor(column: str) -> One:
    return One("Actor", "actors", column)


def _place(column: str) -> One:
    return One("Place", "places", column)


def _spans(side: str, other: str) -> Many:
    """An actor's memberships (`side` member_id: the groups it is in) or members (`side`
    group_id), as REST's actor tree orders them."""
    return Many(other, "actor_memberships {r}", f"{{r}}.{side} = {{t}}.id", "{r}.valid_from NULLS FIRST, {r}.id")


# When a record was created and last changed (written by the API's writes and imports).
_DATES = {"created_at": Value("{t}.created_at", "datetime"), "updated_at": Value("{t}.updated_at", "datetime")}


def _place_coordinate(axis: str) -> Value:
    """An event's coordinate, else its place's."""
    return Value(f"coalesce({{t}}.{axis}, (SELECT pc.{axis} FROM places pc WHERE pc.id = {{t}}.place_id))")


TYPES: dict[str, RecordType] = {t.name: t for t in (
    RecordType("ExternalId", {"dataset": Value("{t}.dataset"), "id": Value("{t}.external_id")}),
    RecordType("Actor", table="actors", fields={
        "id": Value("{t}.id"),
        "name": Value("{t}.name"),
        "kind": Value("{t}.kind"),
        "description": Value("{t}.description"),
        "aliases": _aliases("actor_names", "actor_id"),
        "parent": _actor("parent_id"),
        "memberships": _spans("member_id", "Membership"),
        "members": _spans("group_id", "Member"),
        "external_ids": _external_ids("actor_external_ids", "actor_id"),
        **_DATES,
    }),
    RecordType("Membership", {
        "group": _actor("group_id"),
        "relation": Value("{t}.relation"),
        "valid_from": Value("{t}.valid_from"),
        "valid_to": Value("{t}.valid_to"),
    }),
    RecordType("Member", {
        "member": _actor("member_id"),
        "relation": Value("{t}.relation"),
        "valid_from": Value("{t}.valid_from"),
        "valid_to": Value("{t}.valid_to"),
    }),
    RecordType("Place", table="places", fields={
        "id": Value("{t}.id"),
        "name": Value("{t}.name"),
        "kind": Value("{t}.kind"),
        "iso2": Value("{t}.iso2"),
        "iso3": Value("{t}.iso3"),
        "latitude": Value("{t}.latitude"),
        "longitude": Value("{t}.longitude"),
        "ancestors": Many("Place", "place_lineage {r}_l JOIN places {r} ON {r}.id = {r}_l.ancestor_id",
                          "{r}_l.descendant_id = {t}.id AND {r}_l.depth > 0", "{r}_l.depth DESC"),
        "parent": _place("parent_id"),
        "aliases": _aliases("place_names", "place_id"),
        "external_ids": _external_ids("place_external_ids", "place_id"),
        **_DATES,
    }),
    RecordType("Document", table="documents", fields={
        "id": Value("{t}.id"),
        "title": Value("{t}.title"),
        "publisher": Value("{t}.publisher"),
        "url": Value("{t}.url"),
        "published_at": Value("{t}.published_at"),
        "language": Value("{t}.language"),
        "excerpt": Value("{t}.excerpt"),
        "claim_count": Value("(SELECT count(*) FROM claims dc WHERE dc.document_id = {t}.id)"),
        **_DATES,
    }),
    RecordType("ClaimValue", {
        "low": Value("{t}.value_low"),
        "best": Value("{t}.value_best"),
        "high": Value("{t}.value_high"),
        "actor": _actor("value_actor_id"),
        "place": _place("value_place_id"),
        "date": Value("{t}.value_date"),
        "text": Value("{t}.value_text"),
    }),
    RecordType("Claim", table="claims", fields={
        "id": Value("{t}.id"),
        "event_id": Value("{t}.event_id"),
        "claimant": _actor("claimant_id"),
        "via": _actor("via_id"),
        "speaker": Value("{t}.speaker"),
        "document": One("Document", "documents", "document_id"),
        "predicate": Value("{t}.predicate"),
        "stance": Value("{t}.stance", "enum"),
        "value": Part("ClaimValue", present="num_nonnulls({t}.value_low, {t}.value_best, {t}.value_high, "
                                            "{t}.value_actor_id, {t}.value_place_id, {t}.value_date, "
                                            "{t}.value_text) > 0"),
        "quote": Value("{t}.quote"),
        **_DATES,
    }),
    RecordType("Fatalities", {
        "low": Value("{t}.fatalities_low"),
        "best": Value("{t}.fatalities_best"),
        "high": Value("{t}.fatalities_high"),
        "civilians": Value("{t}.civilian_fatalities_best"),
        "civilians_low": Value("{t}.civilian_fatalities_low"),
        "civilians_high": Value("{t}.civilian_fatalities_high"),
        "claim_ids": Value("to_json({t}.fatality_claim_ids)"),
    }),
    RecordType("EventActor", {
        "role": Value("{t}.role", "enum"),
        "status": Value("{t}.status", "enum"),
        "status_claim_ids": Value("to_json({t}.status_claim_ids)"),
        "actor": _actor("actor_id"),
    }),
    # The happening an event is a record of, as an event's list shows it (db/linking.py):
    # its id, or the event's own when it is linked to none, and how many records it has.
    RecordType("Happening", {
        "id": Value("coalesce((SELECT hm.happening_id FROM happening_members hm WHERE hm.event_id = {t}.id), {t}.id)"),
        "record_count": Value("coalesce((SELECT count(*) FROM happening_members hm JOIN happening_members hr "
                              "ON hr.happening_id = hm.happening_id WHERE hm.event_id = {t}.id "
                              "GROUP BY hm.happening_id), 1)"),
    }),
    RecordType("Event", table="events", fields={
        "id": Value("{t}.id"),
        "event_type": Value("{t}.event_type"),
        "sub_event_type": Value("{t}.sub_event_type"),
        "type_of_violence": Value("{t}.type_of_violence"),
        "date_start": Value("{t}.date_start"),
        "date_end": Value("{t}.date_end"),
        "date_precision": Value("{t}.date_precision"),
        "place": _place("place_id"),
        "latitude": _place_coordinate("latitude"),
        "longitude": _place_coordinate("longitude"),
        "geo_precision": Value("{t}.geo_precision"),
        "fatalities": Part("Fatalities"),
        "summary": Value("{t}.summary"),
        "actors": Many("EventActor", "event_actors {r} LEFT JOIN actors {r}_a ON {r}_a.id = {r}.actor_id",
                       "{r}.event_id = {t}.id", _ACTOR_ORDER),
        # a page's own figure (the distance from `near`): filled in by the caller
        "distance_km": Value("NULL"),
        "claim_count": Value("(SELECT count(*) FROM claims ec WHERE ec.event_id = {t}.id)"),
        "external_ids": _external_ids("event_external_ids", "event_id"),
        "happening": Part("Happening"),
        "claims": Many("Claim", "claims {r}", "{r}.event_id = {t}.id", "{r}.predicate, {r}.created_at, {r}.id"),
        **_DATES,
    }),
)}

# json_build_object takes at most 100 arguments: a wider selection is built in parts
# joined with ||, as jsonb would reorder the keys.
_PAIRS_PER_CALL = 50


class NotDeclared(LookupError):
    """A field (or type) this module has no expression for: the caller answers it
    another way."""


def _value(spec: Value, row: str) -> str:
    sql = spec.sql.format(t=row)
    if spec.kind == "enum":
        return f"upper({sql})"
    if spec.kind == "datetime":
        return _ISO_DATETIME.format(sql=sql)
    return sql


def _object(type_name: str, selection: Selection, row: str, scope: _Scope) -> str:
    """The JSON object of the record `row` with the selected keys, in order; the rows
    it joins go into `scope`."""
    record = TYPES.get(type_name)
    if record is None:
        raise NotDeclared(type_name)
    pairs = []
    for key, name, under in selection:
        if name == TYPENAME:
            expression = f"'{type_name}'::text"
        else:
            spec = record.fields.get(name)
            if spec is None:
                raise NotDeclared(f"{type_name}.{name}")
            expression = _field(spec, under, row, scope)
        pairs.append(f"'{key}', {expression}")  # keys are GraphQL names: [_A-Za-z][_0-9A-Za-z]*
    if not pairs:
        return "'{}'::json"
    calls = [f"json_build_object({', '.join(pairs[i:i + _PAIRS_PER_CALL])})"
             for i in range(0, len(pairs), _PAIRS_PER_CALL)]
    if len(calls) == 1:
        return calls[0]
    # '{"a":1}' || '{"b":2}' without the braces in between
    joined = " || ', ' || ".join(f"trim(both '{{}}' from {call}::text)" for call in calls)
    return f"('{{' || {joined} || '}}')::json"


@dataclass
class _Scope:
    """One FROM clause being built: the aliases handed out so far (shared by the whole
    statement, so none is used twice) and the outer joins of this FROM."""
    aliases: Iterator[str]
    joins: list[str]

    def inner(self) -> _Scope:
        return _Scope(self.aliases, [])


def _field(spec: FieldSpec, under: Selection | None, row: str, scope: _Scope) -> str:
    if isinstance(spec, Value):
        return _value(spec, row)
    if under is None:
        raise NotDeclared("an object field without a selection")
    if isinstance(spec, Part):
        built = _object(spec.type, under, row, scope)
        return f"CASE WHEN {spec.present.format(t=row)} THEN {built} END" if spec.present else built
    joined = next(scope.aliases)
    if isinstance(spec, One):
        scope.joins.append(f"LEFT JOIN {spec.table} {joined} ON {joined}.id = {row}.{spec.column}")
        return f"CASE WHEN {joined}.id IS NOT NULL THEN {_object(spec.type, under, joined, scope)} END"
    inner = scope.inner()
    built = _object(spec.type, under, joined, inner)
    return (f"coalesce((SELECT json_agg({built} ORDER BY {spec.order.format(r=joined)}) "
            f"FROM {spec.source.format(r=joined)} {' '.join(inner.joins)} "
            f"WHERE {spec.where.format(t=row, r=joined)}), '[]'::json)")


@functools.lru_cache(maxsize=512)
def _record_json(type_name: str, selection: Selection) -> tuple[str, str, str]:
    """A record's table, its JSON expression over `r0` and the joins it needs."""
    record = TYPES.get(type_name)
    if record is None or record.table is None:
        raise NotDeclared(type_name)
    scope = _Scope((f"r{i}" for i in itertools.count(1)), [])
    built = _object(type_name, selection, "r0", scope)
    return record.table, built, " ".join(scope.joins)


@functools.lru_cache(maxsize=512)
def records_sql(type_name: str, selection: Selection) -> str:
    """The statement giving, for the records $1 (a JSON array of ids) of a type, each
    one's position in $1 and its JSON text with exactly `selection` (an unknown id gives
    no row). Made once per type and selection shape."""
    table, built, joins = _record_json(type_name, selection)
    # The ids come as a JSON array, not a uuid[]: PostgreSQL estimates a uuid[]'s
    # length from its value, so each call got a plan of its own (0.9 ms of planning
    # for an event with its claims, twice the statement's run); a JSON array's is a
    # constant, and after five calls the statement keeps one generic plan.
    return f"""
SELECT page.ord, {built}::text
  FROM jsonb_array_elements_text($1::text::jsonb) WITH ORDINALITY AS page(id, ord)
  JOIN {table} r0 ON r0.id = page.id::uuid {joins}"""


def with_records(type_name: str, selection: Selection, page_sql: str) -> str:
    """A page's statement (its first column the records' ids) extended with each row's
    record JSON as its last column, in the page's order: the page and its records in one
    round trip. The page's own columns come first, then its position (`page_ord`)."""
    table, built, joins = _record_json(type_name, selection)
    return f"""
SELECT page.*, {built}::text
  FROM (SELECT p.*, row_number() OVER () AS page_ord FROM ({page_sql}) AS p) AS page
  JOIN {table} r0 ON r0.id = page.id {joins}
 ORDER BY page.page_ord"""


async def records(conn: AsyncConnection, type_name: str, selection: Selection,
                  ids: list[UUID]) -> list[str | None]:
    """The records `ids` of a type as `selection` shapes them, as JSON text (to go into
    the answer as it is), in the order of the ids: None for an id that names no record.
    On the connection's asyncpg connection itself: SQLAlchemy adds nothing to a
    statement of one parameter and text rows but its time (~0.1 ms a call)."""
    found: list[str | None] = [None] * len(ids)
    if ids:
        driver = (await conn.get_raw_connection()).driver_connection
        for position, record in await driver.fetch(records_sql(type_name, selection),
                                                   orjson.dumps([str(i) for i in ids]).decode()):
            found[position - 1] = record
    return found
