"""GraphQL inputs, turned into the same filter objects REST uses."""

from __future__ import annotations

import dataclasses
import datetime as dt
from enum import Enum
from typing import Any

import strawberry

from db.filters import Collapse as CollapseValues, EventFilter, EventWhere as EventWhereGrammar
from schema.types import AttributionStatus


@strawberry.input(description="A point and a great-circle radius in km.")
class NearInput:
    latitude: float
    longitude: float
    radius_km: float


@strawberry.input(description="Event filters: the same as REST's, ANDed; lists OR within themselves.")
class EventWhere:
    date_from: dt.date | None = strawberry.field(default=None, description="Interval ends on or after.")
    date_to: dt.date | None = strawberry.field(default=None, description="Interval starts on or before.")
    country: list[str] | None = strawberry.field(default=None, description="ISO3/ISO2 code or name.")
    admin1: list[str] | None = None
    admin2: list[str] | None = None
    place: list[str] | None = strawberry.field(default=None, description="Place id or name, with all inside it.")
    event_type: list[str] | None = None
    sub_event_type: list[str] | None = None
    actor: list[str] | None = None
    perpetrator: list[str] | None = None
    target: list[str] | None = None
    claimant: list[str] | None = None
    attribution: list[AttributionStatus] | None = strawberry.field(
        default=None, description="Of the actors named by actor/perpetrator/target, else of any actor.")
    external_id: list[str] | None = None
    min_fatalities: int | None = None
    max_fatalities: int | None = None
    min_civilian_fatalities: int | None = None
    include_members: bool | None = strawberry.field(
        default=None, description="Actor filters also match members (at the event's date) and sub-units.")
    bbox: list[float] | None = strawberry.field(default=None, description="[minLon, minLat, maxLon, maxLat]")
    near: NearInput | None = None
    q: str | None = strawberry.field(default=None, description="Full-text search.")
    and_: list[EventWhere] | None = strawberry.field(default=None, name="_and")
    or_: list[EventWhere] | None = strawberry.field(default=None, name="_or")
    not_: EventWhere | None = strawberry.field(default=None, name="_not")

    def as_grammar(self) -> dict[str, Any]:
        """This input as the shared `where` grammar (db.filters.EventWhere)."""
        grammar: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if field.name in ("and_", "or_"):
                value = [w.as_grammar() for w in value]
            elif field.name == "not_":
                value = value.as_grammar()
            elif field.name == "near":
                value = dataclasses.asdict(value)
            elif field.name == "attribution":
                value = [a.value for a in value]
            grammar[{"and_": "_and", "or_": "_or", "not_": "_not"}.get(field.name, field.name)] = value
        return grammar

    def to_filter(self) -> EventFilter:
        return EventWhereGrammar.model_validate(self.as_grammar()).to_filter()


@strawberry.enum
class EventOrder(Enum):
    DATE_DESC = "-date"
    DATE_ASC = "date"
    FATALITIES_DESC = "-fatalities"
    FATALITIES_ASC = "fatalities"
    RELEVANCE = "relevance"
    DISTANCE = "distance"


@strawberry.enum(description="What eventStats groups by (REST's group_by names, upper case).")
class StatDimension(Enum):
    COUNTRY = "country"
    ADMIN1 = "admin1"
    ADMIN2 = "admin2"
    YEAR = "year"
    MONTH = "month"
    WEEK = "week"
    DAY = "day"
    EVENT_TYPE = "event_type"
    SUB_EVENT_TYPE = "sub_event_type"
    PERPETRATOR = "perpetrator"
    CLAIMANT = "claimant"


Collapse = strawberry.enum(CollapseValues, description=(
    "HAPPENING: the matching events folded by happening (records of several sources linked as one): `events` "
    "gives each happening's first matching record in its order, totalCount and eventStats count happenings."))
