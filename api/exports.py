"""The export formats: CSV with ACLED's columns, GeoJSON, NDJSON. Each writes the rows of
db/queries/export.py, chunk by chunk, as bytes; `GET /v1/events.{csv,geojson,ndjson}`
and `conflictkb export` both use them.

NDJSON and GeoJSON: one record per event, the same in both (one line of NDJSON; the
`properties` of a GeoJSON Feature, whose geometry is the Point [longitude, latitude],
or null for an event without coordinates), with the keys of db/queries/export.py's
EXPORT_FIELDS, or those of them a `fields` parameter names (GET /v1/events.ndjson?
fields=latitude,longitude: the explorer's map, ids and points only).

CSV: the columns of ACLED's API, in its order and lowercase, then ours (CSV_COLUMNS).
Where ACLED has a column we cannot fill truthfully it is there and empty, so tools
that read ACLED files read these:

  event_id_cnty      the ACLED id when the event came from ACLED; else its first external
                     id as dataset:id (`ucdp-ged:214797`); else our id
  event_date         date_start (the interval's end is date_end, at the end)
  year               of event_date
  time_precision     1 day, 2 week, 3 month or year (ACLED has no coarser code; see
                     date_precision at the end)
  disorder_type      from the sub-event type as ACLED assigns it: Political violence,
                     Demonstrations, "Political violence; Demonstrations" (excessive force
                     against protesters), Strategic developments
  event_type, sub_event_type
  actor1             the perpetrator with the firmest attribution (confirmed, alleged,
                     contested, unknown; then by name); an event with participants only
                     (a battle) has its first side here and its second in actor2
  assoc_actor_1      the other perpetrators, `; `-separated, in that order
  inter1             empty (ACLED's actor type codes are not kept)
  actor2             the first target, same order; assoc_actor_2 the other targets
  inter2, interaction  empty
  civilian_targeting "Civilian targeting" when a target is civilians, else empty
  iso                the country's ISO 3166 alpha-3 code (ACLED gives the numeric code,
                     which the knowledge base does not hold)
  region             empty
  country, admin1, admin2   names of the areas the event's place lies in
  admin3             empty
  location           the event's place
  latitude, longitude  the event's point, else its place's
  geo_precision      1 exact, 2 near or district (admin2), 3 province (admin1), region,
                     country, water or airspace (see location_precision)
  source             the names of the sources that made claims, `; `-separated
  source_scale       empty
  notes              the summary
  fatalities         the best estimate (empty when no source gives a figure)
  tags               empty
  timestamp          last change, in Unix seconds

then: id, external_ids (`; `-separated dataset:id), date_end, date_precision (day,
week, month, year), location_precision (exact, near, admin2, admin1, region, country,
water_airspace), type_of_violence (UCDP: 1 state-based, 2 non-state, 3 one-sided),
fatalities_low, fatalities_high (empty: no upper bound, "over two dozen"),
civilian_fatalities_low, civilian_fatalities_best, civilian_fatalities_high,
actor1_status, assoc_actor_1_status, actor2_status, assoc_actor_2_status (the
attribution status of each actor named in that column, `; `-separated in the same
order), participants (actors taking part otherwise, `; `-separated), place_id,
admin2_id, admin1_id, country_id.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Row


ACLED_COLUMNS = (
    "event_id_cnty", "event_date", "year", "time_precision", "disorder_type", "event_type", "sub_event_type",
    "actor1", "assoc_actor_1", "inter1", "actor2", "assoc_actor_2", "inter2", "interaction", "civilian_targeting",
    "iso", "region", "country", "admin1", "admin2", "admin3", "location", "latitude", "longitude", "geo_precision",
    "source", "source_scale", "notes", "fatalities", "tags", "timestamp",
)
CSV_COLUMNS = ACLED_COLUMNS + (
    "id", "external_ids", "date_end", "date_precision", "location_precision", "type_of_violence",
    "fatalities_low", "fatalities_high", "civilian_fatalities_low", "civilian_fatalities_best",
    "civilian_fatalities_high", "actor1_status", "assoc_actor_1_status", "actor2_status", "assoc_actor_2_status",
    "participants", "place_id", "admin2_id", "admin1_id", "country_id",
)

# ACLED's time_precision: 1 the day, 2 the week, 3 the month (or coarser).
ACLED_TIME_PRECISION = {"day": 1, "week": 2, "month": 3, "year": 3}
# ACLED's geo_precision: 1 the named town, 2 near it or a small part of a region, 3 a
# larger region (ACLED then gives the region's capital or a natural location in it).
ACLED_GEO_PRECISION = {"exact": 1, "near": 2, "admin2": 2, "admin1": 3, "region": 3, "country": 3,
                       "water_airspace": 3}
# ACLED's disorder_type, by event type; by sub-event type where they differ within one.
ACLED_DISORDER_TYPE = {
    "Battles": "Political violence",
    "Explosions/Remote violence": "Political violence",
    "Violence against civilians": "Political violence",
    "Protests": "Demonstrations",
    "Riots": "Demonstrations",
    "Strategic developments": "Strategic developments",
}
ACLED_DISORDER_TYPE_BY_SUB_EVENT = {
    "Excessive force against protesters": "Political violence; Demonstrations",
    "Mob violence": "Political violence",
}


def _event_id_cnty(external_ids: Sequence[str], event_id: str) -> str:
    for external in external_ids:
        if external.startswith("acled:"):
            return external.removeprefix("acled:")
    return external_ids[0] if external_ids else event_id


def _first_and_others(actors: list[dict], key: str) -> tuple[str | None, str]:
    """ACLED's actor1 and assoc_actor_1 (or actor2 and assoc_actor_2) from a role's actors."""
    if not actors:
        return None, ""
    return actors[0][key] or "", "; ".join(a[key] or "" for a in actors[1:])


def csv_row(row: Row) -> list[Any]:
    """One event as the values of CSV_COLUMNS (None is written as an empty field)."""
    # unpacked once (EXPORT_FIELDS' order): a Row's attributes cost a lookup each
    (event_id, external_ids, event_type, sub_event_type, type_of_violence, date_start, date_end, date_precision,
     country_id, country, iso3, admin1_id, admin1, admin2_id, admin2, place_id, place, _place_kind, latitude,
     longitude, geo_precision, fatalities_low, fatalities_best, fatalities_high, civilians_low, civilians_best,
     civilians_high, summary, actors, sources, updated_at) = row
    external_ids = external_ids or ()
    by_role: dict[str, list[dict]] = {"perpetrator": [], "target": [], "participant": []}
    for actor in actors or ():
        by_role[actor["role"]].append(actor)
    perpetrators, targets = by_role["perpetrator"], by_role["target"]
    if not perpetrators and not targets and by_role["participant"]:
        # a battle's sides, as ACLED writes them: the first in actor1, the second in actor2
        perpetrators, targets = by_role["participant"][:1], by_role["participant"][1:2]
        by_role["participant"] = by_role["participant"][2:]
    actor1, assoc_actor_1 = _first_and_others(perpetrators, "name")
    actor2, assoc_actor_2 = _first_and_others(targets, "name")
    actor1_status, assoc_actor_1_status = _first_and_others(perpetrators, "status")
    actor2_status, assoc_actor_2_status = _first_and_others(targets, "status")
    return [
        _event_id_cnty(external_ids, event_id), date_start, date_start.year, ACLED_TIME_PRECISION[date_precision],
        ACLED_DISORDER_TYPE_BY_SUB_EVENT.get(sub_event_type) or ACLED_DISORDER_TYPE.get(event_type),
        event_type, sub_event_type, actor1, assoc_actor_1, None, actor2, assoc_actor_2, None, None,
        "Civilian targeting" if any(a["kind"] == "civilians" for a in targets) else None,
        iso3, None, country, admin1, admin2, None, place, latitude, longitude, ACLED_GEO_PRECISION[geo_precision],
        "; ".join(sources or ()), None, summary, fatalities_best, None, int(updated_at.timestamp()),
        # ours
        event_id, "; ".join(external_ids), date_end, date_precision, geo_precision, type_of_violence,
        fatalities_low, fatalities_high, civilians_low, civilians_best, civilians_high,
        actor1_status, assoc_actor_1_status, actor2_status, assoc_actor_2_status,
        "; ".join(a["name"] for a in by_role["participant"]), place_id, admin2_id, admin1_id, country_id,
    ]


# The list fields, [] where an event has none (PostgreSQL's aggregates give null).
_LIST_FIELDS = ("external_ids", "actors", "sources")


def records(rows: Sequence[Row]) -> Iterator[tuple[Row, dict[str, Any]]]:
    """Each event with its NDJSON record and GeoJSON properties: the fields its row
    holds (EXPORT_FIELDS, or those a `fields` parameter chose)."""
    if not rows:
        return
    names = tuple(map(str, rows[0]._fields))  # plain str, as JSON keys want them
    lists = [name for name in _LIST_FIELDS if name in names]
    for row in rows:
        fields = dict(zip(names, row))
        for name in lists:
            fields[name] = fields[name] or []
        yield row, fields


def _csv_lines(rows: Iterable[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    # RFC 4180: CRLF line ends; a field with a comma, a quote or a line break is quoted
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode()


# A chunk's JSON is gathered in one buffer as each event's is made: orjson's bytes keep
# spare capacity, and a list of a chunk's 1,000 of them held 17 MB for 1.2 MB of text.


def _ndjson_lines(rows: Sequence[Row]) -> bytes:
    out = bytearray()
    for _row, fields in records(rows):
        out += orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)
    return bytes(out)


def _features(rows: Sequence[Row]) -> bytes:
    out = bytearray()
    for row, fields in records(rows):
        if out:
            out += b",\n"
        geometry = ({"type": "Point", "coordinates": [row.longitude, row.latitude]}
                    if row.latitude is not None else None)
        out += orjson.dumps({"type": "Feature", "id": row.id, "geometry": geometry, "properties": fields})
    return bytes(out)


@dataclass(frozen=True)
class ExportFormat:
    """A file format: what comes before the rows, each chunk of rows encoded, what
    goes between two chunks and after the last."""

    name: str
    media_type: str
    description: str
    encode: Callable[[Sequence[Row]], bytes]
    # Its records can be narrowed to the fields a client names (`fields=`), and these
    # are then always among them (a GeoJSON Feature's id and point); None: never.
    sparse_fields_need: frozenset[str] | None = None
    head: bytes = b""
    between_chunks: bytes = b""
    tail: bytes = b""

    @property
    def filename(self) -> str:
        return f"events.{self.name}"


EXPORT_FORMATS = {f.name: f for f in (
    ExportFormat("csv", "text/csv; charset=utf-8",
                 "CSV with ACLED's columns (lowercase, in ACLED's order), then the knowledge base's own.",
                 lambda rows: _csv_lines(map(csv_row, rows)), head=_csv_lines([CSV_COLUMNS])),
    ExportFormat("geojson", "application/geo+json",
                 "A GeoJSON FeatureCollection: one Feature per event, a Point at its coordinates (null without).",
                 _features, sparse_fields_need=frozenset({"id", "latitude", "longitude"}),
                 head=b'{"type":"FeatureCollection","features":[\n', between_chunks=b",\n",
                 tail=b"\n]}\n"),
    ExportFormat("ndjson", "application/x-ndjson",
                 "Newline-delimited JSON: one object per event per line.", _ndjson_lines,
                 sparse_fields_need=frozenset({"id"})),
)}


async def export_body(export_format: ExportFormat, chunks: AsyncIterator[Sequence[Row]]) -> AsyncIterator[bytes]:
    """The file, piece by piece as the chunks of rows arrive. Closing it closes `chunks`
    (and so the cursor under them) at once, not when the garbage collector gets to it."""
    async with aclosing(chunks):
        yield export_format.head
        between = b""
        async for rows in chunks:
            yield between + export_format.encode(rows)
            between = export_format.between_chunks
        yield export_format.tail
