"""Cross-source linking: which events from different sources describe one happening.

Records of one happening differ between sources: names, dates and figures. For each
event an import (or a write) adds or changes, candidates are the events of *other*
sources (no external id of the same dataset) in the same country, whose dates come
within MAX_DAYS_APART of its own, and that are within MAX_KM of it or share its area
when either is placed only coarsely. Each candidate pair is scored from 0 to 1:

    score = 0.30 time + 0.30 place + 0.10 type + 0.15 actors + 0.15 fatalities

- time: when the intervals overlap (an event known only to the month or the year
  spans it, so a precise event anywhere inside matches), 1 if neither is longer than
  a week, 0.75 if one spans up to a month, 0.5 if longer (a month-long operation
  overlaps every skirmish inside it: other evidence must carry a link); apart,
  1 - days apart / 8;
- place: both located (exact or near): 1 - km / 25 (0 beyond 25 km); else, placed
  coarsely, 0.8 in the same admin2, 0.7 in the same admin1, 0.5 in the same country;
- type: 1 the same sub-event type, 0.6 the same event type, 0.3 otherwise (UCDP calls
  an air strike a battle);
- actors: 1 when they share an actor, else 0.5 (sources name actors differently, so a
  miss is no evidence against);
- fatalities: 1 - |a - b| / max(a, b, 1) when both have a best figure, else 0.5.

A pair scoring LINK_THRESHOLD or more is linked: one happening, every record still
addressable by its own id (`linked_events` on an event, `linked` in its matches).
Pairs from CANDIDATE_THRESHOLD up are kept as candidates for review at
`GET /v1/events/{id}/matches`. The score is symmetric and every pair above the
threshold is kept, so what is matched does not depend on which source came first. A
week apart at the same place with other figures scores at most ~0.6: listed, not
linked.

Limit: an interval longer than a year and a day (none of UCDP's or ACLED's) is not
found as a candidate.
"""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

LINK_THRESHOLD = 0.8
CANDIDATE_THRESHOLD = 0.5
MAX_DAYS_APART = 7
MAX_KM = 50

_CANDIDATE_COLUMNS = """e.id, e.country_id, e.admin1_id, e.admin2_id, e.location, e.geo_precision, e.date_start,
       e.date_end, e.event_type, e.sub_event_type, e.fatalities_best"""
# Events of other sources than :datasets (none of their external ids is of those).
_OTHER_SOURCES = f"""SELECT {_CANDIDATE_COLUMNS} FROM events e
  WHERE NOT EXISTS (SELECT 1 FROM event_external_ids x
                     WHERE x.event_id = e.id AND x.dataset = ANY(CAST(:datasets AS text[])))"""
SNAPSHOT_TABLE = "link_candidates"


def _match_sql(candidates: str):
    return text(f"""
WITH batch AS (
  SELECT {_CANDIDATE_COLUMNS}
    FROM events e WHERE e.id = ANY(:ids) AND e.country_id IS NOT NULL
), others AS MATERIALIZED (
  SELECT e.* FROM {candidates} e
   WHERE e.country_id IN (SELECT country_id FROM batch)
     AND e.date_start <= (SELECT max(date_end) FROM batch) + {MAX_DAYS_APART}
     AND e.date_end >= (SELECT min(date_start) FROM batch) - {MAX_DAYS_APART}
     -- (a bound the index can use: no interval is longer than a year and a day)
     AND e.date_start >= (SELECT min(date_start) FROM batch) - {MAX_DAYS_APART} - 367
     AND e.id <> ALL(:ids)
), pairs AS (
  SELECT b.id AS a_id, o.id AS b_id,
         greatest(o.date_start - b.date_end, b.date_start - o.date_end, 0) AS days_apart,
         greatest(o.date_end - o.date_start, b.date_end - b.date_start) + 1 AS longest_days,
         CASE WHEN b.geo_precision IN ('exact', 'near') AND o.geo_precision IN ('exact', 'near')
                   AND b.location IS NOT NULL AND o.location IS NOT NULL
              THEN great_circle_km(b.location, o.location[1], o.location[0]) END AS km,
         CASE WHEN b.admin2_id = o.admin2_id THEN 0.8
              WHEN b.admin1_id = o.admin1_id THEN 0.7 ELSE 0.5 END AS area_score,
         CASE WHEN b.sub_event_type = o.sub_event_type THEN 1.0
              WHEN b.event_type = o.event_type THEN 0.6 ELSE 0.3 END AS type_score,
         CASE WHEN EXISTS (SELECT 1 FROM event_actors x JOIN event_actors y USING (actor_id)
                            WHERE x.event_id = b.id AND y.event_id = o.id) THEN 1.0 ELSE 0.5 END AS actor_score,
         CASE WHEN b.fatalities_best IS NULL OR o.fatalities_best IS NULL THEN 0.5
              ELSE 1 - abs(b.fatalities_best - o.fatalities_best)::real
                       / greatest(b.fatalities_best, o.fatalities_best, 1) END AS fatality_score
    FROM batch b JOIN others o ON o.country_id = b.country_id
     AND o.date_start <= b.date_end + {MAX_DAYS_APART} AND o.date_end >= b.date_start - {MAX_DAYS_APART}
     AND (b.admin1_id IS NULL OR o.admin1_id IS NULL OR o.admin1_id = b.admin1_id
          OR (b.location IS NOT NULL AND o.location IS NOT NULL))
), scored AS (
  SELECT *, CASE WHEN days_apart > 0 THEN greatest(0, 1 - days_apart / 8.0)
                 WHEN longest_days <= 7 THEN 1.0 WHEN longest_days <= 31 THEN 0.75 ELSE 0.5 END AS time_score,
         CASE WHEN km IS NOT NULL THEN greatest(0, 1 - km / 25) ELSE area_score END AS place_score
    FROM pairs
   WHERE (km IS NULL OR km <= {MAX_KM})
     AND (km IS NOT NULL OR area_score > 0.5 OR days_apart = 0)
), totals AS (
  SELECT *, 0.30 * time_score + 0.30 * place_score + 0.10 * type_score + 0.15 * actor_score
            + 0.15 * fatality_score AS score
    FROM scored
), found AS (
  SELECT DISTINCT ON (least(a_id, b_id), greatest(a_id, b_id))
         least(a_id, b_id) AS event_id, greatest(a_id, b_id) AS other_id, round(score::numeric, 3)::real AS score,
         time_score::real AS time_score, place_score::real AS place_score, type_score::real AS type_score,
         actor_score::real AS actor_score, fatality_score::real AS fatality_score, days_apart,
         round(km::numeric, 3)::real AS distance_km, score >= {LINK_THRESHOLD} AS linked
    FROM totals
   WHERE score >= {CANDIDATE_THRESHOLD}
   ORDER BY least(a_id, b_id), greatest(a_id, b_id)
), dropped AS (   -- pairs of these events that no longer score
  DELETE FROM event_matches m
   WHERE (m.event_id = ANY(:ids) OR m.other_id = ANY(:ids))
     AND NOT EXISTS (SELECT 1 FROM found f WHERE f.event_id = m.event_id AND f.other_id = m.other_id)
)
-- only what changed is written: an unchanged pair is no change in the history and feed
INSERT INTO event_matches AS m (event_id, other_id, score, time_score, place_score, type_score, actor_score,
                                fatality_score, days_apart, distance_km, linked)
SELECT * FROM found
ON CONFLICT (event_id, other_id) DO UPDATE SET
  score = excluded.score, time_score = excluded.time_score, place_score = excluded.place_score,
  type_score = excluded.type_score, actor_score = excluded.actor_score, fatality_score = excluded.fatality_score,
  days_apart = excluded.days_apart, distance_km = excluded.distance_km, linked = excluded.linked
WHERE (m.score, m.time_score, m.place_score, m.type_score, m.actor_score, m.fatality_score, m.days_apart,
       m.distance_km, m.linked)
      IS DISTINCT FROM
      (excluded.score, excluded.time_score, excluded.place_score, excluded.type_score, excluded.actor_score,
       excluded.fatality_score, excluded.days_apart, excluded.distance_km, excluded.linked)
""")


_MATCH_AMONG_EVENTS = _match_sql(f"({_OTHER_SOURCES})")
_MATCH_AMONG_SNAPSHOT = _match_sql(SNAPSHOT_TABLE)


async def snapshot_other_sources(conn: AsyncConnection, datasets: Collection[str]) -> None:
    """Other sources' events, kept for this session as the candidates of every batch
    of an import (finding them anew per batch reads every event of the import's
    countries each time, which grows with the import: quadratic)."""
    await conn.execute(text(f"DROP TABLE IF EXISTS {SNAPSHOT_TABLE}"))
    await conn.execute(text(f"CREATE TEMP TABLE {SNAPSHOT_TABLE} AS {_OTHER_SOURCES}"),
                       {"datasets": sorted(datasets)})
    await conn.execute(text(f"CREATE INDEX ON {SNAPSHOT_TABLE} (country_id, date_start)"))
    await conn.execute(text(f"ANALYZE {SNAPSHOT_TABLE}"))


async def match_events(conn: AsyncConnection, event_ids: Collection[UUID], datasets: Collection[str] = (),
                       among_snapshot: bool = False) -> None:
    """Score these events against other sources' (the module's rule) and keep the
    matches; `datasets`: the sources the events come from (their own records are
    never candidates); `among_snapshot`: candidates from snapshot_other_sources."""
    if not event_ids:
        return
    ids = sorted(event_ids)
    if among_snapshot:
        await conn.execute(_MATCH_AMONG_SNAPSHOT, {"ids": ids})
    else:
        await conn.execute(_MATCH_AMONG_EVENTS, {"ids": ids, "datasets": sorted(datasets)})
