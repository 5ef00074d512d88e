"""GraphQL object types, backed by the JSON trees the query layer builds.

A node is created from whatever tree its parent already holds (an event's place, a
claim's claimant); a field the tree lacks loads the node's full tree through the
request's dataloader, so asking for more detail costs one batched query per type.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Generic, TypeVar
from uuid import UUID

import strawberry
from strawberry.types import Info

T = TypeVar("T")


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
    """Fields read from a tree; a missing field loads the full tree via `_loader`."""

    tree: strawberry.Private[dict]
    _loader = ""

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.tree["id"])

    async def _get(self, info: Info, key: str):
        if key not in self.tree:
            self.tree = await getattr(info.context, self._loader).load(UUID(self.tree["id"]))
        return self.tree[key]


@strawberry.type
class _NamedNode(_TreeNode):
    @strawberry.field
    def name(self) -> str:
        return self.tree["name"]

    @strawberry.field
    def kind(self) -> str:
        return self.tree["kind"]


@strawberry.type
class ExternalId:
    dataset: str
    id: str


def _external_ids(items: list[dict]) -> list[ExternalId]:
    return [ExternalId(dataset=x["dataset"], id=x["id"]) for x in items]


@strawberry.type(description="A state, force, armed group, or a source that speaks about events.")
class Actor(_NamedNode):
    _loader = "actors"

    @strawberry.field
    async def description(self, info: Info) -> str | None:
        return await self._get(info, "description")

    @strawberry.field
    async def aliases(self, info: Info) -> list[str]:
        return await self._get(info, "aliases")

    @strawberry.field
    async def parent(self, info: Info) -> Actor | None:
        parent = await self._get(info, "parent")
        return Actor(tree=parent) if parent else None

    @strawberry.field
    async def memberships(self, info: Info) -> list[Membership]:
        return [Membership(group=Actor(tree=ms["group"]), relation=ms["relation"],
                           valid_from=_date(ms["valid_from"]), valid_to=_date(ms["valid_to"]))
                for ms in await self._get(info, "memberships")]

    @strawberry.field
    async def external_ids(self, info: Info) -> list[ExternalId]:
        return _external_ids(await self._get(info, "external_ids"))


@strawberry.type(description="Membership of an actor in a group over a time span (open ends are null).")
class Membership:
    group: Actor
    relation: str
    valid_from: dt.date | None
    valid_to: dt.date | None


@strawberry.type(description="A country, province (admin1), district (admin2), area or locality.")
class Place(_NamedNode):
    _loader = "places"

    @strawberry.field
    async def iso2(self, info: Info) -> str | None:
        return await self._get(info, "iso2")

    @strawberry.field
    async def iso3(self, info: Info) -> str | None:
        return await self._get(info, "iso3")

    @strawberry.field
    async def latitude(self, info: Info) -> float | None:
        return await self._get(info, "latitude")

    @strawberry.field
    async def longitude(self, info: Info) -> float | None:
        return await self._get(info, "longitude")

    @strawberry.field(description="From the country down to the parent.")
    async def ancestors(self, info: Info) -> list[Place]:
        return [Place(tree=a) for a in await self._get(info, "ancestors")]

    @strawberry.field
    async def parent(self, info: Info) -> Place | None:
        ancestors = await self._get(info, "ancestors")
        return Place(tree=ancestors[-1]) if ancestors else None

    @strawberry.field
    async def aliases(self, info: Info) -> list[str]:
        return await self._get(info, "aliases")

    @strawberry.field
    async def external_ids(self, info: Info) -> list[ExternalId]:
        return _external_ids(await self._get(info, "external_ids"))


@strawberry.type(description="A published report that claims come from.")
class Document(_TreeNode):
    _loader = "documents"

    @strawberry.field
    def title(self) -> str | None:
        return self.tree["title"]

    @strawberry.field
    def publisher(self) -> str | None:
        return self.tree["publisher"]

    @strawberry.field
    def url(self) -> str | None:
        return self.tree["url"]

    @strawberry.field
    def published_at(self) -> dt.date | None:
        return _date(self.tree["published_at"])

    @strawberry.field
    async def language(self, info: Info) -> str | None:
        return await self._get(info, "language")

    @strawberry.field
    async def excerpt(self, info: Info) -> str | None:
        return await self._get(info, "excerpt")


@strawberry.type(description="The value a claim states: a figure, an actor, a place, a date or a text.")
class ClaimValue:
    low: int | None = None
    best: int | None = None
    high: int | None = None
    actor: Actor | None = None
    place: Place | None = None
    date: dt.date | None = None
    text: str | None = None


@strawberry.type(description="One statement by one claimant in one document about one event.")
class Claim(_TreeNode):

    @strawberry.field
    def event_id(self) -> strawberry.ID:
        return strawberry.ID(self.tree["event_id"])

    @strawberry.field
    def claimant(self) -> Actor:
        return Actor(tree=self.tree["claimant"])

    @strawberry.field(description="The channel the claim came through, e.g. a wire service.")
    def via(self) -> Actor | None:
        return Actor(tree=self.tree["via"]) if self.tree["via"] else None

    @strawberry.field
    def speaker(self) -> str | None:
        return self.tree["speaker"]

    @strawberry.field
    def document(self) -> Document | None:
        return Document(tree=self.tree["document"]) if self.tree["document"] else None

    @strawberry.field
    def predicate(self) -> str:
        return self.tree["predicate"]

    @strawberry.field
    def stance(self) -> Stance:
        return Stance(self.tree["stance"])

    @strawberry.field
    def value(self) -> ClaimValue | None:
        v = self.tree["value"]
        if not v:
            return None
        return ClaimValue(low=v.get("low"), best=v.get("best"), high=v.get("high"),
                          actor=Actor(tree=v["actor"]) if v.get("actor") else None,
                          place=Place(tree=v["place"]) if v.get("place") else None,
                          date=_date(v.get("date")), text=v.get("text"))

    @strawberry.field(description="The source's words, verbatim.")
    def quote(self) -> str | None:
        return self.tree["quote"]

    @strawberry.field
    def created_at(self) -> dt.datetime:
        return _datetime(self.tree["created_at"])


@strawberry.type(description="Fatalities derived from the claims (see the README for the rule).")
class Fatalities:
    low: int | None
    best: int | None
    high: int | None
    civilians: int | None
    civilians_low: int | None
    civilians_high: int | None
    claim_ids: list[strawberry.ID]


@strawberry.type
class EventActor:
    role: EventRole
    status: AttributionStatus | None = strawberry.field(
        description="Attribution status derived from the claims; null for participants.")
    status_claim_ids: list[strawberry.ID] = strawberry.field(description="The claims that made the status.")
    actor: Actor


@strawberry.type(description="Something that happened at a place over a time interval.")
class Event(_TreeNode):

    @strawberry.field
    def event_type(self) -> str:
        return self.tree["event_type"]

    @strawberry.field
    def sub_event_type(self) -> str:
        return self.tree["sub_event_type"]

    @strawberry.field
    def type_of_violence(self) -> int | None:
        return self.tree["type_of_violence"]

    @strawberry.field
    def date_start(self) -> dt.date:
        return _date(self.tree["date_start"])

    @strawberry.field
    def date_end(self) -> dt.date:
        return _date(self.tree["date_end"])

    @strawberry.field
    def date_precision(self) -> str:
        return self.tree["date_precision"]

    @strawberry.field
    def place(self) -> Place:
        return Place(tree=self.tree["place"])

    @strawberry.field
    def latitude(self) -> float | None:
        return self.tree["latitude"]

    @strawberry.field
    def longitude(self) -> float | None:
        return self.tree["longitude"]

    @strawberry.field
    def geo_precision(self) -> str:
        return self.tree["geo_precision"]

    @strawberry.field
    def fatalities(self) -> Fatalities:
        f = self.tree["fatalities"]
        return Fatalities(low=f["low"], best=f["best"], high=f["high"], civilians=f["civilians"],
                          civilians_low=f["civilians_low"], civilians_high=f["civilians_high"],
                          claim_ids=[strawberry.ID(i) for i in f["claim_ids"]])

    @strawberry.field
    def summary(self) -> str | None:
        return self.tree["summary"]

    @strawberry.field
    def actors(self) -> list[EventActor]:
        return [EventActor(role=EventRole(a["role"]),
                           status=AttributionStatus(a["status"]) if a["status"] else None,
                           status_claim_ids=[strawberry.ID(i) for i in a["status_claim_ids"]],
                           actor=Actor(tree=a["actor"]))
                for a in self.tree["actors"]]

    @strawberry.field(description="With `near`: great-circle distance from the point, in km.")
    def distance_km(self) -> float | None:
        return self.tree.get("distance_km")

    @strawberry.field
    def claim_count(self) -> int:
        return self.tree["claim_count"]

    @strawberry.field
    def claims(self) -> list[Claim]:
        return [Claim(tree=c) for c in self.tree["claims"] or []]

    @strawberry.field
    def external_ids(self) -> list[ExternalId]:
        return _external_ids(self.tree["external_ids"])


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(description="A Relay connection: pass pageInfo.endCursor as `after` for the next page.")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int | None = strawberry.field(description="The number of matches (computed only when asked).")
