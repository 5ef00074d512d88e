"""UCDP GED rows (the Syria extract in seeds/ and the full release's layout) as events.

Mapping (columns by name; the full release's extra columns are read where useful and
otherwise ignored):
- `id` -> the event's external id `ucdp-ged:<id>`.
- `type_of_violence` 1 (state-based) and 2 (non-state) -> Battles / Armed clash, with
  `side_a` and `side_b` as participants; 3 (one-sided violence) -> Violence against
  civilians / Attack, UCDP asserting `side_a` as perpetrator and `side_b` as target.
  Sides keep their UCDP ids (`side_a_new_id`, `side_b_new_id`) as `ucdp-actor` ids.
- `date_start`, `date_end` (`2018-05-01` or `2018-05-01 00:00:00.000`); `date_prec`
  1 -> day, 2-3 -> week, 4 -> month, 5 -> year, or coarser when the interval is longer
  than the precision allows.
- `country` > `adm_1` > `adm_2` > `where_coordinates` to the place hierarchy;
  `where_prec` 1-7 to the geo precisions of the same ranks (exact, near, admin2,
  admin1, region, country, water_airspace); `latitude`, `longitude` (required).
- Each `;`-separated source entry (`source_office`, `source_date`, `source_headline`,
  `source_article`) -> a document and an `occurred` claim by its publisher, quoting the
  headline.
- `low` / `best` / `high` -> a fatalities claim, and `deaths_civilians` a civilian
  fatalities claim, by UCDP in its record of the event. Where the best lies outside
  low..high (about 100 rows of the Syria extract), the bounds are widened to hold it
  and the claim's quote keeps the figures as written.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re

from db.imports.records import ActorRef, Figures, Format, ImportedEvent, RowError, SourceReport
from db.imports.source_file import coordinate_field, int_field, text_field

DATASET = "ucdp-ged"
ACTOR_DATASET = "ucdp-actor"
REQUIRED_COLUMNS = ("id", "type_of_violence", "side_a", "side_b", "date_start", "date_end", "date_prec",
                    "where_prec", "country", "latitude", "longitude", "low", "best", "high")
UCDP = ActorRef("Uppsala Conflict Data Program", "monitor")

_VIOLENCE = {1: ("Battles", "Armed clash", "state-based conflict"),
             2: ("Battles", "Armed clash", "non-state conflict"),
             3: ("Violence against civilians", "Attack", "one-sided violence")}
_DATE_PRECISION = {1: "day", 2: "week", 3: "week", 4: "month", 5: "year"}
_GEO_PRECISION = {1: "exact", 2: "near", 3: "admin2", 4: "admin1", 5: "region", 6: "country", 7: "water_airspace"}
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[ T]00:00:00(?:\.0+)?)?")


def parse_date(value: str | None, name: str) -> dt.date:
    if value is None:
        raise RowError(f"{name} is empty")
    match = _DATE.fullmatch(value)
    if not match:
        raise RowError(f"{name} {value!r} is not a date (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        raise RowError(f"{name} {value!r} is not a date that exists") from None


def precision_of_interval(declared: str, start: dt.date, end: dt.date) -> str:
    """The declared date precision, or a coarser one if the interval needs it (the
    knowledge base holds `day` only for a single day)."""
    days = (end - start).days
    needed = "day" if days == 0 else "week" if days <= 7 else "month" if days <= 31 else "year"
    order = ("day", "week", "month", "year")
    return max(declared, needed, key=order.index)


def _side(row: dict[str, str], side: str) -> ActorRef:
    name = text_field(row, side, required=True)
    kind = "civilians" if name == "Civilians" else "state" if name.startswith("Government of ") else "armed_group"
    external = text_field(row, f"{side}_new_id") or text_field(row, f"{side}_dset_id")
    return ActorRef(name, kind, external, ACTOR_DATASET if external else None)


def _sources(row: dict[str, str]) -> list[SourceReport]:
    """One report per `;`-separated source entry. `source_article` quotes each entry as
    `"office,date,headline"` and is split as CSV (a headline may hold a `;`); the
    office and date come from their own columns."""
    offices = [o.strip() for o in (text_field(row, "source_office") or "").split(";")]
    dates = [d.strip() for d in (text_field(row, "source_date") or "").split(";")]
    article = html.unescape(text_field(row, "source_article") or "")
    entries = next(csv.reader(io.StringIO(article), delimiter=";"), []) if article else []
    headlines = html.unescape(text_field(row, "source_headline") or "").split(";")
    reports = []
    for i, office in enumerate(offices):
        if not office:
            continue
        published = dates[i] if i < len(dates) else None
        try:
            published_at = dt.date.fromisoformat(published) if published else None
        except ValueError:
            published_at = None  # a source's date is kept only when it is one
        if len(entries) == len(offices):
            title = entries[i].split(",", 2)[2] if entries[i].count(",") >= 2 else entries[i]
        elif len(headlines) == len(offices):
            title = headlines[i]
        else:
            title = None
        reports.append(SourceReport(office, published_at, (title or "").strip() or None))
    return reports


def parse_ucdp_row(row: dict[str, str], line: int) -> ImportedEvent:
    external_id = text_field(row, "id", required=True)
    if not external_id.isdigit():
        raise RowError(f"id {external_id!r} is not a UCDP event id")
    violence = int_field(row, "type_of_violence", required=True)
    if violence not in _VIOLENCE:
        raise RowError(f"type_of_violence {violence} is not 1, 2 or 3")
    event_type, sub_event_type, violence_name = _VIOLENCE[violence]
    start = parse_date(text_field(row, "date_start"), "date_start")
    end = parse_date(text_field(row, "date_end"), "date_end")
    if end < start:
        raise RowError(f"date_end {end} is before date_start {start}")
    date_prec = int_field(row, "date_prec", required=True)
    if date_prec not in _DATE_PRECISION:
        raise RowError(f"date_prec {date_prec} is not 1-5")
    where_prec = int_field(row, "where_prec", required=True)
    if where_prec not in _GEO_PRECISION:
        raise RowError(f"where_prec {where_prec} is not 1-7")
    latitude = coordinate_field(row, "latitude", 90)
    longitude = coordinate_field(row, "longitude", 180)
    low, best, high = (int_field(row, name, required=True) for name in ("low", "best", "high"))
    civilians = int_field(row, "deaths_civilians")

    side_a, side_b = _side(row, "side_a"), _side(row, "side_b")
    location = text_field(row, "where_coordinates")
    dyad = text_field(row, "dyad_name") or f"{side_a.name} - {side_b.name}"
    event = ImportedEvent(
        dataset=DATASET, external_id=external_id, line=line, event_type=event_type, sub_event_type=sub_event_type,
        date_start=start, date_end=end, date_precision=precision_of_interval(_DATE_PRECISION[date_prec], start, end),
        country=text_field(row, "country", required=True), admin1=text_field(row, "adm_1"),
        admin2=text_field(row, "adm_2"), location=location, geo_precision=_GEO_PRECISION[where_prec],
        latitude=latitude, longitude=longitude,
        summary=f"{dyad} ({violence_name})" + (f", {location}" if location else ""),
        type_of_violence=violence, sources=_sources(row),
        # ~0.6% of GED rows have a best outside low..high (low 177, best 142, high 177):
        # the bounds are widened to hold the best, and the claim quotes the row's figures
        fatalities=Figures(min(low, best), best, max(high, best), quote=f"low {low}, best {best}, high {high}"),
        civilian_fatalities=Figures(best=civilians) if civilians is not None else None,
        recorder=UCDP, record_title=f"UCDP GED event {external_id}")
    if violence == 3:
        event.perpetrators, event.targets = [side_a], [side_b]
    else:
        event.participants = [side_a, side_b]
    return event


UCDP_FORMAT = Format("UCDP GED", DATASET, REQUIRED_COLUMNS, parse_ucdp_row)
