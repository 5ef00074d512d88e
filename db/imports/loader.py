"""Loading imported events in batches: match places and actors, upsert the rest.

Ids: an event keeps the id its external id already points to; a new one gets a UUIDv5
of `<dataset>:<external id>`, as do its claims (per slot: each source, the figures, a
side), documents (per publisher, date and title, so a report several events cite is
one document), and the places and actors an import creates (by parent, level, name and
first coordinates; by external id or name): the same file gives the same ids anywhere.
Loading the same file again therefore writes nothing, and a changed row updates its
event in place. A file stating an id twice has its first row imported and the later
ones rejected; but rows whose id is derived from the row itself (ACLED rows without
`event_id_cnty`) that the file repeats verbatim are each an event, numbered `-2`,
`-3`... in file order. The import owns the claims it made (`claims.dataset`, migration
0009) and the participants it listed (`event_actors.dataset`, 0011): on a re-import
those that the row no longer has are removed, with the perpetrators and targets no
claim names any more; claims and roles added by others stay.

Places are matched by name and level under their parent (through every alias, so
`Al Hasakah Governorate` finds the seed's governorate); a locality also by proximity:
the same name under the same parent within 10 km is the same place. Actors are matched
by their external id (a UCDP side id), then by name or alias; what is not found is
created. Each batch is one transaction: places, actors, documents, events, claims, and
the derived figures (db/derive.py) of the events it inserted (derived in staging before
they go in, so each new row is written once) or changed (recomputed), and their
matches with other sources' events (db/linking.py); batches written two at a time
commit a batch's new places and actors first, on their own (db/imports/run.py). A batch
is prepared (`prepare`: rows rejected, ids made, places and actors matched) apart from
its writing (`write_references`, `write_events`, `link`), possibly in another process
(db/imports/preparing.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.derive import empty_staging, insert_staged_events, recompute_events
from db.crosswalk import load_crosswalk
from db.engine import copy_rows, insert_new_rows
from db.linking import match_events, snapshot_other_sources
from db.imports.records import ActorRef, Figures, ImportedEvent, ImportReport, SourceReport
from db.names import name_variants, normalize_name

IMPORT_NAMESPACE = UUID("3f0c1a52-9d4e-4b8a-a1f2-6e7d8c9b0a15")
SAME_LOCALITY_KM = 10.0
# Held by a whole import: two imports at once would create the same new places twice.
IMPORT_LOCK = 727003


_NAMESPACE_HASH = hashlib.sha1(IMPORT_NAMESPACE.bytes)
# RFC 9562's version (5) and variant bits, as uuid.uuid5 sets them
_VERSION_BITS_CLEARED = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_5_BITS = (5 << 76) | (0x8000 << 48)


def import_id(kind: str, key: str) -> UUID:
    """uuid.uuid5(IMPORT_NAMESPACE, f"{kind}:{key}"), made three times as fast (the
    namespace's hash state kept, the version set on the integer): a batch makes ~40,000."""
    digest = _NAMESPACE_HASH.copy()
    digest.update(f"{kind}:{key}".encode())
    return UUID(int=(int.from_bytes(digest.digest()[:16]) & _VERSION_BITS_CLEARED) | _VERSION_5_BITS)


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 12742.0 * math.asin(min(1.0, math.sqrt(a)))


@dataclass
class _Place:
    id: UUID
    latitude: float | None
    longitude: float | None


PlaceKey = tuple[UUID | None, str, str]   # (parent id, kind, normalised name)


class _Places:
    """Places by parent, kind and name, as found in the knowledge base or created."""

    def __init__(self) -> None:
        self.known: dict[PlaceKey, list[_Place]] = {}

    async def look_up(self, conn: AsyncConnection, keys: Iterable[PlaceKey]) -> None:
        missing = sorted({k for k in keys if k not in self.known}, key=lambda k: (str(k[0]), k[1], k[2]))
        if not missing:
            return
        # by every variant of the name ("Idlib Governorate" finds the "Idlib" another
        # dataset brought first), so which dataset came first makes no second place
        variants = [(k, v) for k in missing for v in sorted(name_variants(k[2]) or {k[2]})]
        rows = await conn.execute(text("""
            SELECT DISTINCT k.parent, k.kind, k.norm, p.id, p.latitude, p.longitude
              FROM unnest(CAST(:parents AS uuid[]), CAST(:kinds AS text[]), CAST(:norms AS text[]),
                          CAST(:variants AS text[]))
                   AS k(parent, kind, norm, variant)
              JOIN place_names n ON n.name_norm = k.variant
              JOIN places p ON p.id = n.place_id AND p.kind = k.kind AND p.parent_id IS NOT DISTINCT FROM k.parent
             ORDER BY p.id"""), {"parents": [k[0] for k, _ in variants], "kinds": [k[1] for k, _ in variants],
                                 "norms": [k[2] for k, _ in variants], "variants": [v for _, v in variants]})
        for key in missing:
            self.known[key] = []
        for row in rows:
            self.known[(row.parent, row.kind, row.norm)].append(_Place(row.id, row.latitude, row.longitude))

    def pick(self, key: PlaceKey, name: str, latitude: float | None, longitude: float | None,
             new_rows: list[dict], current: UUID | None = None) -> UUID:
        """The place for this key (a locality: the event's `current` one if it still
        fits, else the nearest within SAME_LOCALITY_KM), or a new one added to
        `new_rows`. (Keeping the current one makes a re-import settle: a place made
        later in the file may be nearer than the one the event got.)"""
        candidates = self.known[key]
        if key[1] == "locality" and latitude is not None:
            located = [(_km(latitude, longitude, c.latitude, c.longitude), c) for c in candidates
                       if c.latitude is not None]
            near = [pair for pair in located if pair[0] <= SAME_LOCALITY_KM]
            if any(c.id == current for _, c in near):
                return current
            if near:
                return min(near, key=lambda pair: pair[0])[1].id
            unlocated = [c for c in candidates if c.latitude is None]
            if unlocated:
                return unlocated[0].id
        elif candidates:
            return candidates[0].id
        # a stable id: the same file makes the same places on every machine
        where = f"{latitude:.3f},{longitude:.3f}" if latitude is not None else ""
        place = _Place(import_id("place", f"{key[0]}|{key[1]}|{key[2]}|{where}"), latitude, longitude)
        candidates.append(place)
        new_rows.append({"id": place.id, "name": name, "kind": key[1], "parent_id": key[0],
                         "latitude": latitude, "longitude": longitude})
        return place.id


class _Actors:
    """Actors by external id and by normalised name, as found or created."""

    def __init__(self) -> None:
        self.by_external: dict[tuple[str, str], UUID] = {}
        self.by_name: dict[str, UUID | None] = {}

    async def look_up(self, conn: AsyncConnection, refs: Iterable[ActorRef]) -> None:
        refs = list(refs)
        externals = sorted({(r.external_dataset, r.external_id) for r in refs
                            if r.external_id and (r.external_dataset, r.external_id) not in self.by_external})
        if externals:
            rows = await conn.execute(text("""
                SELECT x.dataset, x.external_id, x.actor_id FROM actor_external_ids x
                  JOIN unnest(CAST(:datasets AS text[]), CAST(:ids AS text[])) AS k(dataset, external_id)
                 USING (dataset, external_id)"""),
                {"datasets": [d for d, _ in externals], "ids": [i for _, i in externals]})
            self.by_external.update({(r.dataset, r.external_id): r.actor_id for r in rows})
        names = sorted({normalize_name(r.name) for r in refs} - self.by_name.keys())
        if names:
            rows = await conn.execute(text("""
                SELECT DISTINCT ON (name_norm) name_norm, actor_id FROM actor_names
                 WHERE name_norm = ANY(:names) ORDER BY name_norm, actor_id"""), {"names": names})
            found = {r.name_norm: r.actor_id for r in rows}
            self.by_name.update({n: found.get(n) for n in names})

    def pick(self, ref: ActorRef, new_actors: list[dict], new_externals: list[dict]) -> UUID:
        key = (ref.external_dataset, ref.external_id)
        if ref.external_id and key in self.by_external:
            return self.by_external[key]
        norm = normalize_name(ref.name)
        actor_id = self.by_name.get(norm)
        if actor_id is None:
            actor_id = import_id("actor", f"{ref.external_dataset}:{ref.external_id}" if ref.external_id else norm)
            self.by_name[norm] = actor_id
            new_actors.append({"id": actor_id, "name": ref.name, "kind": ref.kind})
        if ref.external_id:
            self.by_external[key] = actor_id
            new_externals.append({"dataset": ref.external_dataset, "external_id": ref.external_id,
                                  "actor_id": actor_id})
        return actor_id


# Rows are COPYed into per-session staging tables shaped like their targets, then
# upserted from there in one statement per table (writing nothing where a row matches).
_STAGED = {
    "events": ["id", "event_type", "sub_event_type", "type_of_violence", "date_start", "date_end", "date_precision",
               "place_id", "geo_precision", "latitude", "longitude", "summary"],
    "documents": ["id", "publisher", "publisher_actor_id", "title", "url", "published_at"],
    "claims": ["id", "event_id", "claimant_id", "document_id", "predicate", "stance", "value_low", "value_best",
               "value_high", "value_actor_id", "quote", "dataset"],
}


async def _stage(conn: AsyncConnection, table: str, rows: Sequence[dict]) -> None:
    columns = _STAGED[table]
    staging = f"import_{table}"
    await conn.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {staging} AS "
                            f"SELECT {', '.join(columns)} FROM {table} WITH NO DATA"))
    await conn.execute(text(f"TRUNCATE {staging}"))
    await copy_rows(conn, staging, columns, rows)


async def _upsert_staged(conn: AsyncConnection, table: str, returning: str,
                         take_turn: Callable[[], Awaitable[object]] | None = None) -> list:
    """Upsert the staged rows by id: the new ones inserted, the stored ones that differ
    updated (each in id order: two writers lock rows in one order), `take_turn`, if
    given, awaited first if there are such; returns `returning` of the rows inserted or changed, with
    `inserted`. (Two statements, not INSERT ... ON CONFLICT DO UPDATE, which locks every
    stored row it meets, changed or not: two batches citing one publisher's report would
    wait for each other.)"""
    columns = _STAGED[table]
    changing = [c for c in columns if c != "id"]
    inserted = await conn.execute(text(f"""
        INSERT INTO {table} ({', '.join(columns)})
        SELECT DISTINCT ON (id) {', '.join(columns)} FROM import_{table} ORDER BY id
        ON CONFLICT (id) DO NOTHING
        RETURNING {returning}, true AS inserted"""))
    inserted = inserted.all()
    differing = f"""
          SELECT s.* FROM (SELECT DISTINCT ON (id) * FROM import_{table} ORDER BY id) AS s
            JOIN {table} AS t ON t.id = s.id
           WHERE ({', '.join(f't.{c}' for c in changing)}) IS DISTINCT FROM ({', '.join(f's.{c}' for c in changing)})"""
    if take_turn is not None:
        if not await conn.scalar(text(f"SELECT EXISTS ({differing})")):
            return inserted
        await take_turn()
    updated = await conn.execute(text(f"""
        WITH changed AS MATERIALIZED ({differing}
           ORDER BY s.id FOR UPDATE OF t)
        UPDATE {table} AS t SET {', '.join(f'{c} = s.{c}' for c in changing)}, updated_at = now()
          FROM changed AS s
         WHERE t.id = s.id
        RETURNING t.{returning}, false AS inserted"""))
    return inserted + updated.all()


def _figures_claim(event: ImportedEvent, event_id: UUID, predicate: str, figures: Figures,
                   recorder_id: UUID, document_id: UUID) -> dict:
    parts = [f"{name} {value}" for name, value in (("low", figures.low), ("best", figures.best),
                                                      ("high", figures.high)) if value is not None]
    return {"id": import_id("claim", f"{event.dataset}:{event.external_id}:{predicate}"), "event_id": event_id,
            "claimant_id": recorder_id, "document_id": document_id, "predicate": predicate, "stance": "asserts",
            "value_low": figures.low, "value_best": figures.best, "value_high": figures.high,
            "value_actor_id": None,
            "quote": f"{predicate.replace('_', ' ')}: {figures.quote or ', '.join(parts)}",
            "dataset": event.dataset}


def _source_document(report: SourceReport, publisher_id: UUID) -> dict:
    key = f"{report.publisher}|{report.published_at}|{report.title}"
    return {"id": import_id("document", key), "publisher": report.publisher, "publisher_actor_id": publisher_id,
            "title": report.title, "url": None, "published_at": report.published_at}


@dataclass
class PreparedBatch:
    """A batch's rows, ready to write (Loader.prepare, Loader.write_events). Only what the
    write needs, as plain values: a batch prepared in another process comes pickled."""
    dataset: str
    external_ids: list[str]            # of the batch's rows that are loaded, in file order
    event_ids: list[UUID]              # of each of them
    places: list[dict]                 # the places, actors and actors' external ids to create
    actors: list[dict]
    actor_external_ids: list[dict]
    events: list[dict]
    documents: list[dict]
    claims: list[dict]
    participants: list[tuple[UUID, UUID]]


class Loader:
    """Loads batches of ImportedEvents; keeps what it has matched between batches."""

    def __init__(self) -> None:
        self.places = _Places()
        self.actors = _Actors()
        self.taxonomy: dict[tuple[str, str], tuple[str, str]] | None = None
        self.candidates_taken = False
        self.session_tables: set[str] = set()

    async def _session_table(self, conn: AsyncConnection, name: str, columns: str) -> None:
        """A table of this import's own, kept in the session across its batches (made
        anew by each import: a pooled connection may hold an earlier import's)."""
        if name not in self.session_tables:
            await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
            await conn.execute(text(f"CREATE TEMP TABLE {name} ({columns})"))
            self.session_tables.add(name)

    async def _place_ids(self, conn: AsyncConnection, batch: Sequence[ImportedEvent], event_ids: list[UUID],
                         current: dict[UUID, UUID], new_rows: list[dict]) -> list[UUID]:
        """Each event's place: its locality (or named area), else the finest area named
        (`current`: the places events already imported have); the places to create are
        added to `new_rows`."""
        countries = [(None, "country", normalize_name(e.country)) for e in batch]
        await self.places.look_up(conn, countries)
        country = [self.places.pick(k, e.country, None, None, new_rows) for k, e in zip(countries, batch)]
        parents: list[UUID] = list(country)
        for level in ("admin1", "admin2"):
            named = [(i, getattr(e, level)) for i, e in enumerate(batch) if getattr(e, level)]
            keys = [(parents[i], level, normalize_name(name)) for i, name in named]
            await self.places.look_up(conn, keys)
            for (i, name), key in zip(named, keys):
                parents[i] = self.places.pick(key, name, None, None, new_rows)
        chosen = list(parents)
        local = []
        for i, e in enumerate(batch):
            if e.location is None or e.geo_precision in ("admin2", "admin1", "country"):
                if e.geo_precision == "country":
                    chosen[i] = country[i]
                continue
            # (a named area, e.g. UCDP's "Northern Hamah Governorate", lies under the
            # finest admin the row names, as a locality does: filters by that admin1
            # find it, and linking compares it at the admin1)
            kind = "locality" if e.geo_precision in ("exact", "near") else "area"
            parent = parents[i]
            local.append((i, (parent, kind, normalize_name(e.location))))
        await self.places.look_up(conn, [key for _, key in local])
        for i, key in local:
            e = batch[i]
            located = key[1] == "locality"
            chosen[i] = self.places.pick(key, e.location, e.latitude if located else None,
                                         e.longitude if located else None, new_rows, current.get(event_ids[i]))
        return chosen

    async def _actor_ids(self, conn: AsyncConnection, refs: list[ActorRef], new_actors: list[dict],
                         new_externals: list[dict]) -> dict[ActorRef, UUID]:
        """Each actor's id; the actors and external ids to create are added to the lists."""
        await self.actors.look_up(conn, refs)
        return {ref: self.actors.pick(ref, new_actors, new_externals) for ref in dict.fromkeys(refs)}

    @staticmethod
    async def _insert_places_and_actors(conn: AsyncConnection, prepared: PreparedBatch) -> None:
        """The places and actors a batch's rows name that were not found (those with an
        id already taken, this import's of an earlier run renamed since, are kept)."""
        if prepared.places:
            await insert_new_rows(conn, "places", ("id", "name", "kind", "parent_id", "latitude", "longitude"),
                                  prepared.places)
            await insert_new_rows(conn, "place_names", ("place_id", "name", "name_norm"), [
                {"place_id": r["id"], "name": r["name"], "name_norm": norm}
                for r in prepared.places for norm in sorted(name_variants(r["name"]) or {normalize_name(r["name"])})])
        if prepared.actors:
            await insert_new_rows(conn, "actors", ("id", "name", "kind"), prepared.actors)
            await insert_new_rows(conn, "actor_names", ("actor_id", "name", "name_norm"), [
                {"actor_id": a["id"], "name": a["name"], "name_norm": norm}
                for a in prepared.actors for norm in sorted(name_variants(a["name"]) or {normalize_name(a["name"])})])
        if prepared.actor_external_ids:
            await insert_new_rows(conn, "actor_external_ids", ("dataset", "external_id", "actor_id"),
                                  prepared.actor_external_ids)

    async def _event_ids(self, conn: AsyncConnection, batch: Sequence[ImportedEvent]
                         ) -> tuple[list[UUID], dict[UUID, UUID]]:
        """The event each external id already names, else a new stable id; and the
        place each known event has now."""
        rows = (await conn.execute(text("""
            SELECT x.dataset, x.external_id, x.event_id, e.place_id FROM event_external_ids x
              JOIN unnest(CAST(:datasets AS text[]), CAST(:ids AS text[])) AS k(dataset, external_id)
             USING (dataset, external_id)
              JOIN events e ON e.id = x.event_id"""),
            {"datasets": [e.dataset for e in batch], "ids": [e.external_id for e in batch]})).all()
        known = {(r.dataset, r.external_id): r.event_id for r in rows}
        ids = [known.get((e.dataset, e.external_id)) or import_id("event", f"{e.dataset}:{e.external_id}")
               for e in batch]
        return ids, {r.event_id: r.place_id for r in rows}

    async def _not_seen_before(self, conn: AsyncConnection, batch: list[ImportedEvent], report: ImportReport
                               ) -> list[ImportedEvent]:
        """The events whose id no earlier batch of this import had (the ids seen are kept
        in a session table, not in memory: a million rows stay flat)."""
        await self._session_table(conn, "import_seen_ids",
                                  "dataset text, external_id text, line int, PRIMARY KEY (dataset, external_id)")
        params = {"datasets": [e.dataset for e in batch], "ids": [e.external_id for e in batch],
                  "lines": [e.line for e in batch]}
        fresh = {(r.dataset, r.external_id) for r in await conn.execute(text("""
            INSERT INTO import_seen_ids
            SELECT * FROM unnest(CAST(:datasets AS text[]), CAST(:ids AS text[]), CAST(:lines AS int[]))
            ON CONFLICT DO NOTHING RETURNING dataset, external_id"""), params)}
        if len(fresh) == len(batch):
            return batch
        earlier = {(r.dataset, r.external_id): r.line for r in await conn.execute(text("""
            SELECT s.* FROM import_seen_ids s
              JOIN unnest(CAST(:datasets AS text[]), CAST(:ids AS text[])) AS k(dataset, external_id)
             USING (dataset, external_id)"""), params)}
        kept = []
        for e in batch:
            if (e.dataset, e.external_id) in fresh:
                kept.append(e)
            else:
                report.reject(e.line, f"id {e.external_id} was already on line {earlier[(e.dataset, e.external_id)]}; "
                                      "the first row is imported")
        return kept

    async def _number_repeated_rows(self, conn: AsyncConnection, batch: list[ImportedEvent]) -> None:
        """Rows with their id from the row itself that the file repeats verbatim: the
        first keeps its id, the next ones get `-2`, `-3`... in file order (how many rows
        each such id has had so far is kept in a session table, like the ids seen)."""
        from_row = [e for e in batch if e.id_from_row]
        if not from_row:
            return
        await self._session_table(conn, "import_row_counts", "dataset text, external_id text, "
                                  "occurrences int NOT NULL, PRIMARY KEY (dataset, external_id)")
        in_batch = Counter((e.dataset, e.external_id) for e in from_row)
        keys = sorted(in_batch)
        totals = await conn.execute(text("""
            INSERT INTO import_row_counts AS c
            SELECT * FROM unnest(CAST(:datasets AS text[]), CAST(:ids AS text[]), CAST(:counts AS int[]))
            ON CONFLICT (dataset, external_id) DO UPDATE SET occurrences = c.occurrences + excluded.occurrences
            RETURNING dataset, external_id, occurrences"""),
            {"datasets": [d for d, _ in keys], "ids": [i for _, i in keys], "counts": [in_batch[k] for k in keys]})
        so_far = {(r.dataset, r.external_id): r.occurrences - in_batch[(r.dataset, r.external_id)] for r in totals}
        for e in from_row:
            key = (e.dataset, e.external_id)
            so_far[key] += 1
            if so_far[key] > 1:
                e.number(so_far[key])

    async def _loadable(self, conn: AsyncConnection, batch: list[ImportedEvent], report: ImportReport
                        ) -> list[ImportedEvent]:
        """The events whose (type, sub-type) the knowledge base's taxonomy has (written
        as it writes them, case aside) and whose names can be matched; the others are
        rejected."""
        if self.taxonomy is None:
            rows = await conn.execute(text("SELECT event_type, name FROM sub_event_types"))
            self.taxonomy = {(t.lower(), s.lower()): (t, s) for t, s in rows}
        kept = []
        for e in batch:
            pair = self.taxonomy.get((e.event_type.lower(), e.sub_event_type.lower()))
            if pair is None:
                report.reject(e.line, f"event_type {e.event_type!r} / sub_event_type {e.sub_event_type!r} "
                                      "is not a pair of the ACLED taxonomy")
                continue
            if e.date_start > dt.date.today():
                report.reject(e.line, f"date {e.date_start} is in the future")
                continue
            nameless = next((f"{what} {name!r}" for what, name in _names(e) if not normalize_name(name)), None)
            if nameless:
                report.reject(e.line, f"{nameless} has no letter or digit to match it by")
                continue
            e.event_type, e.sub_event_type = pair
            kept.append(e)
        return kept

    async def prepare(self, conn: AsyncConnection, batch: list[ImportedEvent], report: ImportReport
                      ) -> PreparedBatch | None:
        """A batch's rows made ready to write (None: none is left to write): the rows
        rejected, the events' ids found or made, their places and actors matched (or made,
        to be inserted by `write_references`). It writes nothing but this session's own tables (the
        ids seen), so batches could be prepared apart from where they are written."""
        await self._number_repeated_rows(conn, batch)
        batch = await self._loadable(conn, await self._not_seen_before(conn, _first_of_each_id(batch, report),
                                                                      report), report)
        if not batch:
            return None
        event_ids, current_places = await self._event_ids(conn, batch)
        new_places: list[dict] = []
        place_ids = await self._place_ids(conn, batch, event_ids, current_places, new_places)
        refs = [ref for e in batch for ref in (*e.participants, *e.perpetrators, *e.targets,
                                               *((e.recorder,) if e.recorder else ()))]
        refs += [ActorRef(s.publisher, "unknown") for e in batch for s in e.sources]
        new_actors: list[dict] = []
        new_externals: list[dict] = []
        actor_ids = await self._actor_ids(conn, refs, new_actors, new_externals)
        report.created["places"] += len(new_places)
        report.created["actors"] += len(new_actors)

        events, documents, claims, participants = _rows(batch, event_ids, place_ids, actor_ids)
        return PreparedBatch(batch[0].dataset, [e.external_id for e in batch], event_ids, new_places, new_actors,
                             new_externals, events, documents, claims, participants)

    async def write_references(self, conn: AsyncConnection, prepared: PreparedBatch, report: ImportReport) -> None:
        """The places and actors a prepared batch makes, which later batches refer to:
        a load writing batches in parallel commits them first, in file order
        (db/imports/run.py)."""
        await self._insert_places_and_actors(conn, prepared)

    async def write_events(self, conn: AsyncConnection, prepared: PreparedBatch, report: ImportReport,
                           take_turn: Callable[[], Awaitable[object]] | None = None) -> set[UUID]:
        """A prepared batch's documents, events, claims, roles and external ids, and the
        figures derived (its places and actors written); the events inserted or changed,
        to `link`. `take_turn`, if given, is awaited before the batch first changes a stored row (a
        batch that takes its place in commit order at its end takes it there instead,
        db/imports/run.py). (Its documents are here, not with the places: a document
        changes with its claims, so the change feed lists it in the claims' transaction
        either way.)"""
        dataset, event_ids, events, claims, participants = (prepared.dataset, prepared.event_ids, prepared.events,
                                                            prepared.claims, prepared.participants)
        await _stage(conn, "documents", prepared.documents)
        report.created["documents"] += sum(r.inserted for r in await _upsert_staged(conn, "documents", "id",
                                                                                   take_turn))
        # New events go in finished, derived in staging (db/derive.py): one version of
        # each row. Those already stored are upserted and, where changed, recomputed.
        stored = set(await conn.scalars(text("SELECT id FROM events WHERE id = ANY(:ids)"), {"ids": event_ids}))
        if stored and take_turn:  # their parts are changed below, the rows they name locked
            await take_turn()
        inserted = set(event_ids) - stored
        await self._insert_new_events(conn, inserted, dataset, events, participants, claims)
        stored_ids = [i for i in event_ids if i in stored]
        await _stage(conn, "events", [e for e in events if e["id"] in stored])
        # (the stored events' and their claims' upserts: the turn is taken above)
        changed = {r.id for r in await _upsert_staged(conn, "events", "id")}
        await conn.execute(text("""
            INSERT INTO event_external_ids (dataset, external_id, event_id)
            SELECT * FROM unnest(CAST(:datasets AS text[]), CAST(:ids AS text[]), CAST(:events AS uuid[]))
            ON CONFLICT DO NOTHING"""), {"datasets": [dataset] * len(event_ids), "ids": prepared.external_ids,
                                         "events": event_ids})
        changed |= await self._sync_participants(conn, stored_ids, dataset,
                                                 [p for p in participants if p[0] in stored])
        await _stage(conn, "claims", [c for c in claims if c["event_id"] in stored])
        changed |= {r.event_id for r in await _upsert_staged(conn, "claims", "event_id")}
        removed = await conn.execute(text("""
            DELETE FROM claims c
             WHERE c.event_id = ANY(:events) AND c.dataset = ANY(:datasets)
               AND NOT EXISTS (SELECT 1 FROM import_claims i WHERE i.id = c.id)
            RETURNING c.event_id"""), {"events": stored_ids, "datasets": [dataset]})
        changed |= {r.event_id for r in removed}
        await self._drop_unsupported_roles(conn, changed)
        await recompute_events(conn, sorted(changed))
        report.inserted += len(inserted)
        report.updated += len(changed)
        report.unchanged += len(event_ids) - len(inserted) - len(changed)
        return inserted | changed

    async def link(self, conn: AsyncConnection, dataset: str, event_ids: set[UUID], report: ImportReport) -> None:
        """These events of `dataset` (written by write_events) matched with other sources'
        events, linked and grouped into happenings (db/linking.py)."""
        linking_started = time.perf_counter()
        if not self.candidates_taken:  # other sources' events (and the crosswalk as shipped), once per import
            await load_crosswalk(conn)
            await snapshot_other_sources(conn, {dataset})
            self.candidates_taken = True
        await match_events(conn, event_ids, among_snapshot=True)
        report.linking_seconds += time.perf_counter() - linking_started

    async def _insert_new_events(self, conn: AsyncConnection, new: set[UUID], dataset: str, events: list[dict],
                                 participants: list[tuple[UUID, UUID]], claims: list[dict]) -> None:
        """The batch's events not stored yet (`new`), with their participants and claims,
        staged, derived and inserted (db/derive.py's insert_staged_events)."""
        if not new:
            return
        await empty_staging(conn)
        await copy_rows(conn, "new_events", _STAGED["events"], [e for e in events if e["id"] in new])
        await copy_rows(conn, "new_event_actors", ("event_id", "actor_id", "role", "dataset"),
                        [{"event_id": event, "actor_id": actor, "role": "participant", "dataset": dataset}
                         for event, actor in sorted(set(participants)) if event in new])
        await copy_rows(conn, "new_claims", _STAGED["claims"], [c for c in claims if c["event_id"] in new])
        await insert_staged_events(conn)

    async def _sync_participants(self, conn: AsyncConnection, event_ids: list[UUID], dataset: str,
                                 participants: list[tuple[UUID, UUID]]) -> set[UUID]:
        """Make the participant roles this dataset listed for the batch's events exactly
        the rows' sides (roles others added stay); the events changed."""
        params = {"events": event_ids, "dataset": dataset,
                  "pe": [p[0] for p in participants], "pa": [p[1] for p in participants]}
        removed = await conn.execute(text("""
            DELETE FROM event_actors ea
             WHERE ea.event_id = ANY(:events) AND ea.role = 'participant' AND ea.dataset = :dataset
               AND (ea.event_id, ea.actor_id) NOT IN (
                   SELECT * FROM unnest(CAST(:pe AS uuid[]), CAST(:pa AS uuid[])))
            RETURNING ea.event_id"""), params)
        added = await conn.execute(text("""
            INSERT INTO event_actors (event_id, actor_id, role, dataset)
            SELECT DISTINCT e, a, 'participant', :dataset
              FROM unnest(CAST(:pe AS uuid[]), CAST(:pa AS uuid[])) AS p(e, a)
             ORDER BY 1, 2
            ON CONFLICT DO NOTHING
            RETURNING event_id"""), params)
        return {r.event_id for r in removed} | {r.event_id for r in added}

    async def _drop_unsupported_roles(self, conn: AsyncConnection, event_ids: set[UUID]) -> None:
        """Perpetrators and targets of these (imported, changed) events that no claim
        names any more: a row that changed its type or sides leaves none behind."""
        await conn.execute(text("""
            DELETE FROM event_actors ea
             WHERE ea.event_id = ANY(:events) AND ea.role IN ('perpetrator', 'target') AND ea.dataset IS NULL
               AND NOT EXISTS (SELECT 1 FROM claims c
                                WHERE c.event_id = ea.event_id AND c.predicate = ea.role
                                  AND c.value_actor_id = ea.actor_id)"""), {"events": sorted(event_ids)})


def _rows(batch: Sequence[ImportedEvent], event_ids: Sequence[UUID], place_ids: Sequence[UUID],
          actor_ids: dict[ActorRef, UUID]) -> tuple[list[dict], list[dict], list[dict], list[tuple[UUID, UUID]]]:
    """A batch's events, documents, claims and participants (event id, actor id) as rows."""
    events, documents, claims, participants = [], {}, [], []
    for e, event_id, place_id in zip(batch, event_ids, place_ids):
        events.append({"id": event_id, "event_type": e.event_type, "sub_event_type": e.sub_event_type,
                       "type_of_violence": e.type_of_violence, "date_start": e.date_start,
                       "date_end": e.date_end, "date_precision": e.date_precision, "place_id": place_id,
                       "geo_precision": e.geo_precision, "latitude": e.latitude, "longitude": e.longitude,
                       "summary": e.summary})
        participants += [(event_id, actor_ids[a]) for a in e.participants]
        slot = f"{e.dataset}:{e.external_id}"
        for i, source in enumerate(e.sources):
            publisher = actor_ids[ActorRef(source.publisher, "unknown")]
            document = _source_document(source, publisher)
            documents[document["id"]] = document
            claims.append({"id": import_id("claim", f"{slot}:source:{i}"), "event_id": event_id,
                           "claimant_id": publisher, "document_id": document["id"], "predicate": "occurred",
                           "stance": "asserts", "value_low": None, "value_best": None, "value_high": None,
                           "value_actor_id": None, "quote": source.title, "dataset": e.dataset})
        if e.recorder is None:
            continue
        recorder = actor_ids[e.recorder]
        record = {"id": import_id("document", f"record:{slot}"), "publisher": e.recorder.name,
                  "publisher_actor_id": recorder, "title": e.record_title, "url": e.record_url,
                  "published_at": None}
        documents[record["id"]] = record
        for predicate, figures in (("fatalities", e.fatalities), ("civilian_fatalities", e.civilian_fatalities)):
            if figures is not None:
                claims.append(_figures_claim(e, event_id, predicate, figures, recorder, record["id"]))
        for role, sides in (("perpetrator", e.perpetrators), ("target", e.targets)):
            for i, side in enumerate(sides):
                claims.append({"id": import_id("claim", f"{slot}:{role}:{i}"), "event_id": event_id,
                               "claimant_id": recorder, "document_id": record["id"], "predicate": role,
                               "stance": "asserts", "value_low": None, "value_best": None, "value_high": None,
                               "value_actor_id": actor_ids[side], "quote": f"{role}: {side.name}",
                               "dataset": e.dataset})
    return events, list(documents.values()), claims, participants


def _names(e: ImportedEvent) -> Iterator[tuple[str, str]]:
    """The names an event is matched by, with what each names."""
    for what in ("country", "admin1", "admin2", "location"):
        if getattr(e, what):
            yield what, getattr(e, what)
    for actor in (*e.participants, *e.perpetrators, *e.targets):
        yield "actor", actor.name
    for source in e.sources:
        yield "source", source.publisher


def _first_of_each_id(batch: list[ImportedEvent], report: ImportReport) -> list[ImportedEvent]:
    """A file naming one event twice: the first row is imported, a later one rejected."""
    first: dict[tuple[str, str], ImportedEvent] = {}
    kept = []
    for e in batch:
        earlier = first.setdefault((e.dataset, e.external_id), e)
        if earlier is e:
            kept.append(e)
        else:
            report.reject(e.line, f"id {e.external_id} was already on line {earlier.line}; the first row is imported")
    return kept
