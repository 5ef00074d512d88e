"""ACLED exports as events: the API's lowercase columns and the uppercase headers of
older exports (columns are matched case-insensitively; `ally_actor_1/2` of old exports
are `assoc_actor_1/2`).

Mapping:
- `event_id_cnty` -> the external id `acled:<id>`. Without that column (or with it
  empty) the id is derived from the whole row, `acled:row-<16 hex>`: a SHA-1 of every
  column that has a value, as (name, stripped value) in name order, names lowercased
  and `ally_actor_1/2` read as `assoc_actor_1/2`. Rows that differ in any column
  (fatalities, associated actors, inter codes, precisions...) are two events, and a
  row keeps its id in either header spelling. An empty column counts as absent (the
  mapping reads an empty value as none), so an export that adds a column and leaves
  it empty keeps the ids. Rows identical in every column are each an event too: the
  first is `row-<hex>`, the next `row-<hex>-2`, `-3`... in file order (numbered by the
  loader, which counts them per import), so re-importing the same file writes nothing.
  A row changed in any column, a revised fatality count included, is another event:
  without ACLED's id, a file cannot tell a revision from a second event.
- `event_date` as `2022-01-05`, `05 January 2022` or `05-Jan-22`; `time_precision` 1 ->
  that day, 2 -> the week around it (3 days either side), 3 -> its month.
- `event_type` / `sub_event_type` (ACLED's taxonomy is ours). Exports from before the
  2019 taxonomy have only an event type; those are mapped to the nearest pair (below).
- `country` > `admin1` > `admin2` > `location`; `geo_precision` 1 -> exact, 2 -> near,
  3 -> admin1 (ACLED uses the provincial capital); `latitude`, `longitude` (required).
- `actor1` / `actor2`: for Violence against civilians and Explosions/Remote violence,
  ACLED asserts actor1 as perpetrator and actor2 as target; otherwise both are
  participants, as are the `;`-separated `assoc_actor_1/2`. `inter1/2` (codes 1-8, or
  the newer labels) give a new actor's kind.
- `source` split on `;`: each a document and an `occurred` claim by that publisher.
- `fatalities` -> a fatalities claim by ACLED (its one, conservative figure as best);
  `notes` -> the summary.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

from db.imports.records import ActorRef, Figures, Format, ImportedEvent, RowError, SourceReport
from db.imports.source_file import coordinate_field, int_field, text_field

DATASET = "acled"
REQUIRED_COLUMNS = ("event_date", "event_type", "actor1", "country", "latitude", "longitude")
ACLED = ActorRef("Armed Conflict Location & Event Data Project", "monitor")

_DATE_FORMATS = ("%Y-%m-%d", "%d %B %Y", "%d-%b-%y", "%d-%b-%Y", "%d %b %Y")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Event types of exports before the 2019 taxonomy, to the nearest (type, sub-type).
_OLD_EVENT_TYPES = {
    "battle-no change of territory": ("Battles", "Armed clash"),
    "battle-government regains territory": ("Battles", "Government regains territory"),
    "battle-non-state actor overtakes territory": ("Battles", "Non-state actor overtakes territory"),
    "remote violence": ("Explosions/Remote violence", "Shelling/artillery/missile attack"),
    "violence against civilians": ("Violence against civilians", "Attack"),
    "riots/protests": ("Protests", "Peaceful protest"),
    "strategic development": ("Strategic developments", "Other"),
    "headquarters or base established": ("Strategic developments", "Headquarters or base established"),
    "non-violent transfer of territory": ("Strategic developments", "Non-violent transfer of territory"),
}
_ONE_SIDED = {"violence against civilians", "explosions/remote violence"}
_INTER_KINDS = {1: "armed_forces", 2: "armed_group", 3: "militia", 4: "militia", 5: "unknown", 6: "civilians",
                7: "civilians", 8: "armed_forces"}
_INTER_LABELS = {"state forces": 1, "rebel group": 2, "political militia": 3, "identity militia": 4, "rioters": 5,
                 "protesters": 6, "civilians": 7, "external/other forces": 8}
_GEO_PRECISION = {1: "exact", 2: "near", 3: "admin1"}
_OLD_NAMES = {"ally_actor_1": "assoc_actor_1", "ally_actor_2": "assoc_actor_2"}


def parse_acled_date(value: str | None) -> dt.date:
    if value is None:
        raise RowError("event_date is empty")
    if _ISO_DATE.fullmatch(value):  # the API's form, most files': 0.1 us where strptime takes 4
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise RowError(f"event_date {value!r} is not a date that exists") from None
    for form in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(value, form).date()
        except ValueError:
            continue
    if _ISO_DATE.fullmatch(value) or re.fullmatch(r"\d{1,2}( [A-Za-z]+ \d{4}|-[A-Za-z]{3}-\d{2,4})", value):
        raise RowError(f"event_date {value!r} is not a date that exists")
    raise RowError(f"event_date {value!r} is not a date (2022-01-05, 05 January 2022 or 05-Jan-22)")


def _interval(day: dt.date, precision: int | None) -> tuple[dt.date, dt.date, str]:
    if precision in (None, 1):
        return day, day, "day"
    if precision == 2:
        return day - dt.timedelta(days=3), day + dt.timedelta(days=3), "week"
    if precision == 3:
        first = day.replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
        return first, following - dt.timedelta(days=1), "month"
    raise RowError(f"time_precision {precision} is not 1, 2 or 3")


def _types(row: dict[str, str]) -> tuple[str, str]:
    """The row's (type, sub-type) as written (the loader checks them against the
    knowledge base's taxonomy, whatever their case), or the nearest pair of an old type."""
    event_type = text_field(row, "event_type", required=True)
    sub_event_type = text_field(row, "sub_event_type")
    if sub_event_type is not None:
        return event_type, sub_event_type
    if event_type.lower() in _OLD_EVENT_TYPES:
        return _OLD_EVENT_TYPES[event_type.lower()]
    raise RowError(f"sub_event_type is empty (event_type {event_type!r} is not one of the old types that need none)")


def _inter(row: dict[str, str], name: str) -> str:
    value = text_field(row, name)
    if value is None:
        return "unknown"
    code = int(value) if value.isdigit() else _INTER_LABELS.get(value.lower())
    return _INTER_KINDS.get(code, "unknown")


def _actor(name: str | None, kind: str) -> ActorRef | None:
    if name is None:
        return None
    return ActorRef(name, "civilians" if name.lower().startswith("civilians") else kind)


def _current_names(row: dict[str, str]) -> dict[str, str]:
    """The row with old exports' column names as the current ones (unless the file has
    the current column too: then both are columns and the current one is read)."""
    return {_OLD_NAMES[name] if name in _OLD_NAMES and _OLD_NAMES[name] not in row else name: value
            for name, value in row.items()}


def _derived_id(row: dict[str, str]) -> str:
    """`row-<16 hex>` of the row's columns with a value, by name (see the Mapping)."""
    stated = sorted((name, value.strip()) for name, value in row.items() if value.strip())
    return "row-" + hashlib.sha1(json.dumps(stated).encode()).hexdigest()[:16]


def parse_acled_row(row: dict[str, str], line: int) -> ImportedEvent:
    row = _current_names(row)
    stated_id = text_field(row, "event_id_cnty")
    external_id = stated_id or _derived_id(row)
    event_type, sub_event_type = _types(row)
    start, end, precision = _interval(parse_acled_date(text_field(row, "event_date")),
                                      int_field(row, "time_precision"))
    latitude = coordinate_field(row, "latitude", 90)
    longitude = coordinate_field(row, "longitude", 180)
    geo = int_field(row, "geo_precision")
    if geo is not None and geo not in _GEO_PRECISION:
        raise RowError(f"geo_precision {geo} is not 1, 2 or 3")
    fatalities = int_field(row, "fatalities")
    actor1 = _actor(text_field(row, "actor1", required=True), _inter(row, "inter1"))
    actor2 = _actor(text_field(row, "actor2"), _inter(row, "inter2"))
    associated = [ActorRef(name.strip(), _inter(row, f"inter{side}"))
                  for side in (1, 2) for name in (text_field(row, f"assoc_actor_{side}") or "").split(";")
                  if name.strip()]
    location = text_field(row, "location")
    event = ImportedEvent(
        dataset=DATASET, external_id=external_id, line=line, event_type=event_type, sub_event_type=sub_event_type,
        date_start=start, date_end=end, date_precision=precision,
        country=text_field(row, "country", required=True), admin1=text_field(row, "admin1"),
        admin2=text_field(row, "admin2"), location=location, geo_precision=_GEO_PRECISION[geo or 1],
        latitude=latitude, longitude=longitude,
        summary=text_field(row, "notes") or f"{sub_event_type}: {actor1.name}" + (f", {location}" if location else ""),
        sources=[SourceReport(name) for name in dict.fromkeys(  # (a source named twice is one source)
            n.strip() for n in (text_field(row, "source") or "").split(";") if n.strip())],
        fatalities=Figures(best=fatalities) if fatalities is not None else None,
        recorder=ACLED, record_title=f"ACLED event {external_id}", id_from_row=stated_id is None)
    if event_type.lower() in _ONE_SIDED:
        event.perpetrators = [actor1]
        event.targets = [actor2] if actor2 else []
        event.participants = associated
    else:
        event.participants = [actor1, *((actor2,) if actor2 else ()), *associated]
    return event


ACLED_FORMAT = Format("ACLED", DATASET, REQUIRED_COLUMNS, parse_acled_row)
