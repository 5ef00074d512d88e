"""The mutations' inputs: REST's write bodies with their fields in camelCase, turned
into the same pydantic models REST checks its bodies with (db/writes/inputs.py), so
a write obeys one set of rules whichever way it comes.

GraphQL has no input unions: where a REST body takes a place id or a new place, an
input has `place` and `newPlace` (a claim's document: `document` and `newDocument`),
and a claim's value is a ClaimValueInput holding figures, an actor, a place, a date or
a text. Fields a create needs are nullable all the same: GraphQL's own check of a
non-null field refuses the whole document before any resolver runs and names the
field only in its message, while the model names every missing and bad field at once,
in `extensions.errors`, as REST's 422 does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from enum import Enum
from typing import Any, Generic, TypeVar

import strawberry
from pydantic import BaseModel, ValidationError
from strawberry.utils.str_converters import to_camel_case as to_camel

from db.writes import FieldError
from db.writes import inputs as bodies
from schema.errors import bad_user_input
from schema.types import Stance

M = TypeVar("M", bound=BaseModel)
UNSET: Any = strawberry.UNSET

# GraphQL fields that stand for the "new record" form of a body field taking an id
# or a new record.
NEW_RECORD_FIELDS = {"new_place": "place", "new_document": "document"}


def _required(model: type[BaseModel]) -> str:
    """The fields a create needs (`model`'s required ones), as the input names them."""
    return ", ".join(to_camel(name) + (f" (or {to_camel(new)})" if (new := _new_record_field(name)) else "")
                     for name, field in model.model_fields.items() if field.is_required())


def _about(what: str, model: type[BaseModel], needs: str = "") -> str:
    """The description of an input both a create and an update take."""
    return (f"{what}'s fields: all of a new one's, or those to change (a null clears one). "
            + (needs or f"A create needs {_required(model)}."))


def _new_record_field(body_key: str) -> str | None:
    return next((field for field, key in NEW_RECORD_FIELDS.items() if key == body_key), None)


@strawberry.input(description=_about("A place", bodies.PlaceInput))
class PlaceInput:
    name: str | None = UNSET
    kind: str | None = strawberry.field(default=UNSET, description="country, admin1, admin2, area, locality.")
    parent: strawberry.ID | None = strawberry.field(default=UNSET, description="The place it lies in.")
    latitude: float | None = UNSET
    longitude: float | None = UNSET
    iso2: str | None = UNSET
    iso3: str | None = UNSET
    aliases: list[str] | None = UNSET


@strawberry.input(description=_about("An actor", bodies.ActorInput))
class ActorInput:
    name: str | None = UNSET
    kind: str | None = strawberry.field(default=UNSET, description="state, armed_forces, coalition, monitor, ...")
    parent: str | None = strawberry.field(default=UNSET, description="The actor it belongs to (id or name).")
    description: str | None = UNSET
    aliases: list[str] | None = UNSET


@strawberry.input(description=_about("A document", bodies.DocumentInput, "At least a publisher, a title or a url."))
class DocumentInput:
    publisher: str | None = UNSET
    publisher_actor: str | None = strawberry.field(default=UNSET, description="The publishing actor (id or name).")
    title: str | None = UNSET
    url: str | None = UNSET
    published_at: dt.date | None = UNSET
    language: str | None = UNSET
    excerpt: str | None = UNSET


@strawberry.input(description=_about("An event", bodies.EventInput))
class EventInput:
    event_type: str | None = strawberry.field(default=UNSET, description="ACLED event type.")
    sub_event_type: str | None = strawberry.field(default=UNSET, description="ACLED sub-event type of that type.")
    type_of_violence: int | None = UNSET
    date_start: dt.date | None = UNSET
    date_end: dt.date | None = strawberry.field(default=UNSET,
                                                description="Default: the end of the precision's period.")
    date_precision: str | None = strawberry.field(default=UNSET, description="day (default), week, month, year.")
    place: strawberry.ID | None = strawberry.field(default=UNSET, description="An existing place (or `newPlace`).")
    new_place: PlaceInput | None = strawberry.field(
        default=UNSET, description="A new place (found instead if one of that name and kind lies in that parent).")
    geo_precision: str | None = UNSET
    latitude: float | None = UNSET
    longitude: float | None = UNSET
    summary: str | None = UNSET


@strawberry.input(description="A claim's value, one of: figures (low, best, high) for the fatality predicates, "
                              "an actor (id or name) for perpetrator and target, a place for location, a date, "
                              "or a text (weapon).")
class ClaimValueInput:
    low: int | None = None
    best: int | None = None
    high: int | None = None
    actor: str | None = None
    place: strawberry.ID | None = None
    date: dt.date | None = None
    text: str | None = None

    def as_body(self) -> Any:
        """The value as a REST body gives it; ValueError unless it is exactly one value."""
        figures = {name: getattr(self, name) for name in ("low", "best", "high") if getattr(self, name) is not None}
        values = [v for v in ([figures] if figures else []) + [self.actor, self.place, self.date, self.text]
                  if v is not None]
        if len(values) != 1:
            raise ValueError("give one value: figures (low, best, high), actor, place, date or text")
        return values[0]


@strawberry.input(description="A change to a claim: its event and claimant stay.")
class ClaimPatch:
    via: str | None = strawberry.field(default=UNSET, description="Who relayed it (actor id or name).")
    speaker: str | None = UNSET
    document: strawberry.ID | None = strawberry.field(default=UNSET, description="An existing document.")
    new_document: DocumentInput | None = strawberry.field(default=UNSET, description="A new document.")
    predicate: str | None = strawberry.field(
        default=UNSET, description="occurred, fatalities, civilian_fatalities, perpetrator, target, weapon, "
                                   "location, date.")
    stance: Stance | None = UNSET
    value: ClaimValueInput | None = UNSET
    quote: str | None = UNSET


@strawberry.input(description=f"A new claim; it needs {_required(bodies.ClaimInput)}.")
class ClaimInput(ClaimPatch):
    event: strawberry.ID | None = strawberry.field(default=UNSET, description="Event id or external id.")
    claimant: str | None = strawberry.field(default=UNSET, description="Who makes the claim (actor id or name).")


def _body_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_body_value(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, ClaimValueInput):
        return value.as_body()
    if dataclasses.is_dataclass(value):
        # a new place or document: created, so a null is as good as absent (and it
        # has no field of two forms to disagree)
        return _body_fields(value, keep_nulls=False)[0]
    return value


def _body_fields(given: Any, *, keep_nulls: bool) -> tuple[dict[str, Any], list[FieldError]]:
    """The fields the client gave, as the REST body's (a patch keeps the nulls: they
    clear), and the problems no body could state (a place and a new place)."""
    body: dict[str, Any] = {}
    problems: list[FieldError] = []
    for field in dataclasses.fields(given):
        value = getattr(given, field.name)
        if value is UNSET or (value is None and not keep_nulls):
            continue
        key = NEW_RECORD_FIELDS.get(field.name, field.name)
        if key in body and value is None:
            continue  # `place: null` beside a `newPlace`
        if body.get(key) is not None:  # refused, but the new record is checked all the same
            problems.append(FieldError(f"input.{to_camel(field.name)}",
                                       f"give {to_camel(key)} or {to_camel(field.name)}, not both"))
        try:
            body[key] = _body_value(value)
        except ValueError as exc:
            problems.append(FieldError(f"input.{to_camel(field.name)}", str(exc)))
    return body, problems


def graphql_name(fields: dict[str, Any], path: Sequence[str | int]) -> str:
    """A body field's path (`place.parent`) as the client wrote it (`input.newPlace.parent`)."""
    names = ["input"]
    for depth, part in enumerate(path):
        if depth == 0 and isinstance(fields.get(part), dict) and _new_record_field(part):
            part = _new_record_field(part)
        names.append(str(part) if isinstance(part, int) else to_camel(part))
    return ".".join(names)


@dataclasses.dataclass
class WriteBody(Generic[M]):
    """A mutation's input as REST's body (`fields`) and as that body's model."""

    fields: dict[str, Any]
    model: M

    def graphql_errors(self, errors: Sequence[FieldError]) -> list[FieldError]:
        """db/writes' problems with the body, named as the client wrote the fields."""
        return [FieldError(graphql_name(self.fields, e.name.split(".")), e.reason) for e in errors]


@strawberry.input(description="A pair of events an editor judges (linkEvents, unlinkEvents), and why.")
class EventPairInput:
    event: strawberry.ID | None = strawberry.field(default=UNSET, description="An event: id or external id "
                                                                               "(REST: the one of the path).")
    other: strawberry.ID | None = strawberry.field(default=UNSET, description="The other event: id or external id.")
    note: str | None = strawberry.field(default=UNSET, description=bodies.LinkInput.model_fields["note"].description)


# How a pair's input names what REST's LinkInput body (the other event is its `event`)
# and db/writes/links.py (`other`) name.
_PAIR_NAMES = {"event": "input.other", "other": "input.other", "note": "input.note"}


@dataclasses.dataclass
class PairBody(WriteBody[bodies.LinkInput]):
    """A pair's input: its `event`, and the rest as REST's body."""

    event: str

    def graphql_errors(self, errors: Sequence[FieldError]) -> list[FieldError]:
        return [FieldError(_PAIR_NAMES.get(e.name, e.name), e.reason) for e in errors]


def pair_body(given: EventPairInput) -> PairBody:
    """`given` checked as REST checks the body of POST /v1/events/{id}/links; a
    BAD_USER_INPUT GraphQL error naming every bad field if it fails."""
    fields = {"event": given.other, "note": given.note}
    fields = {key: value for key, value in fields.items() if value is not UNSET and value is not None}
    problems = [] if given.event not in (UNSET, None) else [FieldError("input.event", "Field required")]
    try:
        checked = bodies.LinkInput.model_validate(fields)
    except ValidationError as exc:
        problems += [FieldError(_PAIR_NAMES.get(str(path[0]) if path else "", "input"), reason)
                     for path, reason in bodies.chosen_form_errors(exc.errors(), fields, bodies.LinkInput)]
    if problems:
        raise bad_user_input(problems)
    return PairBody(fields, checked, str(given.event))


def write_body(given: Any, model: type[M], *, patch: bool = False) -> WriteBody[M]:
    """`given` (a mutation's input) checked by `model`, REST's body model for the same
    write; a BAD_USER_INPUT GraphQL error naming every bad field if it fails. A patch
    holds only the fields the client gave (`model.given()`); a null among them clears one."""
    fields, problems = _body_fields(given, keep_nulls=patch)
    try:
        checked = model.model_validate(fields)
    except ValidationError as exc:
        problems = _validation_errors(exc, fields, model) + problems
    if problems:
        raise bad_user_input(list(dict.fromkeys(problems)))
    return WriteBody(fields, checked)


def _validation_errors(exc: ValidationError, fields: dict[str, Any], model: type[BaseModel]) -> list[FieldError]:
    """The model's errors, named as the client wrote the fields (bodies.chosen_form_errors)."""
    return [FieldError(graphql_name(fields, path), reason)
            for path, reason in bodies.chosen_form_errors(exc.errors(), fields, model)]
