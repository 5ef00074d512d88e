"""What a write may say: the bodies of REST POST and PATCH, and GraphQL mutations' inputs.

Shapes only (types, ranges, required fields, no unknown fields); what needs the
knowledge base (does this place exist, is this pair in the taxonomy) is checked by
db/writes/records.py. A PATCH body is the same model with every field optional: the
fields it names are set (null clears), the others stay.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, get_args
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
    model_validator,
)

from db.queries.vocabulary import in_vocabulary

# (`\S`: in the JSON schema too, a text of spaces only is not one)
NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, pattern=r"\S")]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000, pattern=r"\S")]
# strict: a JSON true is not the number 1, nor "5" a number
Count = Annotated[int, Field(ge=0, le=10_000_000, strict=True)]
# Dates the knowledge base can hold and compute with (PostgreSQL takes Python's
# date.min and date.max for -infinity and infinity; periods after them overflow).
KnownDate = Annotated[dt.date, Field(ge=dt.date(1000, 1, 1), le=dt.date(2999, 12, 31))]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Patch(_Input):
    def given(self) -> dict[str, Any]:
        """The fields the body named, with their values (None: clear it)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def _patch_of(model: type[_Input], *, fixed: tuple[str, ...] = (), coordinates: bool = False) -> type[_Patch]:
    """The PATCH body of a record made from `model`: its fields, all optional, but for
    the `fixed` ones, which a record keeps for life (a claim's event and claimant)."""
    fields: dict[str, Any] = {
        # (the field's constraints with it: a PATCH may not set a name to "" either)
        name: (Annotated[(field.annotation, *field.metadata)] | None if field.metadata else field.annotation | None,
               Field(default=None, description=field.description, json_schema_extra=field.json_schema_extra))
        for name, field in model.model_fields.items() if name not in fixed}
    validators = {"_coordinates": model_validator(mode="after")(_both_or_neither)} if coordinates else {}
    return create_model(model.__name__.replace("Input", "Patch"), __base__=_Patch, __validators__=validators,
                        **fields)


def _both_or_neither(model: BaseModel) -> BaseModel:
    fields = getattr(model, "model_fields_set", set())
    if ("latitude" in fields) != ("longitude" in fields) or (
            (getattr(model, "latitude", None) is None) != (getattr(model, "longitude", None) is None)):
        raise ValueError("latitude and longitude go together: give both or neither")
    return model


class PlaceInput(_Input):
    name: NonEmpty
    kind: NonEmpty = Field(description="country, admin1, admin2, locality, area (see /v1/vocabularies)",
                           json_schema_extra=in_vocabulary("place_kinds"))
    parent: UUID | None = Field(default=None, description="The place it lies in (id).")
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    iso2: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None
    iso3: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    aliases: list[NonEmpty] = Field(default=[], max_length=100)

    _coordinates = model_validator(mode="after")(_both_or_neither)


class ActorInput(_Input):
    name: NonEmpty
    kind: NonEmpty = Field(description="state, armed_forces, coalition, monitor, ... (see /v1/vocabularies)",
                           json_schema_extra=in_vocabulary("actor_kinds"))
    parent: NonEmpty | None = Field(default=None, description="The actor it belongs to (id or name).")
    description: LongText | None = None
    aliases: list[NonEmpty] = Field(default=[], max_length=100)


class DocumentInput(_Input):
    publisher: NonEmpty | None = None
    publisher_actor: NonEmpty | None = Field(default=None, description="The publishing actor (id or name).")
    title: NonEmpty | None = None
    url: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^https?://\S+$", max_length=2000)] | None = None
    published_at: KnownDate | None = None
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]+)*$")] | None = None
    excerpt: LongText | None = None

    @model_validator(mode="after")
    def _says_what_it_is(self) -> DocumentInput:
        if self.publisher is None and self.title is None and self.url is None and self.publisher_actor is None:
            raise ValueError("a document needs at least a publisher, a title or a url")
        return self


class EventInput(_Input):
    event_type: NonEmpty = Field(description="ACLED event type, e.g. Explosions/Remote violence.",
                                 json_schema_extra=in_vocabulary("event_types"))
    sub_event_type: NonEmpty = Field(description="ACLED sub-event type of that type, e.g. Air/drone strike "
                                                 "(the pairs: GET /v1/vocabularies).",
                                     json_schema_extra=in_vocabulary("sub_event_types"))
    type_of_violence: Annotated[int, Field(ge=1, le=3)] | None = None
    date_start: KnownDate
    date_end: KnownDate | None = Field(default=None, description="Default: the end of the precision's period.")
    date_precision: NonEmpty = Field(default="day", json_schema_extra=in_vocabulary("date_precisions"))
    place: UUID | PlaceInput = Field(description="A place id, or a new place {name, kind, parent?, ...}.")
    geo_precision: NonEmpty | None = Field(default=None, description="Default: exact with coordinates, else the place's.",
                                           json_schema_extra=in_vocabulary("geo_precisions"))
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    summary: LongText | None = None

    _coordinates = model_validator(mode="after")(_both_or_neither)


class Figures(_Input):
    low: Count | None = None
    best: Count | None = None
    high: Count | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Figures:
        given = [x for x in (self.low, self.best, self.high) if x is not None]
        if not given:
            raise ValueError("give at least one of low, best, high")
        if given != sorted(given):
            raise ValueError("low <= best <= high")
        return self


# A claim's value: figures (or a number) for the fatality predicates, an actor (id or
# name) for perpetrator and target, a place id for location, a date, or text (weapon).
ClaimValue = Figures | Count | KnownDate | NonEmpty


class ClaimInput(_Input):
    event: NonEmpty = Field(description="Event id or external id.")
    claimant: NonEmpty = Field(description="Who makes the claim (actor id or name).")
    via: NonEmpty | None = Field(default=None, description="Who relayed it (actor id or name).")
    speaker: NonEmpty | None = None
    document: UUID | DocumentInput | None = Field(default=None, description="A document id or a new document.")
    predicate: NonEmpty = Field(json_schema_extra=in_vocabulary("predicates"))
    stance: NonEmpty = Field(json_schema_extra=in_vocabulary("stances"))
    value: ClaimValue | None = None
    quote: LongText | None = None


PlacePatch = _patch_of(PlaceInput, coordinates=True)
ActorPatch = _patch_of(ActorInput)
DocumentPatch = _patch_of(DocumentInput)
EventPatch = _patch_of(EventInput, coordinates=True)
ClaimPatch = _patch_of(ClaimInput, fixed=("event", "claimant"))


class MergeInput(_Input):
    into: NonEmpty = Field(description="The record that stays (id; an event also by external id).")


class LinkInput(_Input):
    """The other event of a pair an editor judges (the first is the one the REST path
    names, GraphQL's `event`), and why."""
    event: NonEmpty = Field(description="The other event: its id or an external id (`acled:SYR123`).")
    note: NonEmpty | None = Field(default=None, description="Why: kept with the verdict and shown in both "
                                                            "events' history.")


@dataclass(frozen=True)
class Verdict:
    """An editor's verdict on a pair of events (db/writes/links.py writes it)."""

    verdict: str  # as event_links keeps it
    mutation: str  # the GraphQL mutation that gives it
    rest: str  # the REST route that gives it
    effect: str  # what it does, for both interfaces' descriptions


# Curation: the REST routes (api/routes/writes.py) and the GraphQL mutations
# (schema/mutations.py) of the two verdicts are made from this table and LinkInput.
VERDICTS: dict[str, Verdict] = {v.verdict: v for v in (
    Verdict("confirmed", "link_events", "POST /v1/events/{id}/links",
            "Confirm that two events are records of one happening: the pair is linked whatever its score, and "
            "both are in one happening at once. It stays so through re-scoring and re-imports until rejected. "
            "Replaces a rejection; the same verdict again changes nothing (but a new note)."),
    Verdict("rejected", "unlink_events", "DELETE /v1/events/{id}/links/{other}",
            "Reject a pair: it is never linked, whatever its score (another record may be linked instead), and "
            "a happening it held together splits. Replaces a confirmation; the same verdict again changes "
            "nothing (but a new note)."),
)}


def chosen_form_errors(errors: list[dict], body: Any, model: type[BaseModel]) -> list[tuple[list, str]]:
    """pydantic's errors of `body` against `model`, as (path, reason). Of a field that
    takes one of several forms (a place id or a new place), pydantic reports what is
    wrong with each form; only the one the client chose is meant, and its member tag
    (`function-after[…, PlaceInput]`) is dropped from the path."""
    forms = _fields_of_forms(model)
    named: list[tuple[list, str]] = []
    for error in errors:
        path = list(error["loc"])
        if len(path) > 1 and path[0] in forms:
            if not _is_form_of(str(path[1]), body.get(path[0]) if isinstance(body, dict) else None):
                continue
            del path[1]
        named.append((path, error["msg"].removeprefix("Value error, ")))
    if not named:  # a form none of them fits: the field is named all the same
        return [(list(e["loc"][:1]), e["msg"]) for e in errors[:1]]
    # a value that fits none of the forms it could have: one entry, each form's reason
    merged: dict[tuple, list[str]] = {}
    for path, reason in named:
        merged.setdefault(tuple(path), []).append(reason)
    return [(list(path), "; or ".join(dict.fromkeys(reasons))) for path, reasons in merged.items()]


def _fields_of_forms(model: type[BaseModel]) -> set[str]:
    """The fields of `model` that take a union (pydantic tags their errors by its members)."""
    return {name for name, field in model.model_fields.items()
            if len([t for t in get_args(field.annotation) if t is not type(None)]) > 1}


def _is_form_of(tag: str, value: Any) -> bool:
    """Whether the union member pydantic tagged `tag` is the form `value` has: a model
    (`PlaceInput`, `function-after[…, Figures]`) for an object, a date for a date, an
    id or a text for a string, a number for a number."""
    if isinstance(value, dict):
        return tag[:1].isupper() or tag.endswith("]")
    if isinstance(value, dt.date):
        return tag == "date"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return tag.endswith("int")
    return tag in ("uuid", "date") or tag.endswith("str")


# Each record type's bodies, (create, patch): the REST routes and the GraphQL
# mutations are made from this one table.
BODIES: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "event": (EventInput, EventPatch),
    "claim": (ClaimInput, ClaimPatch),
    "actor": (ActorInput, ActorPatch),
    "place": (PlaceInput, PlacePatch),
    "document": (DocumentInput, DocumentPatch),
}
