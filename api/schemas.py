"""The shapes of REST answers, for the OpenAPI document at /docs.

PostgreSQL builds the JSON trees itself (db/queries), so these models describe the
answers rather than produce them; tests/test_rest.py checks real answers against
them so the documentation cannot drift from what the API sends.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, create_model

from db.filters import FILTER_ERROR_CODES
from db.queries.history import CHANGE_OPS, FEED_RECORD_TYPES
from db.queries.matches import LINKED_DESCRIPTION, MATCH_PARTS, SCORE_DESCRIPTION
from db.queries.vocabulary import in_vocabulary

T = TypeVar("T")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


ActorKind = Annotated[str, Field(json_schema_extra=in_vocabulary("actor_kinds"))]
PlaceKind = Annotated[str, Field(json_schema_extra=in_vocabulary("place_kinds"))]
EventType = Annotated[str, Field(json_schema_extra=in_vocabulary("event_types"))]
SubEventType = Annotated[str, Field(json_schema_extra=in_vocabulary("sub_event_types"))]
DatePrecision = Annotated[str, Field(json_schema_extra=in_vocabulary("date_precisions"))]
GeoPrecision = Annotated[str, Field(json_schema_extra=in_vocabulary("geo_precisions"))]
Predicate = Annotated[str, Field(json_schema_extra=in_vocabulary("predicates"))]


class ActorRef(_Out):
    id: UUID
    name: str
    kind: ActorKind


class PlaceRef(_Out):
    id: UUID
    name: str
    kind: PlaceKind


class AncestorRef(PlaceRef):
    iso3: str | None


class ExternalId(_Out):
    dataset: str = Field(examples=["ucdp-ged"])
    id: str = Field(examples=["214797"])


class PlaceTree(_Out):
    id: UUID
    name: str
    kind: PlaceKind
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
    predicate: Predicate = Field(examples=["perpetrator"])
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


class HappeningRef(_Out):
    id: UUID = Field(description="The happening's id (its earliest record's): GET /v1/happenings/{id}.")
    record_count: int = Field(description="Its records (events of several sources linked as one); 1: this "
                                          "event alone.")


class LinkedEvent(_Out):
    id: UUID
    score: float
    external_ids: list[ExternalId]


class Event(_Out):
    id: UUID
    event_type: EventType
    sub_event_type: SubEventType
    type_of_violence: int | None
    date_start: dt.date
    date_end: dt.date
    date_precision: DatePrecision
    place: PlaceTree
    latitude: float | None
    longitude: float | None
    geo_precision: GeoPrecision
    fatalities: Fatalities
    summary: str | None
    actors: list[EventActor]
    claim_count: int = Field(description="How many claims are about the event.")
    distance_km: float | None = Field(default=None, description="With `near`: great-circle distance from the point.")
    claims: list[Claim] | None = Field(default=None, description="Every claim about the event (in the detail only).")
    linked_events: list[LinkedEvent] | None = Field(default=None, description=(
        "Other sources' records of the same happening (in the detail only; see /matches)."))
    external_ids: list[ExternalId]
    happening: HappeningRef = Field(description="The happening it is a record of (linked records of other "
                                                "sources), or its own.")
    created_at: dt.datetime
    updated_at: dt.datetime


MatchParts = create_model("MatchParts", __base__=_Out, __doc__="Each part of the score, 0-1; null when it could "
                          "not be measured (no figures, no named actor, no reporting source on one side).",
                          **{part: (float | None, Field(description=about)) for part, (_, about) in MATCH_PARTS.items()})


class MatchedEvent(_Out):
    id: UUID
    event_type: EventType
    sub_event_type: SubEventType
    date_start: dt.date
    date_end: dt.date
    date_precision: DatePrecision
    place: PlaceRef
    fatalities_best: int | None
    external_ids: list[ExternalId]


class LinkVerdict(_Out):
    """An editor's verdict on a pair: it overrides the score, and survives re-scoring and re-imports."""
    verdict: Literal["confirmed", "rejected"]
    note: str | None
    decided_by: str
    decided_at: dt.datetime


class EventMatch(_Out):
    event: MatchedEvent = Field(description="The other record.")
    score: float = Field(description=SCORE_DESCRIPTION)
    status: Literal["linked", "contender", "candidate"] = Field(description=(
        "linked: the same happening; contender: scored over the link threshold, but one of the two records is "
        "linked to another record of the other's source; candidate: under the threshold, for review."))
    linked: bool = Field(description=LINKED_DESCRIPTION)
    days_apart: int
    distance_km: float | None = Field(description="Null unless both records are located.")
    parts: MatchParts
    verdict: LinkVerdict | None = Field(description="An editor's verdict on the pair (for this event), or null.")


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
    kind: ActorKind
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


def _only_id_required(schema: dict[str, Any]) -> None:
    schema["required"] = ["id"]
    schema["description"] = (schema.get("description", "") + "\n\nIn a list: with `fields`, only the keys it "
                             "names (and `id`); without, all of them.").strip()


@functools.cache
def listed(model: type[_Out]) -> type[_Out]:
    """`model` as the items of a list that takes `fields=` (api/params.py sparse_fields):
    the same keys, only `id` sure to be there."""
    return type(model)(f"Listed{model.__name__}", (model,), {
        "__module__": __name__, "__qualname__": f"Listed{model.__name__}", "__doc__": model.__doc__,
        "model_config": ConfigDict(extra="forbid", json_schema_extra=_only_id_required)})



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


class ActorAttribution(_Out):
    """One actor in one role: its attribution status and the claims behind it."""
    actor: ActorRef
    role: Literal["perpetrator", "target"]
    status: Literal["confirmed", "alleged", "contested", "unknown"]
    claim_ids: list[UUID] = Field(description="The claims that made the status (the rule in the README).")


class Attribution(ActorAttribution):
    """One actor in one role of an event: its status and the claims behind it."""
    claims: list[AttributionClaim]


class Happening(_Out):
    """Records of one happening from several sources (linked: see /v1/events/{id}/matches), with
    what all their claims say together, derived by the same rules as one event's figures."""
    id: UUID = Field(description="Its earliest record's id.")
    record_count: int
    sources: list[str] = Field(description="The datasets its records come from (records written through the "
                                           "API have none).")
    date_start: dt.date = Field(description="The earliest start of its records: the dates are their span.")
    date_end: dt.date = Field(description="The latest end of its records.")
    fatalities: Fatalities = Field(description="From every record's fatality claims together.")
    attribution: list[ActorAttribution] = Field(description=(
        "Per actor and role (perpetrator, target), from every record's claims together: an actor named in "
        "several records is one row."))
    records: list[Event] = Field(description="Each record as /v1/events/{id} gives it, by source, then date.")


class HistoryRecord(_Out):
    type: Literal["event", "claim", "event_actor", "external_id", "link"]
    key: str = Field(description="The record's id (an event actor: event/actor/role; an external id: dataset/id; "
                                 "a link, an editor's verdict on this event and another: event/other).")


class HistoryEntry(_Out):
    at: dt.datetime = Field(description="When the writing transaction began.")
    who: str = Field(description="The API key's name, an import, the seed, or a database user.")
    op: Literal["created", "updated", "deleted"]
    record: HistoryRecord
    changed: list[str] = Field(description="The fields whose values differ between before and after.")
    before: dict | None = Field(description="The stored row before the change (null when created).")
    after: dict | None = Field(description="The stored row after the change (null when deleted).")


class Change(_Out):
    op: Literal[CHANGE_OPS]
    type: Literal[FEED_RECORD_TYPES]
    id: UUID
    at: dt.datetime
    merged_into: UUID | None = Field(default=None, description="For a merge: the record that survives.")


class ChangeFeed(_Out):
    data: list[Change]
    next_cursor: str = Field(description="Pass as `since` to go on from here (also when data is empty).")
    has_more: bool = Field(description="More changes wait after this page: ask again at once.")


class LinkParts(_Out):
    """Each 0-1; null: not measurable for this pair (no figures, no named actors, no
    reporting source on one side), counted as the neutral 0.5."""
    time: float
    place: float
    type: float
    actors: float | None
    fatalities: float | None
    claimants: float | None
    text: float | None


class EventLink(_Out):
    event: UUID = Field(description="The event of the path.")
    other: UUID = Field(description="The other event of the pair.")
    verdict: Literal["confirmed", "rejected"] | None = Field(description="The editor's verdict on the pair.")
    note: str | None = Field(description="Why, as the editor wrote it.")
    decided_by: str | None = Field(description="Who gave the verdict (as the history names writers).")
    decided_at: dt.datetime | None
    status: Literal["linked", "contender", "candidate"] = Field(description=(
        "linked: one happening; contender: over the link threshold but another pair won, or rejected; "
        "candidate: under it (GET /v1/events/{id}/matches)."))
    score: float | None = Field(description="What the linking rule scores the pair (0-1), verdict aside.")
    parts: LinkParts
    days_apart: int | None
    distance_km: float | None
    happening_id: UUID | None = Field(description="The happening both events are in; null if they are in two.")


class CallingApiKey(_Out):
    id: UUID
    name: str
    role: Literal["reader", "editor", "admin"]



class Health(_Out):
    status: Literal["ok"]


class ReplicaReadiness(BaseModel):
    """A read replica (DATABASE_REPLICA_URLS) as the router last checked it."""
    name: str = Field(description="replica-1, replica-2, ... in the order of DATABASE_REPLICA_URLS.")
    up: bool = Field(description="It answered the last check (every second) as a server in recovery.")
    takes_reads: bool = Field(description="Up and within CONFLICTKB_REPLICA_MAX_LAG_SECONDS of the primary.")
    lag_seconds: float | None = Field(description="How long ago the primary was where this replica has replayed to.")
    replayed: str | None = Field(description="Its replay position, in the form of a consistency token.")


class Readiness(BaseModel):
    """What /readyz found (the same shape with 503)."""
    status: str = Field(description="ok, degraded (Redis down: answers still come from PostgreSQL; or a replica "
                                    "takes no reads: the primary answers them) or down.")
    replicas: list[ReplicaReadiness] | None = Field(
        default=None, description="Each read replica (DATABASE_REPLICA_URLS); absent without replicas.")


class SubEventTypeEntry(_Out):
    name: str
    description: str


class EventTypeEntry(_Out):
    name: str
    description: str
    sub_event_types: list[SubEventTypeEntry]


class Vocabularies(BaseModel):
    """Every vocabulary the API takes values from: rows of tables the migrations seed,
    each with its code (or name), description and the table's own columns."""
    event_types: list[EventTypeEntry]
    date_precisions: list[dict[str, Any]]
    geo_precisions: list[dict[str, Any]]
    place_kinds: list[dict[str, Any]]
    actor_kinds: list[dict[str, Any]]
    predicates: list[dict[str, Any]]
    stances: list[dict[str, Any]]
    event_roles: list[dict[str, Any]]
    datasets: list[dict[str, Any]]


class GeoJSONFeature(_Out):
    type: Literal["Feature"]
    id: UUID
    geometry: dict[str, Any] | None = Field(description="A Point at the event's coordinates; null without.")
    properties: dict[str, Any] = Field(description=(
        "The event's record, as a line of the NDJSON export (only the keys `fields` names, when given)."))


class GeoJSONFeatureCollection(_Out):
    type: Literal["FeatureCollection"]
    features: list[GeoJSONFeature]


class ProblemField(BaseModel):
    name: str = Field(description="The parameter, header or body field (a dotted path) at fault.")
    in_: str | None = Field(alias="in", description="query, path, header, body; null when it is the request.")
    reason: str
    code: str | None = Field(default=None, description=(
        f"For a filter's value, which check refused it: {', '.join(FILTER_ERROR_CODES)} (GraphQL: the same in "
        "`extensions.inputCode` of an error in `where`)."))


class ProblemDetail(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`)."""
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[ProblemField] | None = Field(default=None, description="One entry per bad parameter.")
    tombstone: dict | None = Field(default=None, description="410 and 308: the record's type, id, when, and where a "
                                                             "merge went.")


# The problem statuses the OpenAPI document declares (api/openapi.py says which
# operation answers which): status -> what it means there.
PROBLEM_RESPONSES: dict[int, str] = {
    308: "Merged into another record: `Location` is the survivor's (`tombstone` says when)",
    400: "Bad request: a tampered or foreign cursor, or a write the knowledge base cannot take",
    401: "No API key, a malformed header, or an unknown or revoked key (`detail` says which; "
         "`WWW-Authenticate: Bearer`)",
    403: "The key's role is too low (`detail` names the role needed)",
    404: "No such record",
    409: "The record is still referred to (`detail` says by what)",
    410: "Deleted (or merged, on a write); `tombstone` says when",
    412: "If-Match names an ETag the record no longer has (`ETag` is the current one)",
    408: "The body did not arrive within the time allowed (CONFLICTKB_BODY_TIMEOUT)",
    413: "The body is larger than the limit",
    422: "A parameter or body field is invalid, over a limit, or names nothing; `errors` names each",
    429: "Too many requests for the key or address: `Retry-After` says when to come back",
    503: "The database is unavailable or the request ran out of its time: retry after `Retry-After` seconds",
}


class GraphQLRequest(BaseModel):
    query: str = Field(description="The GraphQL document.")
    variables: dict[str, Any] | None = None
    operationName: str | None = None  # noqa: N815 (GraphQL's own name)
    extensions: dict[str, Any] | None = None


class GraphQLError(BaseModel):
    message: str
    locations: list[dict[str, int]] | None = None
    path: list[str | int] | None = None
    extensions: dict[str, Any] = Field(description=(
        "`code` says what went wrong, as REST's status would (README, GraphQL errors): BAD_USER_INPUT, "
        "GRAPHQL_VALIDATION_FAILED, UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, GONE, PRECONDITION_FAILED, CONFLICT, "
        "ROLLED_BACK, SERVICE_UNAVAILABLE, INTERNAL_SERVER_ERROR, and those of limits and quotas."))


class GraphQLResponse(BaseModel):
    data: dict[str, Any] | None = None
    errors: list[GraphQLError] | None = None
    extensions: dict[str, Any] | None = None
