"""GraphQL object types, backed by the JSON trees the query layer builds.

A node is created from whatever tree its parent already holds (an event's place, a
claim's claimant); a field the tree lacks loads the node's full tree through the
request's dataloader, so asking for more detail costs one batched query per type.
"""

from __future__ import annotations

import datetime as dt
import functools
from enum import Enum
from collections.abc import Callable
from typing import Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from db.queries import history, matches
from schema.paging import Connection, connection


@strawberry.enum
class AttributionStatus(Enum):
    CONFIRMED = "confirmed"
    ALLEGED = "alleged"
    CONTESTED = "contested"
    UNKNOWN = "unknown"


@strawberry.enum
class Stance(Enum):
    ASSERTS = "asserts"
    DENIES = "denies"
    UNCERTAIN = "uncertain"
    CONCEDES = "concedes"


@strawberry.enum
class EventRole(Enum):
    PERPETRATOR = "perpetrator"
    TARGET = "target"
    PARTICIPANT = "participant"


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _datetime(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


@strawberry.type
class _TreeNode:
    """A node made from a tree. What every tree of its kind holds is set as plain
    attributes when the node is made (read without a resolver call: a page of 50
    events resolves ~2,000 fields); what only the full tree holds is a `from_tree`
    field, loaded through the request's dataloader (`_loader`) when missing."""

    tree: strawberry.Private[dict]
    id: strawberry.ID
    _loader = ""

    def needs_full_tree(self, key: str) -> bool:
        return key not in self.tree


def from_tree(key: str, shape: Callable[[Any], Any] = lambda value: value, *,
              description: str | None = None) -> Callable[[Callable], Any]:
    """A field whose value is `shape(tree[key])`: now if the node's tree has the key,
    else awaitable after loading the node's full tree (so resolvers stay synchronous
    when no load is needed). The method it decorates gives only the name and type.
    `key` is kept on the resolver (`tree_key`) for schema/prefetch.py."""
    def field(declaration: Callable) -> Any:
        @functools.wraps(declaration)
        def resolve(self: _TreeNode, info: Info) -> Any:
            if not self.needs_full_tree(key):
                return shape(self.tree[key])

            async def load() -> Any:
                self.tree = await getattr(info.context, self._loader).load(UUID(self.tree["id"]))
                return shape(self.tree[key])

            return load()

        resolve.tree_key = key
        return strawberry.field(resolve, description=description)

    return field


@strawberry.type
class _Record(_TreeNode):
    """A record the API writes: when it was created and last changed. A reference to
    it (an event's place, a claim's claimant) lacks them, so they load its full tree."""

    @from_tree("created_at", _datetime)
    def created_at(self, info: Info) -> dt.datetime: ...

    @from_tree("updated_at", _datetime)
    def updated_at(self, info: Info) -> dt.datetime: ...


@strawberry.type
class ExternalId:
    dataset: str
    id: str


def _external_ids(items: list[dict]) -> list[ExternalId]:
    return [ExternalId(dataset=x["dataset"], id=x["id"]) for x in items]


def _spans(span: type, side: str) -> Callable[[list[dict]], list]:
    """An actor's memberships (`side` group) or members (`side` member) from its tree."""
    return lambda items: [span(**{side: Actor.of(ms[side])}, relation=ms["relation"],
                               valid_from=_date(ms["valid_from"]), valid_to=_date(ms["valid_to"])) for ms in items]


@strawberry.type(description="A state, force, armed group, or a source that speaks about events.")
class Actor(_Record):
    name: str
    kind: str
    _loader = "actors"

    @classmethod
    def of(cls, tree: dict) -> Actor:
        return cls(tree=tree, id=strawberry.ID(tree["id"]), name=tree["name"], kind=tree["kind"])

    @from_tree("description")
    def description(self, info: Info) -> str | None: ...

    @from_tree("aliases")
    def aliases(self, info: Info) -> list[str]: ...

    @from_tree("parent", lambda parent: Actor.of(parent) if parent else None)
    def parent(self, info: Info) -> Actor | None: ...

    @from_tree("memberships", lambda items: _spans(Membership, "group")(items))
    def memberships(self, info: Info) -> list[Membership]: ...

    @from_tree("members", lambda items: _spans(Member, "member")(items),
               description="The actors that are members or partners of this one (the other side of memberships).")
    def members(self, info: Info) -> list[Member]: ...

    @from_tree("external_ids", _external_ids)
    def external_ids(self, info: Info) -> list[ExternalId]: ...


@strawberry.type(description="Membership of an actor in a group over a time span (open ends are null).")
class Membership:
    group: Actor
    relation: str
    valid_from: dt.date | None
    valid_to: dt.date | None


@strawberry.type(description="An actor that is a member or partner of a group over a time span (open ends are null).")
class Member:
    member: Actor
    relation: str
    valid_from: dt.date | None
    valid_to: dt.date | None


@strawberry.type(description="A country, province (admin1), district (admin2), area or locality.")
class Place(_Record):
    name: str
    kind: str
    _loader = "places"

    @classmethod
    def of(cls, tree: dict) -> Place:
        return cls(tree=tree, id=strawberry.ID(tree["id"]), name=tree["name"], kind=tree["kind"])

    @from_tree("iso2")
    def iso2(self, info: Info) -> str | None: ...

    @from_tree("iso3")
    def iso3(self, info: Info) -> str | None: ...

    @from_tree("latitude")
    def latitude(self, info: Info) -> float | None: ...

    @from_tree("longitude")
    def longitude(self, info: Info) -> float | None: ...

    @from_tree("ancestors", lambda items: [Place.of(a) for a in items], description="From the country down to the parent.")
    def ancestors(self, info: Info) -> list[Place]: ...

    @from_tree("ancestors", lambda items: Place.of(items[-1]) if items else None)
    def parent(self, info: Info) -> Place | None: ...

    @from_tree("aliases")
    def aliases(self, info: Info) -> list[str]: ...

    @from_tree("external_ids", _external_ids)
    def external_ids(self, info: Info) -> list[ExternalId]: ...


@strawberry.type(description="A published report that claims come from.")
class Document(_Record):
    title: str | None
    publisher: str | None
    url: str | None
    published_at: dt.date | None
    _loader = "documents"

    @classmethod
    def of(cls, tree: dict) -> Document:
        return cls(tree=tree, id=strawberry.ID(tree["id"]), title=tree["title"], publisher=tree["publisher"],
                   url=tree["url"], published_at=_date(tree["published_at"]))

    @from_tree("language")
    def language(self, info: Info) -> str | None: ...

    @from_tree("excerpt")
    def excerpt(self, info: Info) -> str | None: ...

    @from_tree("claim_count", description="How many claims come from the document.")
    def claim_count(self, info: Info) -> int: ...


@strawberry.type(description="The value a claim states: a figure, an actor, a place, a date or a text.")
class ClaimValue:
    low: int | None = None
    best: int | None = None
    high: int | None = None
    actor: Actor | None = None
    place: Place | None = None
    date: dt.date | None = None
    text: str | None = None


def _claim_value(v: dict | None) -> ClaimValue | None:
    if not v:
        return None
    return ClaimValue(low=v.get("low"), best=v.get("best"), high=v.get("high"),
                      actor=Actor.of(v["actor"]) if v.get("actor") else None,
                      place=Place.of(v["place"]) if v.get("place") else None,
                      date=_date(v.get("date")), text=v.get("text"))


@strawberry.type(description="One statement by one claimant in one document about one event.")
class Claim(_TreeNode):
    event_id: strawberry.ID
    claimant: Actor
    via: Actor | None = strawberry.field(description="The channel the claim came through, e.g. a wire service.")
    speaker: str | None
    document: Document | None
    predicate: str
    stance: Stance
    value: ClaimValue | None
    quote: str | None = strawberry.field(description="The source's words, verbatim.")
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, tree: dict) -> Claim:
        return cls(tree=tree, id=strawberry.ID(tree["id"]), event_id=strawberry.ID(tree["event_id"]),
                   claimant=Actor.of(tree["claimant"]), via=Actor.of(tree["via"]) if tree["via"] else None,
                   speaker=tree["speaker"], document=Document.of(tree["document"]) if tree["document"] else None,
                   predicate=tree["predicate"], stance=Stance(tree["stance"]), value=_claim_value(tree["value"]),
                   quote=tree["quote"], created_at=_datetime(tree["created_at"]),
                   updated_at=_datetime(tree["updated_at"]))


@strawberry.type(description="Fatalities derived from the claims (see the README for the rule).")
class Fatalities:
    low: int | None
    best: int | None
    high: int | None
    civilians: int | None
    civilians_low: int | None
    civilians_high: int | None
    claim_ids: list[strawberry.ID]


def _fatalities(f: dict) -> Fatalities:
    return Fatalities(low=f["low"], best=f["best"], high=f["high"], civilians=f["civilians"],
                      civilians_low=f["civilians_low"], civilians_high=f["civilians_high"],
                      claim_ids=[strawberry.ID(i) for i in f["claim_ids"]])


@strawberry.type
class EventActor:
    role: EventRole
    status: AttributionStatus | None = strawberry.field(
        description="Attribution status derived from the claims; null for participants.")
    status_claim_ids: list[strawberry.ID] = strawberry.field(description="The claims that made the status.")
    actor: Actor


# (the parts as db/queries/matches.py declares them, each nullable: null when not measured)
MatchParts = strawberry.type(type("MatchParts", (), {
    "__annotations__": dict.fromkeys(matches.MATCH_PARTS, float | None),
    **{part: strawberry.field(description=about) for part, (_, about) in matches.MATCH_PARTS.items()}}),
    description="How a match scored, part by part (0-1 each; null when a part could not be measured).")


@strawberry.enum(description="What the one-to-one selection of links made of a pair (see the README).")
class MatchStatus(Enum):
    LINKED = "linked"
    CONTENDER = "contender"
    CANDIDATE = "candidate"


@strawberry.type(description="An editor's verdict on a pair: it overrides the score.")
class LinkVerdict:
    verdict: str = strawberry.field(description="confirmed or rejected.")
    note: str | None
    decided_by: str
    decided_at: dt.datetime


@strawberry.type(description="The other record of a match: what REST's /v1/events/{id}/matches nests as `event`.")
class MatchedEvent:
    id: strawberry.ID
    event_type: str
    sub_event_type: str
    date_start: dt.date
    date_end: dt.date
    date_precision: str
    place: Place
    fatalities_best: int | None
    external_ids: list[ExternalId]

    @classmethod
    def of(cls, e: dict) -> MatchedEvent:
        return cls(id=strawberry.ID(e["id"]), event_type=e["event_type"], sub_event_type=e["sub_event_type"],
                   date_start=_date(e["date_start"]), date_end=_date(e["date_end"]),
                   date_precision=e["date_precision"], place=Place.of(e["place"]),
                   fatalities_best=e["fatalities_best"], external_ids=_external_ids(e["external_ids"]))


@strawberry.type(description="Another source's event that may be the same happening.")
class EventMatch:
    event: MatchedEvent = strawberry.field(description="The other record, as REST nests it (eventId, externalIds, "
                                                       "dateStart... repeat parts of it).")
    event_id: strawberry.ID
    external_ids: list[ExternalId]
    date_start: dt.date
    date_end: dt.date
    sub_event_type: str
    place_name: str
    fatalities_best: int | None
    score: float = strawberry.field(description=matches.SCORE_DESCRIPTION)
    status: MatchStatus
    linked: bool = strawberry.field(description=matches.LINKED_DESCRIPTION)
    days_apart: int
    distance_km: float | None
    parts: MatchParts
    verdict: LinkVerdict | None = strawberry.field(description="An editor's verdict on the pair, or null.")

    @classmethod
    def of(cls, match: dict) -> EventMatch:
        other, verdict = MatchedEvent.of(match["event"]), match["verdict"]
        return cls(event=other, event_id=other.id, external_ids=other.external_ids, date_start=other.date_start,
                   date_end=other.date_end, sub_event_type=other.sub_event_type, place_name=other.place.name,
                   fatalities_best=other.fatalities_best, score=match["score"], status=MatchStatus(match["status"]),
                   linked=match["linked"], days_apart=match["days_apart"], distance_km=match["distance_km"],
                   parts=MatchParts(**match["parts"]),
                   verdict=LinkVerdict(verdict=verdict["verdict"], note=verdict["note"],
                                       decided_by=verdict["decided_by"], decided_at=_datetime(verdict["decided_at"]))
                   if verdict else None)


@strawberry.type(description="Another source's record of the same happening (a linked match), as REST's event "
                             "detail lists it.")
class LinkedEvent:
    id: strawberry.ID
    score: float
    external_ids: list[ExternalId]


def _linked_events(items: list[dict]) -> list[LinkedEvent]:
    return [LinkedEvent(id=strawberry.ID(x["id"]), score=x["score"], external_ids=_external_ids(x["external_ids"]))
            for x in items]


@strawberry.type(description="Something that happened at a place over a time interval.")
class Event(_TreeNode):
    event_type: str
    sub_event_type: str
    type_of_violence: int | None
    date_start: dt.date
    date_end: dt.date
    date_precision: str
    place: Place
    latitude: float | None
    longitude: float | None
    geo_precision: str
    fatalities: Fatalities
    summary: str | None
    actors: list[EventActor]
    distance_km: float | None = strawberry.field(description="With `near`: great-circle distance from the point, in km.")
    claim_count: int
    external_ids: list[ExternalId]
    happening: Happening = strawberry.field(description="The happening it is a record of (linked records of "
                                                        "other sources), or its own.")
    claims: list[Claim]
    created_at: dt.datetime
    updated_at: dt.datetime
    _loader = "events"

    @from_tree("linked_events", _linked_events, description="Other sources' records of the same happening, best "
                                                            "score first (the linked ones of `matches`).")
    def linked_events(self, info: Info) -> list[LinkedEvent]: ...

    @strawberry.field(description="Other sources' events that may be the same happening, best score first "
                                  "(cross-source linking; `linked` ones are).")
    async def matches(self, info: Info, first: int = 50, after: str | None = None) -> Connection[EventMatch]:
        return await connection(info, first, after, matches.list_matches, EventMatch.of, UUID(self.id))

    @classmethod
    def of(cls, tree: dict) -> Event:
        return cls(
            tree=tree, id=strawberry.ID(tree["id"]), event_type=tree["event_type"],
            sub_event_type=tree["sub_event_type"], type_of_violence=tree["type_of_violence"],
            date_start=_date(tree["date_start"]), date_end=_date(tree["date_end"]),
            date_precision=tree["date_precision"], place=Place.of(tree["place"]), latitude=tree["latitude"],
            longitude=tree["longitude"], geo_precision=tree["geo_precision"],
            fatalities=_fatalities(tree["fatalities"]),
            summary=tree["summary"],
            actors=[EventActor(role=EventRole(a["role"]),
                               status=AttributionStatus(a["status"]) if a["status"] else None,
                               status_claim_ids=[strawberry.ID(i) for i in a["status_claim_ids"]],
                               actor=Actor.of(a["actor"])) for a in tree["actors"]],
            distance_km=tree.get("distance_km"), claim_count=tree["claim_count"],
            external_ids=_external_ids(tree["external_ids"]), happening=Happening.of(tree["happening"]),
            # lists carry claims only when they are selected (schema/queries.py)
            claims=[Claim.of(c) for c in tree.get("claims") or ()],
            created_at=_datetime(tree["created_at"]), updated_at=_datetime(tree["updated_at"]))


@strawberry.type(description="One actor in one role: its attribution status and the claims behind it.")
class ActorAttribution:
    actor: Actor
    role: EventRole
    status: AttributionStatus
    claim_ids: list[strawberry.ID] = strawberry.field(description="The claims that made the status.")


@strawberry.type(description="Records of one happening from several sources (linked: see Event.matches), with "
                             "what all their claims say together, by the same rules as one event's figures.")
class Happening(_TreeNode):
    record_count: int
    _loader = "happenings"

    @classmethod
    def of(cls, tree: dict) -> Happening:
        return cls(tree=tree, id=strawberry.ID(tree["id"]), record_count=tree["record_count"])

    @from_tree("records", lambda items: [Event.of(t) for t in items],
               description="Each record with its claims, by source, then date.")
    def records(self, info: Info) -> list[Event]: ...

    @from_tree("sources", description="The datasets its records come from.")
    def sources(self, info: Info) -> list[str]: ...

    @from_tree("date_start", _date, description="The earliest start of its records: the dates are their span.")
    def date_start(self, info: Info) -> dt.date: ...

    @from_tree("date_end", _date, description="The latest end of its records.")
    def date_end(self, info: Info) -> dt.date: ...

    @from_tree("fatalities", _fatalities, description="From every record's fatality claims together.")
    def fatalities(self, info: Info) -> Fatalities: ...

    @from_tree("attribution", lambda items: [
            ActorAttribution(actor=Actor.of(a["actor"]), role=EventRole(a["role"]),
                             status=AttributionStatus(a["status"]),
                             claim_ids=[strawberry.ID(i) for i in a["claim_ids"]]) for a in items],
               description="Per actor and role (perpetrator, target), from every record's claims together.")
    def attribution(self, info: Info) -> list[ActorAttribution]: ...


@strawberry.type(description="One group of eventStats: the keys asked for (others null), then the measures. "
                             "An event counts once, in the period holding its first day inside the asked dates.")
class EventStat:
    country: str | None = None
    country_id: strawberry.ID | None = None
    admin1: str | None = None
    admin1_id: strawberry.ID | None = None
    admin2: str | None = None
    admin2_id: strawberry.ID | None = None
    year: int | None = None
    month: str | None = strawberry.field(default=None, description="YYYY-MM")
    week: str | None = strawberry.field(default=None, description="ISO week, YYYY-Www")
    day: dt.date | None = None
    event_type: str | None = None
    sub_event_type: str | None = None
    perpetrator: str | None = None
    perpetrator_id: strawberry.ID | None = None
    claimant: str | None = None
    claimant_id: strawberry.ID | None = None
    events: int = 0
    fatalities_low: int = 0
    fatalities_best: int = 0
    fatalities_high: int | None = strawberry.field(
        default=0, description="Null when an event of the group has an open upper bound (\"over two dozen\").")
    civilian_fatalities: int = 0

    @classmethod
    def of(cls, row: dict) -> EventStat:
        return cls(**{**row, "day": _date(row["day"])} if "day" in row else row)


# (made from the feed's own lists, as REST's Change is)
ChangeOp = strawberry.enum(Enum("ChangeOp", {op.upper(): op for op in history.CHANGE_OPS}),
                           description="What a write did to a record.")
RecordType = strawberry.enum(Enum("RecordType", {kind.upper(): kind for kind in history.FEED_RECORD_TYPES}),
                             description="The kinds of record the change feed lists.")


@strawberry.type(description="One record and one write to it, in the order the writes committed (REST: "
                             "GET /v1/changes). A mirror reads the record again (`event(id)` and the like; "
                             "a deleted one is null).")
class Change:
    op: ChangeOp
    type: RecordType
    id: strawberry.ID
    at: dt.datetime
    merged_into: strawberry.ID | None = strawberry.field(default=None, description="For a merge: the record "
                                                                                   "that survives.")

    @classmethod
    def of(cls, entry: dict) -> Change:
        return cls(op=ChangeOp(entry["op"]), type=RecordType(entry["type"]), id=strawberry.ID(entry["id"]),
                   at=entry["at"], merged_into=entry.get("merged_into"))


@strawberry.type(description="A page of the change feed.")
class ChangeFeed:
    data: list[Change]
    next_cursor: str = strawberry.field(description="Pass as `since` to go on from here (also when data is empty).")
    has_more: bool = strawberry.field(description="More changes wait after this page: ask again at once.")
