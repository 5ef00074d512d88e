"""Creates, patches and deletes of events, claims, actors, places and documents.

Every function runs in the caller's transaction (db.writes.writing) and either does
all it was asked or raises a WriteError having written nothing the transaction will
keep. Input shapes are checked by db/writes/inputs.py; here, what needs the
knowledge base: that what a write names exists (and is one thing), that a type pair is
in the taxonomy, that a place sits under a coarser one.

A claim change re-derives its event (db/derive.py: fatalities, attribution) in the same
transaction; an event change re-derives its search text and its matches with other
sources' events (db/linking.py).
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import Table, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models as m
from db.derive import drop_unclaimed_role, recompute_events
from db.etags import body_etag, etag_matches
from db.linking import match_events, relink
from db.names import name_variants, normalize_name, with_article
from db.queries.actors import actor_trees
from db.queries.claims import claim_trees
from db.queries.documents import document_trees
from db.queries.common import parse_uuid
from db.queries.events import event_id_of, event_trees, resolve_event_id
from db.queries.history import TABLE_OF_TYPE, tombstone
from db.queries.places import place_trees
from db.writes import Checks, RecordGone, RecordNotFound, StaleRecord, StillReferenced
from db.writes.inputs import (
    ActorInput,
    ClaimInput,
    DocumentInput,
    EventInput,
    Figures,
    PlaceInput,
)

_EVENTS_NAMING_ACTOR = """
SELECT event_id FROM claims WHERE :actor IN (claimant_id, via_id, value_actor_id)
UNION SELECT event_id FROM event_actors WHERE actor_id = :actor"""
_EVENTS_INSIDE_PLACE = """
SELECT e.id FROM events e JOIN place_lineage l ON l.descendant_id = e.place_id WHERE l.ancestor_id = :place"""

RECORD_TREES = {"event": event_trees, "claim": claim_trees, "actor": actor_trees, "place": place_trees,
                "document": document_trees}

# The geo precision an event without coordinates of its own gets from its place's kind.
_GEO_PRECISION_OF_PLACE_KIND = {"locality": "exact", "area": "region", "admin2": "admin2", "admin1": "admin1",
                                "country": "country"}


async def lock_record(conn: AsyncConnection, record_type: str, ref: str, if_match: str | None) -> dict:
    """The record's row, locked until the transaction ends, so a concurrent writer waits
    and then sees this one's version; refused if `if_match` names an older version.
    (FOR NO KEY UPDATE, as an update that keeps the key takes: rows that only refer to
    this one, an import's new claims citing it, do not hold it up.)"""
    table: Table = getattr(m, TABLE_OF_TYPE[record_type])
    record_id = await event_id_of(conn, ref) if record_type == "event" else parse_uuid(ref)
    row = None
    if record_id is not None:
        locked = select(table).where(table.c.id == record_id).with_for_update(key_share=True)
        row = (await conn.execute(locked)).mappings().first()
    if row is None:
        stone = await tombstone(conn, record_type, record_id) if record_id is not None else None
        raise RecordGone(stone) if stone else RecordNotFound(record_type, ref)
    if if_match is not None:
        current = body_etag(await record_body(conn, record_type, row["id"]))
        if not etag_matches(if_match, current):
            raise StaleRecord(current)
    return dict(row)


async def record_tree(conn: AsyncConnection, record_type: str, record_id: UUID) -> dict:
    """The record as the reads give it (REST's GET, GraphQL's nodes)."""
    trees = await RECORD_TREES[record_type](conn, [record_id])
    return trees[0]


async def record_body(conn: AsyncConnection, record_type: str, record_id: UUID) -> bytes:
    """The record's answer as GET /v1/<type>s/<id> sends it (its ETag is this body's)."""
    return orjson.dumps(await record_tree(conn, record_type, record_id))


async def _in_vocabulary(conn: AsyncConnection, checks: Checks, name: str, table: Table, value: str | None) -> None:
    if value is None:
        return
    if await conn.scalar(select(func.count()).select_from(table).where(table.c.code == value)) == 0:
        known = ", ".join(await conn.scalars(select(table.c.code).order_by(table.c.code)))
        checks.fail(name, f"{value!r} is not one of {known}")


async def one_actor(conn: AsyncConnection, checks: Checks, name: str, ref: str | None) -> UUID | None:
    """The actor `ref` names (an id, or a name or alias only it has)."""
    if ref is None:
        return None
    a, n = m.actors.c, m.actor_names.c
    as_id = parse_uuid(ref)
    if as_id is not None:
        if await conn.scalar(select(a.id).where(a.id == as_id)) is None:
            checks.fail(name, f"no actor has the id {ref}")
        return as_id
    rows = (await conn.execute(
        select(a.id, a.name).distinct().join(m.actor_names, n.actor_id == a.id)
        .where(n.name_norm.in_(name_variants(ref) or {normalize_name(ref)})).order_by(a.name, a.id))).all()
    if not rows:
        checks.fail(name, f"no actor is named {ref!r} (create it with POST /v1/actors, or give an id)")
        return None
    if len(rows) > 1:
        checks.fail(name, f"{ref!r} names {len(rows)} actors; give one's id: "
                          + ", ".join(f"{r.name} ({r.id})" for r in rows[:5]))
        return None
    return rows[0].id


async def _place_level(conn: AsyncConnection, checks: Checks, name: str, place_id: UUID) -> int | None:
    level = await conn.scalar(select(m.place_kinds.c.level).select_from(
        m.places.join(m.place_kinds, m.place_kinds.c.code == m.places.c.kind)).where(m.places.c.id == place_id))
    if level is None:
        checks.fail(name, f"no place has the id {place_id}")
    return level


def _name_rows(owner: str, owner_id: UUID, names: list[str]) -> list[dict]:
    rows: dict[str, dict] = {}
    for name in names:
        for norm in sorted(name_variants(name) or {normalize_name(name)}):
            rows.setdefault(norm, {f"{owner}_id": owner_id, "name": name, "name_norm": norm})
    return list(rows.values())


async def _set_names(conn: AsyncConnection, owner: str, owner_id: UUID, names: list[str]) -> None:
    """The record's names are exactly its name and these aliases (with their spellings)."""
    table: Table = getattr(m, f"{owner}_names")
    rows = _name_rows(owner, owner_id, names)
    await conn.execute(delete(table).where(table.c[f"{owner}_id"] == owner_id,
                                           table.c.name_norm.not_in([r["name_norm"] for r in rows])))
    await conn.execute(_upsert_names(table, rows))


async def _rename(conn: AsyncConnection, owner: str, current: dict, name: str, aliases: list[str] | None) -> None:
    """A new name and, if given, new aliases (else the old ones stay)."""
    table: Table = getattr(m, f"{owner}_names")
    if aliases is None:
        aliases = list(await conn.scalars(select(table.c.name).distinct().where(
            table.c[f"{owner}_id"] == current["id"], table.c.name != current["name"])))
    await _set_names(conn, owner, current["id"], [name, *aliases])


def _upsert_names(table: Table, rows: list[dict]):
    stmt = pg_insert(table).values(rows)
    return stmt.on_conflict_do_update(index_elements=list(table.primary_key.columns.keys()),
                                      set_={"name": stmt.excluded.name})


def _nameable(checks: Checks, name: str, values: list[str | None]) -> None:
    for i, value in enumerate(values):
        if value is not None and not normalize_name(value):
            checks.fail(name if i == 0 else f"aliases.{i - 1}", f"{value!r} has no letter or digit to find it by")


# --- places ---------------------------------------------------------------------------------------

async def _check_place(conn: AsyncConnection, checks: Checks, prefix: str, record: dict[str, Any]) -> None:
    await _in_vocabulary(conn, checks, f"{prefix}kind", m.place_kinds, record["kind"])
    level = await conn.scalar(select(m.place_kinds.c.level).where(m.place_kinds.c.code == record["kind"]))
    if record.get("parent_id") is None:
        if record["kind"] != "country" and level is not None:
            checks.fail(f"{prefix}parent", f"a place of kind {record['kind']} lies in another place: give its id")
    else:
        parent_level = await _place_level(conn, checks, f"{prefix}parent", record["parent_id"])
        if parent_level is not None and level is not None and parent_level >= level:
            checks.fail(f"{prefix}parent", f"a {record['kind']} cannot lie in a place of its own or a finer kind")
        if record.get("id") is not None and record["parent_id"] == record["id"]:
            checks.fail(f"{prefix}parent", "a place cannot lie in itself")
    if record["kind"] != "country" and (record.get("iso2") or record.get("iso3")):
        checks.fail(f"{prefix}iso3" if record.get("iso3") else f"{prefix}iso2", "only countries have ISO codes")
    elif record.get("iso3"):
        # (ux_places_iso3; writes queue on the generation first, so none can take it meanwhile)
        p = m.places.c
        holder = await conn.scalar(select(p.name).where(
            p.iso3 == record["iso3"], p.id.is_distinct_from(record.get("id"))))
        if holder is not None:
            checks.fail(f"{prefix}iso3", f"{record['iso3']} is already the code of {holder!r}")


def _place_row(data: PlaceInput | dict) -> dict[str, Any]:
    given = data if isinstance(data, dict) else data.model_dump()
    row = {k: given[k] for k in ("name", "kind", "latitude", "longitude", "iso2", "iso3") if k in given}
    if "parent" in given:
        row["parent_id"] = given["parent"]
    return row


async def create_place(conn: AsyncConnection, data: PlaceInput, *, prefix: str = "",
                       checks: Checks | None = None) -> UUID | None:
    """A new place; with `checks` given (a place inside another record's input), the
    problems are added to them and nothing is raised or written if there are any."""
    own_checks = checks is None
    checks = checks or Checks()
    row = _place_row(data)
    await _check_place(conn, checks, prefix, row)
    _nameable(checks, f"{prefix}name", [data.name, *data.aliases])
    if own_checks:
        checks.raise_any()
    if checks.errors:
        return None
    place_id = await conn.scalar(insert(m.places).values(row).returning(m.places.c.id))
    await conn.execute(_upsert_names(m.place_names, _name_rows("place", place_id, [data.name, *data.aliases])))
    return place_id


async def _place_of_event(conn: AsyncConnection, checks: Checks, data: UUID | PlaceInput) -> UUID | None:
    """The event's place: an existing one by id, the same place under the same parent
    by name and kind, or a new one."""
    if isinstance(data, UUID):
        await _place_level(conn, checks, "place", data)
        return data
    p, n = m.places.c, m.place_names.c
    same = await conn.scalar(
        select(p.id).join(m.place_names, n.place_id == p.id)
        .where(p.kind == data.kind, p.parent_id.is_not_distinct_from(data.parent),
               n.name_norm == normalize_name(data.name)).order_by(p.id).limit(1))
    if same is not None:
        return same
    return await create_place(conn, data, prefix="place.", checks=checks)


async def update_place(conn: AsyncConnection, ref: str, patch: dict[str, Any], if_match: str | None) -> UUID:
    current = await lock_record(conn, "place", ref, if_match)
    checks = Checks()
    for required in ("name", "kind"):
        if required in patch and patch[required] is None:
            checks.fail(required, "a place has one; it cannot be cleared")
    checks.raise_any()
    changes = _place_row(patch)
    record = {**current, **changes}
    await _check_place(conn, checks, "", record)
    if "name" in patch or patch.get("aliases") is not None:
        _nameable(checks, "name", [record["name"], *(patch.get("aliases") or [])])
    if record["parent_id"] is not None and await conn.scalar(text(
            "SELECT 1 FROM place_lineage WHERE ancestor_id = :place AND descendant_id = :parent"),
            {"place": current["id"], "parent": record["parent_id"]}):
        checks.fail("parent", "a place cannot lie in a place inside it")
    if (record["latitude"] is None) != (record["longitude"] is None):
        checks.fail("latitude", "latitude and longitude go together: give both or neither")
    checks.raise_any()
    if changes:
        await conn.execute(update(m.places).where(m.places.c.id == current["id"]).values(changes))
    if "name" in patch or patch.get("aliases") is not None:
        await _rename(conn, "place", current, record["name"], patch.get("aliases"))
    if {"name", "parent", "aliases"} & patch.keys():
        # the names of a place and of what it lies in are in the search text of the
        # events inside it (a country's rename re-derives all of its events)
        await recompute_events(conn, list(await conn.scalars(text(_EVENTS_INSIDE_PLACE), {"place": current["id"]})))
    return current["id"]


# What refers to a record of each kind: such a record is not deleted (rather than
# delete what refers to it too, or leave that pointing nowhere).
_REFERENCES = {
    "place": {"events": "SELECT count(*) FROM events WHERE place_id = :id",
              "places inside it": "SELECT count(*) FROM places WHERE parent_id = :id",
              "claims": "SELECT count(*) FROM claims WHERE value_place_id = :id"},
    "actor": {"claims": "SELECT count(*) FROM claims WHERE :id IN (claimant_id, via_id, value_actor_id)",
              "event roles": "SELECT count(*) FROM event_actors WHERE actor_id = :id",
              "actors under it": "SELECT count(*) FROM actors WHERE parent_id = :id",
              "documents": "SELECT count(*) FROM documents WHERE publisher_actor_id = :id",
              "memberships": "SELECT count(*) FROM actor_memberships WHERE :id IN (member_id, group_id)"},
    "document": {"claims": "SELECT count(*) FROM claims WHERE document_id = :id"},
}


async def _delete_unreferenced(conn: AsyncConnection, record_type: str, ref: str, if_match: str | None) -> UUID:
    current = await lock_record(conn, record_type, ref, if_match)
    found = []
    for label, sql in _REFERENCES[record_type].items():
        count = await conn.scalar(text(sql), {"id": current["id"]})
        if count:
            found.append(f"{count} {label}")
    if found:
        raise StillReferenced(f"The {record_type} is still referred to by {', '.join(found)}; "
                              "change or delete those first.")
    table: Table = getattr(m, TABLE_OF_TYPE[record_type])
    await conn.execute(delete(table).where(table.c.id == current["id"]))
    return current["id"]


async def delete_place(conn: AsyncConnection, ref: str, if_match: str | None) -> UUID:
    return await _delete_unreferenced(conn, "place", ref, if_match)


# --- actors ---------------------------------------------------------------------------------------

async def create_actor(conn: AsyncConnection, data: ActorInput) -> UUID:
    checks = Checks()
    await _in_vocabulary(conn, checks, "kind", m.actor_kinds, data.kind)
    parent = await one_actor(conn, checks, "parent", data.parent)
    _nameable(checks, "name", [data.name, *data.aliases])
    checks.raise_any()
    actor_id = await conn.scalar(insert(m.actors).values(
        name=data.name, kind=data.kind, parent_id=parent, description=data.description).returning(m.actors.c.id))
    await conn.execute(_upsert_names(m.actor_names, _name_rows("actor", actor_id, [data.name, *data.aliases])))
    return actor_id


async def update_actor(conn: AsyncConnection, ref: str, patch: dict[str, Any], if_match: str | None) -> UUID:
    current = await lock_record(conn, "actor", ref, if_match)
    checks = Checks()
    changes: dict[str, Any] = {k: patch[k] for k in ("name", "kind", "description") if k in patch}
    if "kind" in patch:
        if patch["kind"] is None:
            checks.fail("kind", "an actor has a kind")
        await _in_vocabulary(conn, checks, "kind", m.actor_kinds, patch["kind"])
    if "name" in patch and patch["name"] is None:
        checks.fail("name", "an actor has a name")
    if "parent" in patch:
        changes["parent_id"] = await one_actor(conn, checks, "parent", patch["parent"])
        if changes["parent_id"] is not None and await conn.scalar(text(
                "SELECT 1 FROM actor_lineage WHERE ancestor_id = :actor AND descendant_id = :parent"),
                {"actor": current["id"], "parent": changes["parent_id"]}):
            checks.fail("parent", "an actor cannot belong to itself or to an actor that belongs to it")
    _nameable(checks, "name", [patch.get("name"), *(patch.get("aliases") or [])])
    checks.raise_any()
    if changes:
        await conn.execute(update(m.actors).where(m.actors.c.id == current["id"]).values(changes))
    if patch.get("name") or patch.get("aliases") is not None:
        await _rename(conn, "actor", current, changes.get("name", current["name"]), patch.get("aliases"))
    if {"name", "kind", "parent_id"} & changes.keys() or patch.get("aliases") is not None:
        # its kind (independent or not), its tree (speaking of itself) and its names
        # (search text) go into the events it is named in
        await recompute_events(conn, list(await conn.scalars(text(_EVENTS_NAMING_ACTOR), {"actor": current["id"]})))
    return current["id"]


async def delete_actor(conn: AsyncConnection, ref: str, if_match: str | None) -> UUID:
    return await _delete_unreferenced(conn, "actor", ref, if_match)


# --- documents ------------------------------------------------------------------------------------

async def create_document(conn: AsyncConnection, data: DocumentInput, *, prefix: str = "",
                          checks: Checks | None = None) -> UUID | None:
    own_checks = checks is None
    checks = checks or Checks()
    publisher_actor = await one_actor(conn, checks, f"{prefix}publisher_actor", data.publisher_actor)
    if own_checks:
        checks.raise_any()
    if checks.errors:
        return None
    row = data.model_dump(exclude={"publisher_actor"})
    if row["publisher"] is None and publisher_actor is not None:
        row["publisher"] = await conn.scalar(select(m.actors.c.name).where(m.actors.c.id == publisher_actor))
    return await conn.scalar(insert(m.documents).values(**row, publisher_actor_id=publisher_actor)
                             .returning(m.documents.c.id))


async def update_document(conn: AsyncConnection, ref: str, patch: dict[str, Any], if_match: str | None) -> UUID:
    current = await lock_record(conn, "document", ref, if_match)
    checks = Checks()
    changes = {k: v for k, v in patch.items() if k != "publisher_actor"}
    if "publisher_actor" in patch:
        changes["publisher_actor_id"] = await one_actor(conn, checks, "publisher_actor", patch["publisher_actor"])
    record = {**current, **changes}
    if record["publisher"] is None and record["title"] is None and record["url"] is None:
        checks.fail("publisher", "a document keeps at least a publisher, a title or a url")
    checks.raise_any()
    if changes:
        await conn.execute(update(m.documents).where(m.documents.c.id == current["id"]).values(changes))
    return current["id"]


async def delete_document(conn: AsyncConnection, ref: str, if_match: str | None) -> UUID:
    return await _delete_unreferenced(conn, "document", ref, if_match)


# --- events ---------------------------------------------------------------------------------------

def _period_end(start: dt.date, precision: str) -> dt.date:
    """The last day of the period a date known to `precision` stands for."""
    if precision == "week":
        return start + dt.timedelta(days=6)
    if precision == "month":
        return start.replace(day=calendar.monthrange(start.year, start.month)[1])
    if precision == "year":
        return start.replace(month=12, day=31)
    return start


async def _check_event(conn: AsyncConnection, checks: Checks, record: dict[str, Any]) -> None:
    pair = await conn.scalar(select(func.count()).select_from(m.sub_event_types).where(
        m.sub_event_types.c.event_type == record["event_type"], m.sub_event_types.c.name == record["sub_event_type"]))
    if not pair:
        known_type = await conn.scalar(select(func.count()).select_from(m.event_types).where(
            m.event_types.c.name == record["event_type"]))
        if not known_type:
            checks.fail("event_type", f"{record['event_type']!r} is not an ACLED event type (see /v1/vocabularies)")
        else:
            checks.fail("sub_event_type", f"{record['sub_event_type']!r} is not a sub-event type of "
                                          f"{record['event_type']!r} (see /v1/vocabularies)")
    await _in_vocabulary(conn, checks, "date_precision", m.date_precisions, record["date_precision"])
    await _in_vocabulary(conn, checks, "geo_precision", m.geo_precisions, record["geo_precision"])
    if record["date_end"] < record["date_start"]:
        checks.fail("date_end", "must not be before date_start")
    elif record["date_precision"] == "day" and record["date_end"] != record["date_start"]:
        checks.fail("date_end", "an event known to the day ends on its start date; "
                                "use date_precision week, month or year for a span")
    if record["date_start"] > dt.date.today():
        checks.fail("date_start", "is in the future")


async def _geo_precision_of(conn: AsyncConnection, place_id: UUID | None, has_coordinates: bool) -> str:
    if has_coordinates or place_id is None:
        return "exact"
    kind = await conn.scalar(select(m.places.c.kind).where(m.places.c.id == place_id))
    return _GEO_PRECISION_OF_PLACE_KIND.get(kind, "exact")


async def _rederive_event(conn: AsyncConnection, event_id: UUID) -> None:
    await recompute_events(conn, [event_id])
    await match_events(conn, [event_id])


async def create_event(conn: AsyncConnection, data: EventInput) -> UUID:
    checks = Checks()
    place_id = await _place_of_event(conn, checks, data.place)
    record = data.model_dump(exclude={"place"})
    record["date_end"] = data.date_end or _period_end(data.date_start, data.date_precision)
    record["geo_precision"] = data.geo_precision or await _geo_precision_of(conn, place_id, data.latitude is not None)
    await _check_event(conn, checks, record)
    checks.raise_any()
    event_id = await conn.scalar(insert(m.events).values(**record, place_id=place_id).returning(m.events.c.id))
    await _rederive_event(conn, event_id)
    return event_id


async def update_event(conn: AsyncConnection, ref: str, patch: dict[str, Any], if_match: str | None) -> UUID:
    current = await lock_record(conn, "event", ref, if_match)
    checks = Checks()
    changes = {k: v for k, v in patch.items() if k != "place"}
    if "place" in patch:
        if patch["place"] is None:
            checks.fail("place", "an event has a place")
        else:
            changes["place_id"] = await _place_of_event(conn, checks, patch["place"])
            if "geo_precision" not in patch and {**current, **changes}["latitude"] is None:
                # where it is known to be is the new place now (a locality, or only the country)
                changes["geo_precision"] = await _geo_precision_of(conn, changes["place_id"], False)
    for required in ("event_type", "sub_event_type", "date_start", "date_precision", "geo_precision"):
        if required in changes and changes[required] is None:
            checks.fail(required, "an event has one; it cannot be cleared")
    checks.raise_any()
    # a new start or precision without an end, or an end cleared: the period's end again
    period_moved = "date_end" not in changes and ("date_start" in changes or "date_precision" in changes)
    if period_moved or ("date_end" in changes and changes["date_end"] is None):
        changes["date_end"] = _period_end(changes.get("date_start", current["date_start"]),
                                          changes.get("date_precision", current["date_precision"]))
    record = {**current, **changes}
    await _check_event(conn, checks, record)
    checks.raise_any()
    if changes:
        await conn.execute(update(m.events).where(m.events.c.id == current["id"]).values(changes))
        await _rederive_event(conn, current["id"])
    return current["id"]


async def delete_event(conn: AsyncConnection, ref: str, if_match: str | None) -> UUID:
    """The event, its claims, roles, external ids and verdicts (its documents stay:
    others may cite them); the records it was paired or grouped with are linked and
    grouped anew without it."""
    current = await lock_record(conn, "event", ref, if_match)
    neighbours = await paired_or_grouped(conn, current["id"])
    await conn.execute(delete(m.events).where(m.events.c.id == current["id"]))
    await relink(conn, neighbours)
    return current["id"]


# The records an event is paired with (scored or judged) and the other members of its
# happening: once it is gone (deleted, merged), their links are selected anew (a
# contender of it may be linked instead) and its happening regrouped (split, if it held
# it together; its id stays while its earliest record does).
_PAIRED_OR_GROUPED = text("""
SELECT other_id FROM event_matches WHERE event_id = :id
UNION SELECT event_id FROM event_matches WHERE other_id = :id
UNION SELECT h.event_id FROM happening_members h JOIN happening_members mine USING (happening_id)
       WHERE mine.event_id = :id AND h.event_id <> :id""")


async def paired_or_grouped(conn: AsyncConnection, event_id: UUID) -> list[UUID]:
    return list(await conn.scalars(_PAIRED_OR_GROUPED, {"id": event_id}))


async def event_named(conn: AsyncConnection, checks: Checks, name: str, ref: str) -> UUID | None:
    """The event a body field names (an id or external id); a problem of that field if
    there is none (or it was deleted)."""
    event_id = await resolve_event_id(conn, ref)
    if event_id is None:
        stone = await tombstone(conn, "event", parse_uuid(ref)) if parse_uuid(ref) else None
        checks.fail(name, f"the event {ref} was deleted" if stone else f"no event {ref!r}")
    return event_id


# --- claims ---------------------------------------------------------------------------------------

_VALUE_COLUMNS = ("value_low", "value_best", "value_high", "value_actor_id", "value_place_id", "value_date",
                  "value_text")


_VALUE_HELP = {"number": "a number or {low, best, high}", "actor": "an actor id or name", "place": "a place id",
               "date": "an ISO date", "text": "text", "none": "none"}


async def _claim_value(conn: AsyncConnection, checks: Checks, predicate: str, stance: str, value: Any
                       ) -> dict[str, Any]:
    """The value columns of a claim of this predicate, from the input's value."""
    columns: dict[str, Any] = dict.fromkeys(_VALUE_COLUMNS)
    kind = await conn.scalar(select(m.predicates.c.value_kind).where(m.predicates.c.code == predicate))
    if kind is None:
        return columns  # the predicate itself is reported
    if value is None:
        if kind == "actor" or (kind in ("place", "date", "text")) or (
                kind == "number" and stance in ("asserts", "concedes")):
            checks.fail("value", f"{with_article(predicate)} claim that {stance} needs a value ({_VALUE_HELP[kind]})")
        return columns
    if kind == "none":
        checks.fail("value", f"{with_article(predicate)} claim takes no value")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, Figures)):
            checks.fail("value", f"{with_article(predicate)} claim takes {_VALUE_HELP[kind]}")
        else:
            figures = value if isinstance(value, Figures) else Figures(best=value)
            columns.update(value_low=figures.low, value_best=figures.best, value_high=figures.high)
    elif kind == "actor":
        columns["value_actor_id"] = await one_actor(conn, checks, "value", str(value))
    elif kind == "place":
        place_id = parse_uuid(str(value))
        if place_id is None:
            checks.fail("value", "a location claim takes a place id")
        else:
            await _place_level(conn, checks, "value", place_id)
            columns["value_place_id"] = place_id
    elif kind == "date":
        try:
            columns["value_date"] = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
            if not dt.date(1000, 1, 1) <= columns["value_date"] <= dt.date(2999, 12, 31):
                checks.fail("value", "a date between 1000-01-01 and 2999-12-31")
        except ValueError:
            checks.fail("value", "a date claim takes an ISO date (2018-05-01)")
    elif kind == "text":
        if not isinstance(value, str):
            checks.fail("value", f"{with_article(predicate)} claim takes text")
        columns["value_text"] = str(value)
    return columns



async def _document_of_claim(conn: AsyncConnection, checks: Checks, data: UUID | DocumentInput | None
                             ) -> UUID | None:
    if data is None:
        return None
    if isinstance(data, UUID):
        if await conn.scalar(select(m.documents.c.id).where(m.documents.c.id == data)) is None:
            checks.fail("document", f"no document has the id {data}")
        return data
    return await create_document(conn, data, prefix="document.", checks=checks)


async def create_claim(conn: AsyncConnection, data: ClaimInput) -> UUID:
    checks = Checks()
    event_id = await event_named(conn, checks, "event", data.event)
    claimant = await one_actor(conn, checks, "claimant", data.claimant)
    via = await one_actor(conn, checks, "via", data.via)
    await _in_vocabulary(conn, checks, "predicate", m.predicates, data.predicate)
    await _in_vocabulary(conn, checks, "stance", m.stances, data.stance)
    value = await _claim_value(conn, checks, data.predicate, data.stance, data.value)
    document = await _document_of_claim(conn, checks, data.document) if not checks.errors else None
    checks.raise_any()
    claim_id = await conn.scalar(insert(m.claims).values(
        event_id=event_id, claimant_id=claimant, via_id=via, speaker=data.speaker, document_id=document,
        predicate=data.predicate, stance=data.stance, quote=data.quote, **value).returning(m.claims.c.id))
    await recompute_events(conn, [event_id])
    return claim_id


async def update_claim(conn: AsyncConnection, ref: str, patch: dict[str, Any], if_match: str | None) -> UUID:
    current = await lock_record(conn, "claim", ref, if_match)
    checks = Checks()
    changes: dict[str, Any] = {k: patch[k] for k in ("speaker", "quote") if k in patch}
    for required in ("predicate", "stance"):
        if required in patch:
            if patch[required] is None:
                checks.fail(required, "a claim has one; it cannot be cleared")
            else:
                await _in_vocabulary(conn, checks, required,
                                     m.predicates if required == "predicate" else m.stances, patch[required])
                changes[required] = patch[required]
    if "via" in patch:
        changes["via_id"] = await one_actor(conn, checks, "via", patch["via"])
    if "document" in patch:
        changes["document_id"] = await _document_of_claim(conn, checks, patch["document"])
    if "value" in patch or "predicate" in patch or "stance" in patch:
        new_predicate = changes.get("predicate", current["predicate"])
        kept = new_predicate == current["predicate"] or await _same_value_kind(conn, current["predicate"], new_predicate)
        value = patch["value"] if "value" in patch else (_stored_value(current) if kept else None)
        changes.update(await _claim_value(conn, checks, changes.get("predicate", current["predicate"]),
                                          changes.get("stance", current["stance"]), value))
    checks.raise_any()
    if changes:
        await conn.execute(update(m.claims).where(m.claims.c.id == current["id"]).values(changes))
        await drop_unclaimed_role(conn, current["event_id"], current["value_actor_id"], current["predicate"])
        await recompute_events(conn, [current["event_id"]])
    return current["id"]


async def _same_value_kind(conn: AsyncConnection, one: str, other: str) -> bool:
    kinds = set(await conn.scalars(select(m.predicates.c.value_kind).where(m.predicates.c.code.in_([one, other]))))
    return len(kinds) == 1


def _stored_value(claim: dict[str, Any]) -> Any:
    """A stored claim's value as an input would give it (to check it against a new predicate)."""
    if claim["value_actor_id"] is not None:
        return str(claim["value_actor_id"])
    if claim["value_place_id"] is not None:
        return str(claim["value_place_id"])
    if claim["value_date"] is not None:
        return claim["value_date"]
    if claim["value_text"] is not None:
        return claim["value_text"]
    if any(claim[c] is not None for c in ("value_low", "value_best", "value_high")):
        return Figures(low=claim["value_low"], best=claim["value_best"], high=claim["value_high"])
    return None


async def delete_claim(conn: AsyncConnection, ref: str, if_match: str | None) -> UUID:
    current = await lock_record(conn, "claim", ref, if_match)
    await conn.execute(delete(m.claims).where(m.claims.c.id == current["id"]))
    await drop_unclaimed_role(conn, current["event_id"], current["value_actor_id"], current["predicate"])
    await recompute_events(conn, [current["event_id"]])
    return current["id"]
