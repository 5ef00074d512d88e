"""Event reads: lists through the filter compiler, and whole event trees as JSON.

An event's tree (place with its ancestors, actors with roles and attribution, claims
with claimant, document, value and quote, external ids) is built by PostgreSQL in one
statement for a whole page of events, so a page costs two statements whatever its size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import replace
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Double,
    Numeric,
    and_,
    case,
    func,
    literal,
    literal_column,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models as m
from db.cache import AnswerCache
from db.filters import (
    ActorMatch,
    Collapse,
    EventFilter,
    FilterError,
    ResolvedFilter,
    compile_event_filter,
    distance_km,
    first_of_its_happening,
    resolve_event_filter,
    split_external_id,
    text_query,
    within_near,
)
from db.pagination import CursorCodec, Page, PageRequest, Sort, decode_date
from db.queries.common import (
    ACTOR_REF,
    PLACE_TREE,
    TreeLoader,
    keyset_page,
    parse_uuid,
    tree_loader,
    tree_of,
)
from db.queries.stats import count_from_rollup, rollup_answers

e = m.events.c
_FATALITIES_KEY = func.coalesce(e.fatalities_best, literal_column("-1"))  # matches ix_events_fatalities
EVENT_SORTS = {
    s.name: s for s in (
        Sort("-date", (e.date_start, e.id), (decode_date, UUID), descending=True, scope="events"),
        Sort("date", (e.date_start, e.id), (decode_date, UUID), descending=False, scope="events"),
        Sort("-fatalities", (_FATALITIES_KEY, e.id), (int, UUID), descending=True, scope="events"),
        Sort("fatalities", (_FATALITIES_KEY, e.id), (int, UUID), descending=False, scope="events"),
    )
}
SORT_NAMES = (*EVENT_SORTS, "relevance", "distance")


def event_sort(name: str, f: EventFilter) -> Sort:
    """The sort of that name; `relevance` ranks by the text query `q`, `distance` from `near`."""
    if name == "relevance":
        if f.q is None:
            raise FilterError("sort", "relevance needs a text query ({q}) beside it, not only inside _and/_or/_not",
                              "not_applicable", mentions=("q",))
        return Sort("relevance", (func.ts_rank_cd(e.search_vector, text_query(f.q)), e.id), (float, UUID),
                    descending=True, scope="events", variant=hashlib.sha256(f.q.encode()).hexdigest()[:16])
    if name == "distance":
        if f.near is None:
            raise FilterError("sort", "distance needs a point ({near}) beside it, not only inside _and/_or/_not",
                              "not_applicable", mentions=("near",))
        return Sort("distance", (distance_km(f.near), e.id), (float, UUID), descending=False, scope="events",
                    variant=f"{f.near.latitude},{f.near.longitude}")
    try:
        return EVENT_SORTS[name]
    except KeyError:
        raise FilterError("sort", f"must be one of {', '.join(SORT_NAMES)}, not {name!r}", "not_one_of") from None

CLAIM_TREE = f"""json_build_object(
  'id', c.id,
  'event_id', c.event_id,
  'claimant', {ACTOR_REF.format(id="c.claimant_id")},
  'via', {ACTOR_REF.format(id="c.via_id")},
  'speaker', c.speaker,
  'document', (SELECT json_build_object('id', d.id, 'title', d.title, 'publisher', d.publisher, 'url', d.url,
                                         'published_at', d.published_at)
                 FROM documents d WHERE d.id = c.document_id),
  'predicate', c.predicate,
  'stance', c.stance,
  'value', CASE WHEN num_nonnulls(c.value_low, c.value_best, c.value_high, c.value_actor_id, c.value_place_id,
                                  c.value_date, c.value_text) > 0 THEN json_strip_nulls(json_build_object(
      'low', c.value_low, 'best', c.value_best, 'high', c.value_high,
      'actor', {ACTOR_REF.format(id="c.value_actor_id")},
      'place', (SELECT json_build_object('id', vp.id, 'name', vp.name, 'kind', vp.kind)
                  FROM places vp WHERE vp.id = c.value_place_id),
      'date', c.value_date, 'text', c.value_text)) END,
  'quote', c.quote,
  'created_at', c.created_at,
  'updated_at', c.updated_at)"""

# An event's matches with other sources' events (db/linking.py), whichever side of the
# pair it is on: the other event (match_id), the score and whether they are linked.
MATCHES_OF = """SELECT other_id AS match_id, score, linked FROM event_matches WHERE event_id = {event}
                 UNION ALL
                 SELECT event_id, score, linked FROM event_matches WHERE other_id = {event}"""

# The happening an event is a record of (db/linking.py): its id and how many records it
# has; an event linked to none is a happening of its own, under its own id.
_HAPPENING_REF = """coalesce((
      SELECT json_build_object('id', hm.happening_id, 'record_count', count(*))
        FROM happening_members hm JOIN happening_members hr ON hr.happening_id = hm.happening_id
       WHERE hm.event_id = e.id GROUP BY hm.happening_id),
    json_build_object('id', e.id, 'record_count', 1))"""

# An event's tree as a JSON expression over `e` (the event) and `p` (its place, outer
# joined); `{claims}`: what only the detail adds.
_EVENT_TREE = f"""json_build_object(
  'id', e.id,
  'event_type', e.event_type,
  'sub_event_type', e.sub_event_type,
  'type_of_violence', e.type_of_violence,
  'date_start', e.date_start,
  'date_end', e.date_end,
  'date_precision', e.date_precision,
  'place', {PLACE_TREE.format(id="e.place_id", extra="")},
  'latitude', coalesce(e.latitude, p.latitude),
  'longitude', coalesce(e.longitude, p.longitude),
  'geo_precision', e.geo_precision,
  'fatalities', json_build_object(
      'low', e.fatalities_low, 'best', e.fatalities_best, 'high', e.fatalities_high,
      'civilians', e.civilian_fatalities_best,
      'civilians_low', e.civilian_fatalities_low, 'civilians_high', e.civilian_fatalities_high,
      'claim_ids', to_json(e.fatality_claim_ids)),
  'summary', e.summary,
  'actors', coalesce((
      SELECT json_agg(json_build_object(
                 'role', ea.role, 'status', ea.status, 'status_claim_ids', to_json(ea.status_claim_ids),
                 'actor', json_build_object('id', ea.actor_id, 'name', a.name, 'kind', a.kind))
               ORDER BY array_position(ARRAY['perpetrator', 'target', 'participant'], ea.role), a.name)
        FROM event_actors ea LEFT JOIN actors a ON a.id = ea.actor_id
       WHERE ea.event_id = e.id), '[]'::json),
  'claim_count', (SELECT count(*) FROM claims c WHERE c.event_id = e.id),{{claims}}
  'external_ids', coalesce((
      SELECT json_agg(json_build_object('dataset', x.dataset, 'id', x.external_id)
                       ORDER BY x.dataset, x.external_id)
        FROM event_external_ids x WHERE x.event_id = e.id), '[]'::json),
  'happening', {_HAPPENING_REF},
  'created_at', e.created_at,
  'updated_at', e.updated_at
)"""
_CLAIMS = f"""
  'claims', coalesce((SELECT json_agg({CLAIM_TREE} ORDER BY c.predicate, c.created_at, c.id)
                        FROM claims c WHERE c.event_id = e.id), '[]'::json),
  'linked_events', coalesce((
      SELECT json_agg(json_build_object('id', m.match_id, 'score', m.score, 'external_ids', coalesce((
                          SELECT json_agg(json_build_object('dataset', x.dataset, 'id', x.external_id)
                                          ORDER BY x.dataset, x.external_id)
                            FROM event_external_ids x WHERE x.event_id = m.match_id), '[]'::json))
                      ORDER BY m.score DESC, m.match_id)
        FROM ({MATCHES_OF.format(event="e.id")}) m WHERE m.linked), '[]'::json),"""

# The detail carries every claim; list items carry claim_count only.
EVENT_TREE_JSON = _EVENT_TREE.format(claims=_CLAIMS)
EVENT_LIST_TREE_JSON = _EVENT_TREE.format(claims="")


def _trees_of_ids(tree: str) -> str:
    """The trees of the events :ids, in the order of the ids."""
    return f"""
SELECT {tree} AS tree
FROM unnest(:ids) WITH ORDINALITY AS page(id, ord)
JOIN events e ON e.id = page.id
-- (outer joins: an event read as of a time may name a place or actor deleted since)
LEFT JOIN places p ON p.id = e.place_id
ORDER BY page.ord
"""


EVENT_TREE_SQL = _trees_of_ids(EVENT_TREE_JSON)
EVENT_LIST_TREE_SQL = _trees_of_ids(EVENT_LIST_TREE_JSON)
event_trees = tree_loader(text(EVENT_TREE_SQL))
event_list_trees = tree_loader(text(EVENT_LIST_TREE_SQL))


# Per actor and role of the events :ids: the attribution status (db/derive.py has the
# rule) and the claims that made it so.
ATTRIBUTION_SQL = f"""
SELECT coalesce(json_agg(json_build_object(
         'actor', json_build_object('id', ea.actor_id, 'name', a.name, 'kind', a.kind),
         'role', ea.role,
         'status', ea.status,
         'claim_ids', to_json(ea.status_claim_ids),
         'claims', coalesce((
             SELECT json_agg(json_build_object(
                        'id', c.id, 'claimant', {ACTOR_REF.format(id="c.claimant_id")}, 'predicate', c.predicate,
                        'stance', c.stance, 'quote', c.quote, 'document_id', c.document_id)
                      ORDER BY c.created_at, c.id)
               FROM claims c WHERE c.id = ANY(ea.status_claim_ids)), '[]'::json))
       ORDER BY ea.event_id, array_position(ARRAY['perpetrator', 'target'], ea.role), a.name), '[]'::json)
  FROM event_actors ea LEFT JOIN actors a ON a.id = ea.actor_id
 WHERE ea.event_id = ANY(:ids) AND ea.role IN ('perpetrator', 'target')
"""


async def resolve_event_id(conn: AsyncConnection, ref: str) -> UUID | None:
    """An event's id from its id or an external id (`ucdp-ged:214797`); None if unknown."""
    if (pair := split_external_id(ref)) is not None:
        x = m.event_external_ids.c
        return await conn.scalar(select(x.event_id).where(x.dataset == pair[0], x.external_id == pair[1]))
    event_id = parse_uuid(ref)
    if event_id is None:
        return None
    return await conn.scalar(select(e.id).where(e.id == event_id))


async def event_id_of(conn: AsyncConnection, ref: str) -> UUID | None:
    """The event `ref` names, or, when `ref` is an id, that id even if the event is gone
    (deleted, merged: its history, tombstone and past states are still there)."""
    return await resolve_event_id(conn, ref) or parse_uuid(ref)


async def get_event(conn: AsyncConnection, ref: str) -> dict | None:
    return await tree_of(conn, event_trees, await resolve_event_id(conn, ref))


def _rounded_km(distance: ColumnElement[float]) -> ColumnElement[float]:
    """A distance as shown: to the metre."""
    return func.round(distance.cast(Numeric), 3).cast(Double)


def _collapsed(order: Sort, collapse: Collapse | None) -> Sort:
    """The order of a list collapsed (or not): its cursors are good for that list only."""
    return order if collapse is None else replace(order, scope=f"{order.scope}/{collapse.value}")


async def list_events(conn: AsyncConnection, page: PageRequest, codec: CursorCodec,
                      cache: AnswerCache, f: EventFilter | ResolvedFilter, *,
                      sort: str = "-date", with_claims: bool = False, collapse: Collapse | None = None,
                      trees: TreeLoader | None = None,
                      with_records: tuple[Hashable, Callable[[str], str]] | None = None) -> Page:
    """One page of event trees matching a filter, in `sort` order after the page's cursor.
    With `near`, each event carries its `distance_km` from the point. Collapsed by
    happening, one event per happening: the first of its records that match, in `sort`
    order (db.filters.first_of_its_happening), and the total counts happenings. `trees`:
    how the page's events are loaded (default: their trees, with claims or not), or
    `with_records`, their JSON brought by the page's own statement when it can
    (db.queries.common.keyset_page). The filter's names are resolved once, for the page
    and its total alike."""
    order = _collapsed(event_sort(sort, f.filter if isinstance(f, ResolvedFilter) else f), collapse)
    trees = trees or (event_trees if with_claims else event_list_trees)
    resolved = await resolve_event_filter(conn, f)
    f = resolved.filter
    if order.name == "distance":
        return await _list_nearest_first(conn, page, codec, cache, resolved, order, trees, collapse)
    actor_matches: list[ActorMatch] = []
    condition = await compile_event_filter(conn, resolved, actor_matches=actor_matches)
    annotate = {"distance_km": _rounded_km(distance_km(f.near))} if f.near else {}
    everything = and_(condition, *(match.condition() for match in actor_matches))
    first_of_happening = true()
    if collapse is Collapse.HAPPENING:
        first_of_happening = first_of_its_happening(everything, order.columns, order.descending)
        everything = and_(everything, first_of_happening)
    by_date = None
    if actor_matches and order.name in ("-date", "date"):
        by_date = actor_matches[0].events_by_date(descending=order.descending)

    async def through_actor(after, limit: int):
        """An actor's events in date order straight from its index (ActorMatch.events_by_date)
        rather than every event in date order, each tested for the actor."""
        key = replace(order, columns=(by_date.c.date_start, by_date.c.event_id))
        stmt = (select(e.id, *annotate.values(), *key.columns)
                .select_from(m.events.join(by_date, by_date.c.event_id == e.id))
                .where(condition, *(match.condition() for match in actor_matches[1:]), first_of_happening)
                .ext(distinct_on(*key.columns)))  # an event reached through two members
        return (await conn.execute(key.apply(stmt, after).limit(limit))).all()

    return await keyset_page(conn, e.id, everything, sort=order, page=page, codec=codec, cache=cache,
                             trees=trees, annotate=annotate,
                             fetch_rows=through_actor if by_date is not None else None,
                             count=(lambda: count_from_rollup(conn, resolved))
                             if page.count and not collapse and rollup_answers(f) else None,
                             compiled=resolved.compiled, with_records=with_records)


# "Nearest first" probes this share of the radius beyond the cursor first, then four
# times as far each time until a page is found, so a page near a busy point reads a
# few points and one in empty country reaches the whole radius in a few steps.
FIRST_PROBE_SHARE = 1 / 16
# The expressions ix_events_point indexes (migration 0004).
_EVENT_LONGITUDE = literal_column("events.location[0]", Double)
_EVENT_LATITUDE = literal_column("events.location[1]", Double)
_LOWEST_ID = UUID(int=0)


async def _list_nearest_first(conn: AsyncConnection, page: PageRequest, codec: CursorCodec,
                              cache: AnswerCache, resolved: ResolvedFilter,
                              order: Sort, trees: TreeLoader, collapse: Collapse | None) -> Page:
    """sort=distance: the points near the centre nearest first (event_points), and at
    each point its events in id order (ix_events_point), which is the order (distance,
    id) without computing a distance per event or sorting every event in the radius."""
    near = resolved.filter.near
    assert near is not None  # event_sort refuses sort=distance without near
    others = await compile_event_filter(conn, resolved.without_near(), scan_in_order=False)
    if collapse is Collapse.HAPPENING:
        others = and_(others, first_of_its_happening(and_(others, within_near(near)), order.columns,
                                                     order.descending))
    pt = m.event_points.c

    async def nearest(after, limit: int):
        start = after[0] if after else 0.0
        step = near.radius_km * FIRST_PROBE_SHARE
        while True:
            reach = min(near.radius_km, start + step)
            distance = distance_km(near, pt.location)
            points = select(pt.longitude, pt.latitude, distance.label("distance")).where(
                within_near(replace(near, radius_km=reach), pt.location))
            if after:
                points = points.where(distance >= after[0])
            points = points.distinct().subquery("point")  # a point may be listed twice (migration 0004)
            there = select(e.id).where(_EVENT_LONGITUDE == points.c.longitude, _EVENT_LATITUDE == points.c.latitude,
                                       others)
            if after:
                # at the cursor's own point, after its id; further out, from the first id
                there = there.where(e.id > case((points.c.distance > after[0], literal(_LOWEST_ID)),
                                                else_=literal(after[1])))
            there = there.order_by(e.id).limit(limit).lateral("there")
            stmt = (select(there.c.id, _rounded_km(points.c.distance), points.c.distance, there.c.id)
                    .select_from(points.join(there, true()))
                    .order_by(points.c.distance, there.c.id).limit(limit))
            rows = (await conn.execute(stmt)).all()
            if len(rows) >= limit or reach >= near.radius_km:
                return rows
            step *= 4

    return await keyset_page(conn, e.id, and_(others, within_near(near)), sort=order, page=page, codec=codec, cache=cache,
                             trees=trees,
                             annotate={"distance_km": _rounded_km(distance_km(near))}, fetch_rows=nearest)
