"""GraphQL inputs, turned into the same filter objects REST uses."""

from __future__ import annotations

import datetime as dt
from enum import Enum

import strawberry

from db.filters import EventFilter
from schema.types import AttributionStatus


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
    attribution: list[AttributionStatus] | None = None
    external_id: list[str] | None = None
    min_fatalities: int | None = None
    max_fatalities: int | None = None
    min_civilian_fatalities: int | None = None
    and_: list[EventWhere] | None = strawberry.field(default=None, name="_and")
    or_: list[EventWhere] | None = strawberry.field(default=None, name="_or")
    not_: EventWhere | None = strawberry.field(default=None, name="_not")

    def to_filter(self) -> EventFilter:
        def many(values) -> tuple[str, ...]:
            return tuple(values or ())

        return EventFilter(
            date_from=self.date_from, date_to=self.date_to, country=many(self.country), admin1=many(self.admin1),
            admin2=many(self.admin2), place=many(self.place), event_type=many(self.event_type),
            sub_event_type=many(self.sub_event_type), actor=many(self.actor), perpetrator=many(self.perpetrator),
            target=many(self.target), claimant=many(self.claimant),
            attribution=tuple(a.value for a in self.attribution or ()), external_id=many(self.external_id),
            min_fatalities=self.min_fatalities, max_fatalities=self.max_fatalities,
            min_civilian_fatalities=self.min_civilian_fatalities,
            all_of=tuple(w.to_filter() for w in self.and_ or ()),
            any_of=tuple(w.to_filter() for w in self.or_ or ()),
            none_of=self.not_.to_filter() if self.not_ else None,
        )


@strawberry.enum
class EventOrder(Enum):
    DATE_DESC = "-date"
    DATE_ASC = "date"
    FATALITIES_DESC = "-fatalities"
    FATALITIES_ASC = "fatalities"
