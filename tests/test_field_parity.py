"""REST and GraphQL answer with the same fields (issue 16).

Every field of every type REST answers with (the OpenAPI document's component schemas
that its 2xx answers use) has a GraphQL field of the same type in the paired GraphQL
object type (introspection of schema.app's schema), and back, unless a table below
says why not. Types pair by name (REST's part of a record, a "ref", with the record's
GraphQL node); fields by name, REST's snake_case to GraphQL's camelCase. Where both
sides have a field, they agree on the type: nullable or not, list or not, and what is
in it (an id, string, int, float, boolean, date, date-time, which paired object, and
an enum's values). A field added to one side only fails here, naming the type and the
field.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from graphql import introspection_from_schema
from strawberry.utils.str_converters import to_camel_case

from api.app import create_app
from api.openapi import GRAPHQL_PATH
from schema.app import schema
from tests.conftest import AIRSTRIKE, as_, event_url, make_settings
from tests.test_graphql import gql

# --- the tables: every difference between the two interfaces, and why ----------------

# REST answers' types with no GraphQL type.
REST_ONLY_TYPES = {
    # known gaps, operations GraphQL does not have yet (its types would be added with them)
    "Attribution": "GET /v1/events/{id}/attribution: no GraphQL field yet (Event.actors has each status and "
                   "its claim ids, Happening.attribution the same rows as ActorAttribution)",
    "AttributionClaim": "the claims of Attribution (above)",
    "HistoryEntry": "GET /v1/events/{id}/history: no GraphQL field yet",
    "HistoryRecord": "the record of HistoryEntry (above)",
    "Vocabularies": "GET /v1/vocabularies: no GraphQL field yet",
    "EventTypeEntry": "a row of Vocabularies (above)",
    "SubEventTypeEntry": "a row of Vocabularies (above)",
    # by design
    "EventStats": "the envelope of GET /v1/stats/events: GraphQL's eventStats answers its rows (EventStat) "
                  "themselves, and group_by is eventStats' argument",
    "CallingApiKey": "GET /v1/apikeys/me says which key an HTTP request carries",
    "Health": "/healthz, a probe for load balancers and orchestrators",
    "Readiness": "/readyz, a probe for load balancers and orchestrators",
    "ReplicaReadiness": "a replica in Readiness (above)",
    "GeoJSONFeatureCollection": "a file format (GET /v1/events.geojson), as are CSV and NDJSON",
    "GeoJSONFeature": "a file format (GET /v1/events.geojson), as are CSV and NDJSON",
}

# GraphQL object types with no REST type (besides the Relay edges of the connections,
# whose node and cursor are REST's page items and next_cursor: see PAIRED_PATHS).
GRAPHQL_ONLY_TYPES = {
    "Query": "the operations, not an answer",
    "Mutation": "the operations, not an answer",
    "PageInfo": "Relay paging: REST's next_cursor is its endCursor (PAIRED_PATHS)",
    "DeletedRecord": "REST's DELETE answers 204 with no body",
}

# A REST type that is a part of a record (a reference to it, or the part every tree
# holds) where GraphQL has the record's node, whose other fields load when asked: only
# REST's fields are checked against the node (the whole record is paired on its own).
REST_PARTS = {
    "ActorRef": "Actor",
    "PlaceRef": "Place",
    "AncestorRef": "Place",
    "PlaceTree": "Place",
    "DocumentRef": "Document",
    "HappeningRef": "Happening",
}

# Types of other names on the two sides.
RENAMED_TYPES = {
    # REST's model of an editor's pair says time, place and type are always scored
    # (judging a pair scores it); GraphQL's EventLink.parts reuses EventMatch's MatchParts
    "LinkParts": "MatchParts",
}

# Fields paired across a path, where one side nests what the other has flat or
# wrapped: (REST type, REST path, GraphQL type, GraphQL path). A field that is a whole
# path here is paired by this table (its type agreeing with the other path's end),
# not by its name. "ListOf" is every REST page, "Connection" every GraphQL one.
PAIRED_PATHS = [
    ("ListOf", "data", "Connection", "edges.node"),
    ("ListOf", "next_cursor", "Connection", "pageInfo.endCursor"),
    ("ListOf", "total", "Connection", "totalCount"),
    # GraphQL's EventMatch had the other record flat before it had `event` as REST has it
    ("EventMatch", "event.id", "EventMatch", "eventId"),
    ("EventMatch", "event.external_ids", "EventMatch", "externalIds"),
    ("EventMatch", "event.date_start", "EventMatch", "dateStart"),
    ("EventMatch", "event.date_end", "EventMatch", "dateEnd"),
    ("EventMatch", "event.sub_event_type", "EventMatch", "subEventType"),
    ("EventMatch", "event.place.name", "EventMatch", "placeName"),
    ("EventMatch", "event.fatalities_best", "EventMatch", "fatalitiesBest"),
    # REST names the pair's events by id, GraphQL gives the events
    ("EventLink", "event", "EventLink", "event.id"),
    ("EventLink", "other", "EventLink", "other.id"),
]

# Fields on one side only: (type, field) -> why.
REST_ONLY_FIELDS: dict[tuple[str, str], str] = {}
GRAPHQL_ONLY_FIELDS = {
    ("Event", "matches"): "REST's GET /v1/events/{id}/matches, a page of its own",
    ("Connection", "edges"): "Relay's wrapping of a page's items: REST's data (PAIRED_PATHS)",
    ("Connection", "pageInfo"): "Relay's wrapping of the next cursor: REST's next_cursor (PAIRED_PATHS)",
    ("EventLink", "event"): "the event itself where REST gives its id (PAIRED_PATHS)",
    ("EventLink", "other"): "the event itself where REST gives its id (PAIRED_PATHS)",
}

# Fields on both sides whose types differ: (REST type, REST field) -> why.
TYPE_DIFFERENCES = {
    ("Event", "claims"): "REST: null, absent from list items (the detail only); GraphQL: read when selected",
    ("Event", "linked_events"): "REST: null, absent from list items (the detail only); GraphQL: loaded when "
                                "selected",
    ("LinkParts", "time"): "RENAMED_TYPES: GraphQL's MatchParts has every part nullable (a match's may be)",
    ("LinkParts", "place"): "RENAMED_TYPES: GraphQL's MatchParts has every part nullable (a match's may be)",
    ("LinkParts", "type"): "RENAMED_TYPES: GraphQL's MatchParts has every part nullable (a match's may be)",
}


# --- the two sides as clients see them ------------------------------------------------

@functools.cache
def openapi_document() -> dict:
    # (the document's own content: no lifespan, so no database, is needed to make it)
    app = create_app(make_settings(), database_url="postgresql://nobody@localhost/none",
                     redis_url="redis://localhost:1")
    return app.openapi()


@functools.cache
def introspection() -> dict:
    # (graphql-core's introspection of the schema strawberry built: the schema's own
    # extensions, which expect a request, are not run)
    return introspection_from_schema(schema._schema)


@dataclass(frozen=True)
class Shape:
    """A field's type on either side: `kind` is id, string, int, float, bool, date,
    datetime, json, list (`of` the items' Shape) or object (`of` its type's name)."""
    nullable: bool
    kind: str
    of: Shape | str | None = None
    values: frozenset[str] | None = None  # an enum's, lower case

    def __str__(self) -> str:
        inner = f"[{self.of}]" if self.kind == "list" else (self.of if self.kind == "object" else self.kind)
        return f"{inner}{'' if self.nullable else '!'}"


_FORMATS = {"uuid": "id", "date": "date", "date-time": "datetime"}
_JSON_TYPES = {"integer": "int", "number": "float", "boolean": "bool", "object": "json"}
_SCALARS = {"ID": "id", "String": "string", "Int": "int", "Float": "float", "Boolean": "bool", "Date": "date",
            "DateTime": "datetime", "JSON": "json"}


class Rest:
    """The OpenAPI document's response types."""

    def __init__(self, document: dict):
        self.schemas = document["components"]["schemas"]
        self.types = self._answer_types(document)

    def _answer_types(self, document: dict) -> set[str]:
        """The component schemas the 2xx JSON answers use, through every reference."""
        found: set[str] = set()

        def walk(node: object) -> None:
            if isinstance(node, dict):
                if (ref := node.get("$ref")) is not None:
                    name = ref.rsplit("/", 1)[1]
                    if name not in found:
                        found.add(name)
                        walk(self.schemas[name])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        for path, operations in document["paths"].items():
            if path == GRAPHQL_PATH:
                continue  # GraphQL's own transport: its answers are the other side of this test
            for operation in operations.values():
                for status, response in operation.get("responses", {}).items():
                    if status.startswith("2"):
                        walk(response.get("content", {}))
        return {name for name in found if "properties" in self.schemas[name]}  # (enums are no types)

    def fields(self, name: str) -> dict[str, Shape]:
        return {field: self.shape(spec) for field, spec in self.schemas[name]["properties"].items()}

    def shape(self, spec: dict, nullable: bool = False) -> Shape:
        if "anyOf" in spec:
            options = [option for option in spec["anyOf"] if option.get("type") != "null"]
            assert len(options) == 1, f"a union REST and GraphQL cannot both say: {spec}"
            return self.shape(options[0], nullable or len(options) < len(spec["anyOf"]))
        if "allOf" in spec and len(spec["allOf"]) == 1:
            return self.shape(spec["allOf"][0], nullable)
        if "$ref" in spec:
            name = spec["$ref"].rsplit("/", 1)[1]
            if "properties" not in self.schemas[name]:  # an enum of its own
                return self.shape(self.schemas[name], nullable)
            return Shape(nullable, "object", name)
        kind = spec.get("type")
        if kind == "array":
            return Shape(nullable, "list", self.shape(spec["items"]))
        if kind == "string":
            values = spec.get("enum") or ([spec["const"]] if "const" in spec else None)
            return Shape(nullable, _FORMATS.get(spec.get("format"), "string"),
                         values=frozenset(str(v).lower() for v in values) if values else None)
        return Shape(nullable, _JSON_TYPES.get(kind, "json"))


class GraphQL:
    """The GraphQL schema's object types, from its introspection."""

    def __init__(self, introspected: dict):
        self.by_name = {t["name"]: t for t in introspected["__schema"]["types"] if not t["name"].startswith("__")}
        self.types = {name for name, t in self.by_name.items() if t["kind"] == "OBJECT"}
        # the Relay edges of the connections: their node and cursor are REST's page items
        # and next_cursor (PAIRED_PATHS)
        self.edges = {self.fields(name)["edges"].of.of for name in self.types if _family(name) == "Connection"}

    def fields(self, name: str) -> dict[str, Shape]:
        return {field["name"]: self.shape(field["type"]) for field in self.by_name[name]["fields"]}

    def shape(self, ref: dict, nullable: bool = True) -> Shape:
        kind = ref["kind"]
        if kind == "NON_NULL":
            return self.shape(ref["ofType"], False)
        if kind == "LIST":
            return Shape(nullable, "list", self.shape(ref["ofType"]))
        if kind == "ENUM":
            values = frozenset(v["name"].lower() for v in self.by_name[ref["name"]]["enumValues"])
            return Shape(nullable, "string", values=values)
        if kind == "OBJECT":
            return Shape(nullable, "object", ref["name"])
        return Shape(nullable, _SCALARS[ref["name"]])


def graphql_type_for(rest: str) -> str | None:
    """The GraphQL type paired with a REST type; None for a REST-only one."""
    if rest in REST_ONLY_TYPES:
        return None
    if page := re.fullmatch(r"ListOf_(?:Listed)?(\w+?)_", rest):  # api/schemas.py ListOf
        items = graphql_type_for(page[1])
        return items and f"{items}Connection"
    if listed := re.fullmatch(r"Listed(\w+)", rest):  # api/schemas.py listed(): the same fields
        return graphql_type_for(listed[1])
    return REST_PARTS.get(rest) or RENAMED_TYPES.get(rest, rest)


def _family(name: str) -> str:
    """A type's name, or the family of pages it is one of (the tables' keys)."""
    if name.startswith("ListOf_"):
        return "ListOf"
    return "Connection" if name.endswith("Connection") else name


def _follow(fields_of, type_name: str, path: str) -> Shape | None:
    """The Shape at the end of `path` (dotted) from a type; None if it is not there.
    Going through a list gives a list; through a nullable field, a nullable end."""
    first, _, rest = path.partition(".")
    shape = fields_of(type_name).get(first)
    if shape is None or not rest:
        return shape
    inner = shape.of if shape.kind == "list" else shape
    end = _follow(fields_of, inner.of, rest) if inner.kind == "object" else None
    if end is None:
        return None
    if shape.kind == "list":
        return Shape(shape.nullable, "list", replace(end, nullable=end.nullable or inner.nullable))
    return replace(end, nullable=end.nullable or shape.nullable)


def _disagreement(rest: Shape, graphql: Shape) -> str | None:
    """How two fields' types disagree, or None."""
    if rest.nullable != graphql.nullable:
        return f"{'nullable' if rest.nullable else 'non-null'} in REST, not in GraphQL"
    if rest.kind != graphql.kind:
        return f"{rest.kind} in REST, {graphql.kind} in GraphQL"
    if rest.kind == "list":
        inner = _disagreement(rest.of, graphql.of)
        return inner and f"items: {inner}"
    if rest.kind == "object" and graphql_type_for(rest.of) != graphql.of:
        return f"REST's {rest.of} is paired with {graphql_type_for(rest.of)}, not GraphQL's {graphql.of}"
    if rest.values and graphql.values and not rest.values <= graphql.values:
        return f"REST's values {sorted(rest.values - graphql.values)} are not GraphQL's {sorted(graphql.values)}"
    return None


def parity_problems(document: dict, introspected: dict) -> list[str]:
    """Every difference between the two interfaces that the tables above do not explain,
    and every entry of the tables that explains nothing."""
    rest, graphql = Rest(document), GraphQL(introspected)
    problems: list[str] = []
    used: set[object] = set()

    pairs = [(name, graphql_type_for(name)) for name in sorted(rest.types)]
    for name, paired in pairs:
        if paired is None:
            used.add(name)
        elif paired not in graphql.types:
            problems.append(f"REST type {name} has no GraphQL type {paired}: add it, or say why in REST_ONLY_TYPES")
    paired_graphql = {paired for _, paired in pairs}
    for name in sorted(graphql.types - paired_graphql):
        if name in GRAPHQL_ONLY_TYPES:
            used.add(name)
        elif name not in graphql.edges:
            problems.append(f"GraphQL type {name} has no REST type: add it, or say why in GRAPHQL_ONLY_TYPES")

    for rest_type, graphql_type in pairs:
        if (listed := re.fullmatch(r"Listed(\w+)", rest_type)) is not None:
            # (api/schemas.py listed(): the record's fields, only id sure to be there)
            if set(rest.fields(rest_type)) != set(rest.fields(listed[1])):
                problems.append(f"REST type {rest_type} has other fields than {listed[1]}")
        elif graphql_type in graphql.types:
            problems += _field_problems(rest, graphql, rest_type, graphql_type, used)

    tables = [*REST_ONLY_TYPES, *GRAPHQL_ONLY_TYPES, *REST_ONLY_FIELDS, *GRAPHQL_ONLY_FIELDS, *TYPE_DIFFERENCES,
              *(tuple(row) for row in PAIRED_PATHS)]
    problems += [f"table entry {entry!r} explains nothing: remove it" for entry in tables if entry not in used]
    return problems


def _field_problems(rest: Rest, graphql: GraphQL, rest_type: str, graphql_type: str, used: set) -> Iterator[str]:
    rest_fields, graphql_fields = rest.fields(rest_type), graphql.fields(graphql_type)
    part_only = rest_type in REST_PARTS  # only REST's fields are checked against the node
    where = f"REST {rest_type} / GraphQL {graphql_type}"
    rest_by_path: set[str] = set()
    graphql_by_path: set[str] = set()
    for row in PAIRED_PATHS:
        rest_family, rest_path, graphql_family, graphql_path = row
        if (_family(rest_type), _family(graphql_type)) != (rest_family, graphql_family):
            continue
        used.add(row)
        ends = _follow(rest.fields, rest_type, rest_path), _follow(graphql.fields, graphql_type, graphql_path)
        if None in ends:
            yield f"{where}: PAIRED_PATHS row {row} names a field that is not there"
            continue
        if (problem := _disagreement(*ends)) is not None:
            yield f"{where}: {rest_path} ~ {graphql_path}: {problem}"
        if "." not in rest_path:
            rest_by_path.add(rest_path)
        if "." not in graphql_path:
            graphql_by_path.add(graphql_path)

    def allowed(table: dict, name: str) -> bool:
        for key in ((rest_type, name), (graphql_type, name), (_family(rest_type), name),
                    (_family(graphql_type), name)):
            if key in table:
                used.add(key)
                return True
        return False

    for field, shape in rest_fields.items():
        if field in rest_by_path:
            continue
        twin = to_camel_case(field)
        if twin not in graphql_fields or twin in graphql_by_path:
            if not allowed(REST_ONLY_FIELDS, field):
                yield (f"{where}: REST field {rest_type}.{field} has no GraphQL field {graphql_type}.{twin}: add it, "
                       "or say why in REST_ONLY_FIELDS")
            continue
        problem = _disagreement(shape, graphql_fields[twin])
        if problem is not None and not allowed(TYPE_DIFFERENCES, field):
            yield (f"{where}: {rest_type}.{field} ~ {graphql_type}.{twin}: {problem} (REST {shape}, GraphQL "
                   f"{graphql_fields[twin]}); make them agree, or say why in TYPE_DIFFERENCES")
    if part_only:
        return
    rest_names = {to_camel_case(field) for field in rest_fields if field not in rest_by_path}
    for field in graphql_fields:
        if field not in rest_names and field not in graphql_by_path and not allowed(GRAPHQL_ONLY_FIELDS, field):
            yield (f"{where}: GraphQL field {graphql_type}.{field} has no REST field in {rest_type}: add it, or "
                   "say why in GRAPHQL_ONLY_FIELDS")


# --- the tests ------------------------------------------------------------------------

def test_every_field_of_every_answer_is_on_both_interfaces_with_one_type():
    problems = parity_problems(openapi_document(), introspection())
    assert not problems, "\n".join(problems)


def _rest_field_added(document: dict, type_name: str, field: str, spec: dict) -> dict:
    changed = copy.deepcopy(document)
    changed["components"]["schemas"][type_name]["properties"][field] = spec
    return changed


def _graphql_field_added(introspected: dict, type_name: str, field: str, type_ref: dict) -> dict:
    changed = copy.deepcopy(introspected)
    graphql_type = next(t for t in changed["__schema"]["types"] if t["name"] == type_name)
    graphql_type["fields"].append({"name": field, "args": [], "type": type_ref})
    return changed


_NON_NULL_STRING = {"kind": "NON_NULL", "name": None, "ofType": {"kind": "SCALAR", "name": "String", "ofType": None}}


def _rest_changed(type_name: str, field: str, spec: dict):
    return lambda document, introspected: (_rest_field_added(document, type_name, field, spec), introspected)


@pytest.mark.parametrize("change, named", [
    pytest.param(_rest_changed("Event", "verified_by", {"type": "string"}),
                 "REST field Event.verified_by has no GraphQL field Event.verifiedBy", id="a REST field"),
    pytest.param(_rest_changed("ActorRef", "iso3", {"type": "string"}),
                 "REST field ActorRef.iso3 has no GraphQL field Actor.iso3", id="a field of a REST ref"),
    pytest.param(lambda document, introspected: (
        document, _graphql_field_added(introspected, "Document", "wordCount", _NON_NULL_STRING)),
                 "GraphQL field Document.wordCount has no REST field in Document", id="a GraphQL field"),
    pytest.param(_rest_changed("Claim", "quote", {"type": "string"}),
                 "Claim.quote ~ Claim.quote: non-null in REST, not in GraphQL", id="nullability"),
    pytest.param(_rest_changed("Fatalities", "claim_ids", {"type": "array", "items": {"type": "integer"}}),
                 "Fatalities.claim_ids ~ Fatalities.claimIds: items: int in REST, id in GraphQL", id="a list's items"),
    pytest.param(_rest_changed("EventActor", "role", {"type": "string", "enum": ["bystander"]}),
                 "REST's values ['bystander'] are not GraphQL's", id="an enum's values"),
    pytest.param(_rest_changed("EventMatch", "event", {"$ref": "#/components/schemas/PlaceRef"}),
                 "PAIRED_PATHS row", id="a paired path"),
])
def test_the_check_names_the_type_and_field_a_change_to_one_side_breaks(change, named):
    problems = parity_problems(*change(openapi_document(), introspection()))
    assert any(named in problem for problem in problems), "\n".join(problems)


def test_the_check_names_a_type_of_one_side_only():
    document = copy.deepcopy(openapi_document())
    document["components"]["schemas"]["LinkedEvent"]["properties"]["source"] = {
        "$ref": "#/components/schemas/Source"}
    document["components"]["schemas"]["Source"] = {"type": "object", "properties": {"name": {"type": "string"}}}
    problems = parity_problems(document, introspection())
    assert any("REST type Source has no GraphQL type Source" in problem for problem in problems), problems


# --- the new fields carry REST's values -------------------------------------------------

def _instant(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


async def test_events_dates_and_linked_events_as_rest_has_them_in_the_detail_and_in_lists(client):
    # (linked events that are there: tests/test_happenings.py, which links two sources' records)
    rest = (await client.get(event_url("al-qasr-strike"))).json()
    selection = "id createdAt updatedAt linkedEvents { id score externalIds { dataset id } }"
    body = await gql(client, f'query ($id: ID!) {{ event(id: $id) {{ {selection} }} }}', id=rest["id"])
    listed = await gql(client, f'{{ events(where: {{admin1: "Hasakah"}}) {{ edges {{ node {{ {selection} }} }} }} }}')
    assert "errors" not in body and "errors" not in listed, (body, listed)
    for node in (body["data"]["event"], listed["data"]["events"]["edges"][0]["node"]):
        assert node["id"] == rest["id"]
        assert _instant(node["createdAt"]) == _instant(rest["created_at"])
        assert _instant(node["updatedAt"]) == _instant(rest["updated_at"])
        assert [{"id": e["id"], "score": e["score"], "external_ids": e["externalIds"]}
                for e in node["linkedEvents"]] == rest["linked_events"]


async def test_actors_places_documents_and_claims_have_rests_fields(client):
    coalition = (await client.get("/v1/actors", params={"q": "US-led coalition"})).json()["data"][0]
    document = (await client.get("/v1/documents")).json()["data"][0]
    event = (await client.get(event_url("al-qasr-strike"))).json()
    claim, place = event["claims"][0], event["place"]
    place = (await client.get(f"/v1/places/{place['id']}")).json()
    body = await gql(client, """query ($actor: ID!, $document: ID!, $place: ID!, $event: ID!) {
        actor(id: $actor) { createdAt updatedAt members { member { id name kind } relation validFrom validTo } }
        document(id: $document) { claimCount createdAt updatedAt }
        place(id: $place) { createdAt updatedAt }
        claims(event: $event) { edges { node { id createdAt updatedAt
                                               document { claimCount createdAt } claimant { createdAt } } } } }""",
                     actor=coalition["id"], document=document["id"], place=place["id"], event=event["id"])
    assert "errors" not in body, body
    data = body["data"]
    assert coalition["members"], "the seeded coalition has members (RAF)"
    assert [{"member": m["member"], "relation": m["relation"], "valid_from": m["validFrom"], "valid_to": m["validTo"]}
            for m in data["actor"]["members"]] == coalition["members"]
    for node, record in ((data["actor"], coalition), (data["document"], document), (data["place"], place)):
        assert _instant(node["createdAt"]) == _instant(record["created_at"])
        assert _instant(node["updatedAt"]) == _instant(record["updated_at"])
    assert data["document"]["claimCount"] == document["claim_count"]
    nodes = {edge["node"]["id"]: edge["node"] for edge in data["claims"]["edges"]}
    assert _instant(nodes[claim["id"]]["updatedAt"]) == _instant(claim["updated_at"])
    # (a claim's document and claimant are references: their other fields load)
    with_document = next(node for node in nodes.values() if node["document"])
    assert with_document["document"]["claimCount"] >= 1 and with_document["claimant"]["createdAt"]


async def test_an_event_deleted_since_a_list_as_of_a_time_has_no_linked_events(fresh_client, keys):
    # (its node asks the detail tree it no longer has: it is linked to nothing now, as
    # the detail read as of that time says)
    editor = as_(keys["editor"])
    event = (await fresh_client.post("/v1/events", json=AIRSTRIKE, headers=editor)).json()
    then = dt.datetime.now(dt.timezone.utc).isoformat()
    assert (await fresh_client.delete(f"/v1/events/{event['id']}", headers=editor)).status_code == 204
    query = """query ($at: DateTime, $id: ID!) {
        events(asOf: $at, where: {admin1: ["Hasakah"]}) { edges { node { id createdAt linkedEvents { id } } } }
        event(id: $id, asOf: $at) { linkedEvents { id } } }"""
    body = await gql(fresh_client, query, at=then, id=event["id"])
    assert "errors" not in body, body
    nodes = {edge["node"]["id"]: edge["node"] for edge in body["data"]["events"]["edges"]}
    assert nodes[event["id"]]["linkedEvents"] == body["data"]["event"]["linkedEvents"] == []
    assert _instant(nodes[event["id"]]["createdAt"]) == _instant(event["created_at"])
