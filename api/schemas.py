"""The shapes of REST answers, for the OpenAPI document at /docs.

PostgreSQL builds the JSON trees itself (db/queries), so these models describe the
answers rather than produce them; tests/test_rest.py checks real answers against
them so the documentation cannot drift from what the API sends.
"""

from __future__ import annotations

import datetime as dt
from typing import Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActorRef(_Out):
    id: UUID
    name: str
    kind: str


class PlaceRef(_Out):
    id: UUID
    name: str
    kind: str


class AncestorRef(PlaceRef):
    iso3: str | None


class ExternalId(_Out):
    dataset: str = Field(examples=["ucdp-ged"])
    id: str = Field(examples=["214797"])


class PlaceTree(_Out):
    id: UUID
    name: str
    kind: str
    iso2: str | None
    iso3: str | None
    latitude: float | None
    longitude: float | None
    ancestors: list[AncestorRef] = Field(description="From the country down to the parent.")


class Place(PlaceTree):
    parent: PlaceRef | None
    aliases: list[str]
    external_ids: list[ExternalId]
    created_at: dt.datetime
    updated_at: dt.datetime


class DocumentRef(_Out):
    id: UUID
    title: str | None
    publisher: str | None
    url: str | None
    published_at: dt.date | None


class Document(DocumentRef):
    language: str | None
    excerpt: str | None
    claim_count: int
    created_at: dt.datetime
    updated_at: dt.datetime


class ClaimValue(_Out):
    low: int | None = None
    best: int | None = None
    high: int | None = None
    actor: ActorRef | None = None
    place: PlaceRef | None = None
    date: dt.date | None = None
    text: str | None = None


class Claim(_Out):
    id: UUID
    event_id: UUID
    claimant: ActorRef
    via: ActorRef | None = Field(description="The channel the claim came through, e.g. a wire service.")
    speaker: str | None = Field(description="The named person or office who spoke for the claimant.")
    document: DocumentRef | None
    predicate: str = Field(examples=["perpetrator"])
    stance: Literal["asserts", "denies", "uncertain", "concedes"]
    value: ClaimValue | None
    quote: str | None = Field(description="The source's words, verbatim.")
    created_at: dt.datetime
    updated_at: dt.datetime


class Fatalities(_Out):
    low: int | None
    best: int | None
    high: int | None
    civilians: int | None = Field(description="Best estimate of civilians killed.")
    civilians_low: int | None
    civilians_high: int | None
    claim_ids: list[UUID] = Field(description="The claims these figures were derived from.")


class EventActor(_Out):
    role: Literal["perpetrator", "target", "participant"]
    status: Literal["confirmed", "alleged", "contested", "unknown"] | None = Field(
        description="Attribution status, derived from the claims (see the README); null for participants.")
    status_claim_ids: list[UUID] = Field(description="The claims that made the status.")
    actor: ActorRef


class LinkedEvent(_Out):
    id: UUID
    score: float
    external_ids: list[ExternalId]


class Event(_Out):
    id: UUID
    event_type: str
    sub_event_type: str
    type_of_violence: int | None
    date_start: dt.date
    date_end: dt.date
    date_precision: Literal["day", "week", "month", "year"]
    place: PlaceTree
    latitude: float | None
    longitude: float | None
    geo_precision: str
    fatalities: Fatalities
    summary: str | None
    actors: list[EventActor]
    claim_count: int = Field(description="How many claims are about the event.")
    distance_km: float | None = Field(default=None, description="With `near`: great-circle distance from the point.")
    claims: list[Claim] | None = Field(default=None, description="Every claim about the event (in the detail only).")
    linked_events: list[LinkedEvent] | None = Field(default=None, description=(
        "Other sources' records of the same happening (in the detail only; see /matches)."))
    external_ids: list[ExternalId]
    created_at: dt.datetime
    updated_at: dt.datetime


class MatchParts(_Out):
    time: float
    place: float
    type: float
    actors: float
    fatalities: float


class MatchedEvent(_Out):
    id: UUID
    event_type: str
    sub_event_type: str
    date_start: dt.date
    date_end: dt.date
    date_precision: str
    place: PlaceRef
    fatalities_best: int | None
    external_ids: list[ExternalId]


class EventMatch(_Out):
    event: MatchedEvent
    score: float = Field(description="0-1: 0.30 time + 0.30 place + 0.10 type + 0.15 actors + 0.15 fatalities.")
    linked: bool = Field(description="Score at or above the link threshold (0.8): the same happening.")
    days_apart: int
    distance_km: float | None
    parts: MatchParts


class Membership(_Out):
    group: ActorRef
    relation: Literal["member", "partner"]
    valid_from: dt.date | None
    valid_to: dt.date | None


class Member(_Out):
    member: ActorRef
    relation: Literal["member", "partner"]
    valid_from: dt.date | None
    valid_to: dt.date | None


class Actor(_Out):
    id: UUID
    name: str
    kind: str
    description: str | None
    parent: ActorRef | None
    aliases: list[str]
    memberships: list[Membership]
    members: list[Member]
    external_ids: list[ExternalId]
    created_at: dt.datetime
    updated_at: dt.datetime


class ListOf(_Out, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    total: int | None = Field(default=None, description="With count=true: the number of matches.")


class EventStat(_Out):
    """One group: its keys (only those asked for in group_by; places and actors with their
    ids beside the names), then the measures."""
    country: str | None = None
    country_id: UUID | None = None
    admin1: str | None = None
    admin1_id: UUID | None = None
    admin2: str | None = None
    admin2_id: UUID | None = None
    year: int | None = None
    month: str | None = Field(default=None, description="YYYY-MM")
    week: str | None = Field(default=None, description="ISO week, YYYY-Www")
    day: dt.date | None = None
    event_type: str | None = None
    sub_event_type: str | None = None
    perpetrator: str | None = None
    perpetrator_id: UUID | None = None
    claimant: str | None = None
    claimant_id: UUID | None = None
    events: int
    fatalities_low: int = Field(description="Sums of the figures events have (none adds nothing).")
    fatalities_best: int
    fatalities_high: int | None = Field(description="Null when an event of the group has an open upper bound.")
    civilian_fatalities: int


class EventStats(_Out):
    group_by: list[str]
    data: list[EventStat]


class AttributionClaim(_Out):
    id: UUID
    claimant: ActorRef
    predicate: Literal["perpetrator", "target"]
    stance: Literal["asserts", "denies", "uncertain", "concedes"]
    quote: str | None
    document_id: UUID | None


class Attribution(_Out):
    """One actor in one role of an event: its status and the claims behind it."""
    actor: ActorRef
    role: Literal["perpetrator", "target"]
    status: Literal["confirmed", "alleged", "contested", "unknown"]
    claim_ids: list[UUID] = Field(description="The claims that made the status (the rule in the README).")
    claims: list[AttributionClaim]


class HistoryRecord(_Out):
    type: Literal["event", "claim", "event_actor", "external_id"]
    key: str = Field(description="The record's id (an event actor: event/actor/role; an external id: dataset/id).")


class HistoryEntry(_Out):
    at: dt.datetime = Field(description="When the writing transaction began.")
    who: str = Field(description="The API key's name, an import, the seed, or a database user.")
    op: Literal["created", "updated", "deleted"]
    record: HistoryRecord
    changed: list[str] = Field(description="The fields whose values differ between before and after.")
    before: dict | None = Field(description="The stored row before the change (null when created).")
    after: dict | None = Field(description="The stored row after the change (null when deleted).")


class Change(_Out):
    op: Literal["created", "updated", "deleted", "merged"]
    type: Literal["event", "claim", "actor", "place", "document"]
    id: UUID
    at: dt.datetime
    merged_into: UUID | None = Field(default=None, description="For a merge: the record that survives.")


class ChangeFeed(_Out):
    data: list[Change]
    next_cursor: str = Field(description="Pass as `since` to go on from here (also when data is empty).")
    has_more: bool = Field(description="More changes wait after this page: ask again at once.")


class ProblemDetail(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict] | None = None
    tombstone: dict | None = Field(default=None, description="410: the deleted record's type, id and when.")


class CallingApiKey(_Out):
    id: UUID
    name: str
    role: Literal["reader", "editor", "admin"]


PROBLEM_RESPONSES = {
    400: {"model": ProblemDetail, "description": "Bad request (e.g. a tampered cursor)",
          "content": {"application/problem+json": {}}},
    404: {"model": ProblemDetail, "description": "Not found", "content": {"application/problem+json": {}}},
    410: {"model": ProblemDetail, "description": "Deleted (or merged); `tombstone` says when",
          "content": {"application/problem+json": {}}},
    422: {"model": ProblemDetail, "description": "A parameter is invalid; `errors` names each",
          "content": {"application/problem+json": {}}},
}

# Routes that need an API key (api/auth.py) add these.
API_KEY_PROBLEM_RESPONSES = {
    401: {"model": ProblemDetail, "description": "No API key, a malformed header, or an unknown or revoked key "
                                                 "(`detail` says which; `WWW-Authenticate: Bearer`)",
          "content": {"application/problem+json": {}}},
    403: {"model": ProblemDetail, "description": "The key's role is too low (`detail` names the role needed)",
          "content": {"application/problem+json": {}}},
}
