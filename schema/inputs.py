"""GraphQL inputs, turned into the same filter objects REST uses."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from enum import Enum
from typing import Any

import strawberry

from db.filters import (
    ATTRIBUTION_STATUSES,
    FILTER_FIELDS,
    NESTING,
    Collapse as CollapseValues,
    EventFilter,
    FilterError,
    FilterField,
    FilterKind,
    Near,
    filter_of,
)
from schema.errors import bad_filter
from schema.types import AttributionStatus

# (its parts as db.filters.Near names them: latitude, longitude, radiusKm)
NearInput = strawberry.input(type("NearInput", (), {
    "__annotations__": {part.name: float for part in dataclasses.fields(Near)}}),
    description="A point and a great-circle radius in km.")

# GraphQL's enum of a CHOICES field's values.
_CHOICE_ENUMS: dict[tuple[str, ...], type[Enum]] = {ATTRIBUTION_STATUSES: AttributionStatus}
assert all(tuple(v.value for v in enum) == choices for choices, enum in _CHOICE_ENUMS.items())

# GraphQL's form of each kind of filter field (db.filters.FilterKind).
_GRAPHQL_FORMS: dict[FilterKind, Any] = {
    FilterKind.DATE: dt.date, FilterKind.NAMES: list[str], FilterKind.COUNT: int, FilterKind.FLAG: bool,
    FilterKind.BBOX: list[float], FilterKind.NEAR: NearInput, FilterKind.TEXT: str}


def _graphql_form(spec: FilterField) -> Any:
    if spec.kind is FilterKind.CHOICES:
        return list[_CHOICE_ENUMS[spec.choices]]  # type: ignore[valid-type]
    return _GRAPHQL_FORMS[spec.kind]


# How a value in GraphQL's form becomes the filter's (db.filters.filter_of); others are the same.
_FILTER_VALUES: dict[FilterKind, Callable[[Any], Any]] = {
    FilterKind.CHOICES: lambda choices: [choice.value for choice in choices], FilterKind.NEAR: dataclasses.asdict}


def _values(self: Any) -> dict[str, Any]:
    """This input's values by the filter's names, nested ones included."""
    values = {name: _FILTER_VALUES.get(spec.kind, lambda value: value)(value)
              for name, spec in FILTER_FIELDS.items() if (value := getattr(self, name)) is not None}
    return values | {"_and": [w.values() for w in self.all_of or ()], "_or": [w.values() for w in self.any_of or ()],
                     "_not": self.none_of.values() if self.none_of is not None else None}


def _to_filter(self: Any, argument: str = "where") -> EventFilter:
    """The filter, checked by its model; a refusal names the field under `argument`."""
    try:
        return filter_of(self.values())
    except FilterError as exc:
        raise bad_filter(exc, within=argument) from exc


# Made from the filter's model (db.filters.EventFilter): a field per filter, with its
# description, then the nested filters.
EventWhere = strawberry.input(type("EventWhere", (), {
    "__module__": __name__,
    "__annotations__": {**{name: _graphql_form(spec) | None for name, spec in FILTER_FIELDS.items()},
                        "all_of": "list[EventWhere] | None", "any_of": "list[EventWhere] | None",
                        "none_of": "EventWhere | None"},
    **{name: strawberry.field(default=None, description=spec.description) for name, spec in FILTER_FIELDS.items()},
    **{name: strawberry.field(default=None, name=key) for name, key in NESTING.items()},
    "values": _values,
    "to_filter": _to_filter,
}), description="Event filters: the same as REST's, ANDed; lists OR within themselves.")


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
