"""Cross-source linking: which records from different sources describe one happening.

Sources report one happening differently: a monitor's day and village, a dataset's
week and district, its own names for the actors and its own event categories. Linking
compares every record an import or a write adds or changes with other sources' records
and keeps, per pair, a score with every part of it (`GET /v1/events/{id}/matches`).

Candidates. The records of other sources (no external id of the same dataset; records
written through the API have none and are compared with every source) in the same
country, whose date intervals come within MAX_DAYS_APART days, and that are in the
same admin1 (or either is placed to no admin1) or have coordinates within MAX_KM. Of
those, the PREFILTER best by time, place, type and the best figures are scored in full, and the TOP_K
best per other source are kept as the record's candidates: a dense place and date
stays linear (a record keeps at most TOP_K candidates per source, plus the pairs for
which it is among the other record's best).

Score: a weighted sum of parts, each from 0 to 1 (WEIGHTS); a part that cannot be
measured (no figures, no named actors, no reporting source on one side) is NULL in
`/matches` and counts as the neutral 0.5:

    score = 0.20 time + 0.20 place + 0.05 type + 0.15 actors + 0.10 fatalities
          + 0.10 claimants + 0.20 text

- time: how specific the pair's dates are (the longer interval: a day 1, a week 0.9, a
  month 0.8, two months 0.7, longer 0.5), times 1 - days apart / (MAX_DAYS_APART + 1)
  when the intervals do not overlap. An event inside a coarse interval thus scores the
  interval's specificity, and one outside it always less.
- place: both located (exact or near): 1 - km / 25, 0 from 25 km. Otherwise compared
  at the coarser record's precision, scoring how small the shared area is: known to
  the admin1 (or a region its source places in an admin1, e.g. UCDP's "Northern Hamah
  Governorate", or a locality without coordinates or admin2) and in the same admin1
  0.6, whatever the admin2s say; else the same admin2 0.8, the same admin1 0.5; only
  the same country 0.3.
- type: the same sub-event type 1. Else through the crosswalk between UCDP's type of
  violence and ACLED's event types (TYPE_CROSSWALK: UCDP codes an air strike in a war
  as state-based violence, ACLED as Explosions/Remote violence) when one side has a
  type of violence, or between ACLED's event types (EVENT_TYPE_AFFINITY).
- actors: every named actor of one record is fitted to the other's: 1 when they are
  one identity (the same actor, whatever the dataset names it: names and aliases, and
  the crosswalk of UCDP's and ACLED's names in seeds/actor_crosswalk.csv), or one
  stands for the other (a unit and the government above it in the actor tree; a
  member and a coalition or alliance it belongs to at the event's dates), 0.6 when
  they share a parent or a group at the date, else 0. The part is the mean fit over the
  actors of the record that names fewer (a dyad against a perpetrator and a target).
- fatalities: 1 - |best - best'| / (max + 2), and at least 0.85 when one's best lies in
  the other's low..high range.
- claimants: 1 when the same source (the claimant of an `occurred` claim, the way an
  import records the reports it cites) reports both, 0.25 when they cite only others.
- text: the cosine of the sets of words of their summaries, claim quotes and document
  titles (stemmed, without stop words): shared / sqrt(words of one * words of the
  other). (Shared over the shorter's words favoured short headlines.)

Selection. A pair scoring LINK_THRESHOLD or more may be linked; per pair of sources
each record is linked to at most one record of the other source: pairs are taken best
score first, and a pair whose record already has a partner of that source, or has
another candidate of that source scoring exactly the same (a tie the rule cannot
break), is a `contender`, kept with its score; under LINK_THRESHOLD, from
CANDIDATE_THRESHOLD, a `candidate`. An editor's verdict overrides all of it
(`POST /v1/events/{id}/links` confirms, `DELETE` rejects): a confirmed pair is linked
whatever its score, a rejected one never, and both survive re-scoring and re-imports.
Records linked together, directly or through others, are one happening
(`happening_members`; db/queries/happenings.py reads it), whose id is its earliest
record's id.

The score is symmetric; the candidates kept (the best per source, found from the
side of the records being matched) and so a few links can depend on which source came
first (bench/linking_eval.py --both-orders measures it). Weights and thresholds were
set against bench/linking_eval.py's labelled set (bench/README.md). Limit: an interval longer than a year and a day (none of UCDP's or ACLED's) is not
found as a candidate.
"""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

LINK_THRESHOLD = 0.7
CANDIDATE_THRESHOLD = 0.45
MAX_DAYS_APART = 7
MAX_KM = 50
PREFILTER = 48
TOP_K = 5
WEIGHTS = {"time": 0.20, "place": 0.20, "type": 0.05, "actors": 0.15, "fatalities": 0.10, "claimants": 0.10,
           "text": 0.20}
NEUTRAL = 0.5
NESTED_LOOPS_UP_TO = 50  # records per call; larger batches are matched with hash joins

# How well an event of ACLED's type fits one UCDP coded with this type of violence
# (1 state-based, 2 non-state, 3 one-sided); a type not listed fits 0.1.
TYPE_CROSSWALK = {
    1: {"Battles": 1.0, "Explosions/Remote violence": 0.9, "Violence against civilians": 0.5,
        "Strategic developments": 0.3, "Riots": 0.2},
    2: {"Battles": 1.0, "Explosions/Remote violence": 0.8, "Violence against civilians": 0.5, "Riots": 0.5,
        "Strategic developments": 0.3},
    3: {"Violence against civilians": 1.0, "Explosions/Remote violence": 0.9, "Battles": 0.4, "Riots": 0.4,
        "Strategic developments": 0.2},
}
# Two ACLED event types (either order): the same 0.7 (another sub-event type); these
# pairs as given; any other 0.1.
EVENT_TYPE_AFFINITY = {
    ("Battles", "Explosions/Remote violence"): 0.5,
    ("Explosions/Remote violence", "Violence against civilians"): 0.5,
    ("Battles", "Violence against civilians"): 0.4,
    ("Protests", "Riots"): 0.6,
    ("Riots", "Violence against civilians"): 0.4,
}
SAME_EVENT_TYPE = 0.7
OTHER_TYPE = 0.1


def _lookup(keys: tuple[str, ...], fits: dict[tuple, float], default: float) -> str:
    """fits[(the values of the SQL expressions `keys`)], else `default`, as nested CASEs
    over constants (a crosswalk above): evaluated inline, where a VALUES lookup was a
    subplan started for every pair. Fits are real, as the part is."""
    groups: dict[object, dict[tuple, float]] = {}
    for key, fit in fits.items():
        groups.setdefault(key[0], {})[key[1:]] = fit
    def literal(value: object) -> str:
        return "'" + value.replace("'", "''") + "'" if isinstance(value, str) else repr(value)
    branches = " ".join(f"WHEN {literal(value)} THEN "
                        + (_lookup(keys[1:], rest, default) if len(keys) > 1 else f"CAST({rest[()]!r} AS real)")
                        for value, rest in groups.items())
    return f"CASE {keys[0]} {branches} ELSE CAST({default!r} AS real) END"


def _figures_closeness(one: str, other: str) -> str:
    """How close two records' best fatality figures are (the fatalities part's rule):
    1 - |best - best'| / (max + 2)."""
    return (f"1 - abs({one}.fatalities_best - {other}.fatalities_best)::real"
            f" / (greatest({one}.fatalities_best, {other}.fatalities_best) + 2)")


_IDS = "unnest(CAST(:ids AS uuid[]))"


def sources_of(ids: str) -> str:
    """Each record of `ids` (a relation of one column) with its source (as SOURCE_OF):
    one join, where a subquery per row ran as a scan per row when the planner's
    statistics predate an import's batches."""
    return (f"SELECT i.id, min(x.dataset) AS source FROM {ids} AS i (id)"
            f" LEFT JOIN event_external_ids x ON x.event_id = i.id GROUP BY i.id")


def _pairs_touching(ids: str, table: str = "event_matches", only: str = "true") -> str:
    """The (event_id, other_id) pairs of `table` with either end among `ids` (a relation
    of one column, e.g. _IDS or a CTE): two index lookups per id. (A filter
    `event_id = ANY(:ids) OR other_id = ANY(:ids)` compared every row of the table with
    every id: 0.8 s a batch of 5,000 records.) `only`: a condition on the pair `t`."""
    # (semi-joins: the planner never expects more rows than the table has, where a join
    # with a set it has no statistics of was expected to give millions)
    return (f"SELECT t.event_id, t.other_id FROM {table} t"
            f" WHERE t.event_id IN (SELECT i.id FROM {ids} AS i (id)) AND {only}"
            f" UNION SELECT t.event_id, t.other_id FROM {table} t"
            f" WHERE t.other_id IN (SELECT i.id FROM {ids} AS i (id)) AND {only}")


# UCDP's type of violence of one record against the other's ACLED event type; ACLED's
# event types of both
_VIOLENCE_FIT = _lookup(("coalesce(b.type_of_violence, o.type_of_violence)",
                         "CASE WHEN b.type_of_violence IS NULL THEN b.event_type ELSE o.event_type END"),
                        {(v, t): fit for v, fits in TYPE_CROSSWALK.items() for t, fit in fits.items()}, OTHER_TYPE)
_TYPE_AFFINITY = _lookup(("b.event_type", "o.event_type"),
                         {pair: fit for (x, y), fit in EVENT_TYPE_AFFINITY.items() for pair in ((x, y), (y, x))},
                         OTHER_TYPE)

# The source of a record: its dataset (the first, should it have ids in several);
# records written through the API have none.
SOURCE_OF = "(SELECT min(x.dataset) FROM event_external_ids x WHERE x.event_id = {id})"
_CANDIDATE_COLUMNS = """e.id, e.country_id, e.admin1_id, e.admin2_id, e.location, e.geo_precision, e.date_start,
       e.date_end, e.event_type, e.sub_event_type, e.fatalities_best"""
# Events of other sources than :datasets (none of their external ids is of those).
_OTHER_SOURCES = f"""SELECT {_CANDIDATE_COLUMNS}, {SOURCE_OF.format(id="e.id")} AS source FROM events e
  WHERE NOT EXISTS (SELECT 1 FROM event_external_ids x
                     WHERE x.event_id = e.id AND x.dataset = ANY(CAST(:datasets AS text[])))"""
SNAPSHOT_TABLE = "link_candidates"

# Time, place and type of a pair `b` (the batch's record) and `o` (a candidate): cheap
# enough for every candidate, so the PREFILTER best are scored in full.
_CHEAP_PARTS = f"""
  greatest(o.date_start - b.date_end, b.date_start - o.date_end, 0) AS days_apart,
  CASE WHEN b.fatalities_best IS NULL OR o.fatalities_best IS NULL THEN 0.5
       ELSE {_figures_closeness("b", "o")} END AS figures_near,
  CASE WHEN b.geo_precision IN ('exact', 'near') AND o.geo_precision IN ('exact', 'near')
            AND b.location IS NOT NULL AND o.location IS NOT NULL
       THEN great_circle_km(b.location, o.location[1], o.location[0]) END AS km,
  CASE WHEN greatest(o.date_end - o.date_start, b.date_end - b.date_start) < 1 THEN 1.0
       WHEN greatest(o.date_end - o.date_start, b.date_end - b.date_start) < 7 THEN 0.9
       WHEN greatest(o.date_end - o.date_start, b.date_end - b.date_start) < 31 THEN 0.8
       WHEN greatest(o.date_end - o.date_start, b.date_end - b.date_start) < 62 THEN 0.7 ELSE 0.5 END AS specificity,
  -- compared at the coarser record's precision: an admin1-only record says nothing of the admin2
  CASE WHEN 'country' IN (b.geo_precision, o.geo_precision) OR 'water_airspace' IN (b.geo_precision, o.geo_precision)
       THEN 0.3
       -- (a region is known to the admin1 its source names, if any: else the same
       -- admin1 cannot hold and it scores as the country)
       WHEN 'admin1' IN (b.geo_precision, o.geo_precision) OR 'region' IN (b.geo_precision, o.geo_precision)
            -- (placed at a locality without coordinates or admin2: known to its admin1)
            OR (b.location IS NULL AND b.admin2_id IS NULL) OR (o.location IS NULL AND o.admin2_id IS NULL)
       THEN CASE WHEN b.admin1_id = o.admin1_id THEN 0.6 ELSE 0.3 END
       WHEN b.admin2_id = o.admin2_id THEN 0.8 WHEN b.admin1_id = o.admin1_id THEN 0.5 ELSE 0.3 END AS area_score,
  CASE WHEN b.sub_event_type = o.sub_event_type AND b.event_type = o.event_type
            AND (b.type_of_violence IS NULL OR o.type_of_violence IS NULL OR b.type_of_violence = o.type_of_violence)
       THEN 1.0
       WHEN b.type_of_violence IS NOT NULL AND o.type_of_violence IS NOT NULL
       THEN CASE WHEN b.type_of_violence = o.type_of_violence THEN 1.0 ELSE 0.4 END
       WHEN b.type_of_violence IS NOT NULL OR o.type_of_violence IS NOT NULL
       THEN {_VIOLENCE_FIT}
       WHEN b.event_type = o.event_type THEN {SAME_EVENT_TYPE}
       ELSE {_TYPE_AFFINITY}
  END AS type_score"""

# A record's band of latitude, MAX_KM high (a degree of latitude is 111.2 km on the
# sphere great_circle_km uses): records MAX_KM apart lie in the same band or the next.
_BAND = f"floor({{e}}.location[1] / {MAX_KM / 111.0})::int"

_TIME_SCORE = f"specificity * CASE WHEN days_apart = 0 THEN 1 ELSE greatest(0, 1 - days_apart / {MAX_DAYS_APART + 1.0}) END"
_PLACE_SCORE = "CASE WHEN km IS NOT NULL THEN greatest(0, 1 - km / 25) ELSE area_score END"


def _part(name: str, column: str) -> str:
    return f"{WEIGHTS[name]} * coalesce({column}, {NEUTRAL})"


_SCORE = " + ".join(_part(n, c) for n, c in (
    ("time", "time_score"), ("place", "place_score"), ("type", "type_score"), ("actors", "actor_score"),
    ("fatalities", "fatality_score"), ("claimants", "claimant_score"), ("text", "text_score")))


def _scoring_ctes(pairs: str) -> str:
    """CTEs that score the pairs `pairs` (a CTE of a_id, b_id: every part but time,
    place and type, which `pairs` carries) into `totals`."""
    return f"""
involved AS (
  SELECT a_id AS id FROM {pairs} UNION SELECT b_id FROM {pairs}
), involved_actors AS (
  SELECT ea.event_id, ea.actor_id, e.date_start, e.date_end
    FROM involved i JOIN events e ON e.id = i.id JOIN event_actors ea ON ea.event_id = i.id
), event_actor_keys AS (   -- each actor of an involved event, and everything it stands for at the event's dates
  SELECT event_id, actor_id, array_agg(DISTINCT key) AS keys FROM (
    SELECT ia.event_id, ia.actor_id, l.ancestor_id AS key   -- itself and what it is part of
      FROM involved_actors ia JOIN actor_lineage l ON l.descendant_id = ia.actor_id
    UNION ALL
    SELECT ia.event_id, ia.actor_id, g.ancestor_id   -- the groups it (or what it is part of) belongs to then
      FROM involved_actors ia
      JOIN actor_lineage self ON self.descendant_id = ia.actor_id
      JOIN actor_memberships ms ON ms.member_id = self.ancestor_id AND ms.relation = 'member'
       AND (ms.valid_from IS NULL OR ms.valid_from <= ia.date_end)
       AND (ms.valid_to IS NULL OR ms.valid_to >= ia.date_start)
      JOIN actor_lineage g ON g.descendant_id = ms.group_id
    UNION ALL
    SELECT ia.event_id, ia.actor_id, other.actor_id   -- the same actor as another dataset names it (db/crosswalk.py)
      FROM involved_actors ia
      JOIN actor_names mine ON mine.actor_id = ia.actor_id
      JOIN actor_crosswalk cw ON cw.name_norm = mine.name_norm
      JOIN actor_names other ON other.name_norm = cw.other_name_norm) up
   GROUP BY event_id, actor_id
), actor_counts AS (
  SELECT event_id, count(*) AS actors FROM event_actor_keys GROUP BY event_id
), sides AS (   -- each pair once, from the end that names fewer actors (the lower id, if as many)
  SELECT p.a_id, p.b_id,
         CASE WHEN (ca.actors, p.a_id) < (cb.actors, p.b_id) THEN p.a_id ELSE p.b_id END AS here,
         CASE WHEN (ca.actors, p.a_id) < (cb.actors, p.b_id) THEN p.b_id ELSE p.a_id END AS there
    FROM {pairs} p JOIN actor_counts ca ON ca.event_id = p.a_id JOIN actor_counts cb ON cb.event_id = p.b_id
), actor_fits AS (   -- per pair and actor of that end: its best fit among the other end's actors
  -- (equality joins: an OR would compare every pair with every key)
  SELECT s.a_id, s.b_id, x.actor_id,
         max(CASE WHEN x.actor_id = ANY(y.keys) OR y.actor_id = ANY(x.keys) THEN 1.0
                  WHEN x.keys && y.keys THEN 0.6 ELSE 0 END) AS fit
    FROM sides s
    JOIN event_actor_keys x ON x.event_id = s.here
    JOIN event_actor_keys y ON y.event_id = s.there
   GROUP BY s.a_id, s.b_id, x.actor_id
), actor_parts AS (
  SELECT a_id, b_id, avg(fit) AS actor_score FROM actor_fits GROUP BY a_id, b_id
), reporters AS (   -- who reports each involved event (claimants of `occurred` claims)
  SELECT DISTINCT c.event_id, c.claimant_id FROM claims c JOIN involved i ON i.id = c.event_id
   WHERE c.predicate = 'occurred'
), claimant_parts AS (   -- (joins, not subqueries per pair: a CTE has no index)
  SELECT p.a_id, p.b_id, CASE WHEN bool_or(x.claimant_id = y.claimant_id) THEN 1.0 ELSE 0.25 END AS claimant_score
    FROM {pairs} p
    JOIN reporters x ON x.event_id = p.a_id
    JOIN reporters y ON y.event_id = p.b_id
   GROUP BY p.a_id, p.b_id
), titles AS (   -- the titles of the documents each involved event's claims come from
  SELECT c.event_id, string_agg(DISTINCT d.title, ' ') AS titles
    FROM involved i JOIN claims c ON c.event_id = i.id JOIN documents d ON d.id = c.document_id
   GROUP BY c.event_id
), word_sets AS (   -- the words of each involved event's summary, quotes and document titles
  SELECT i.id AS event_id, strip(ts_filter(e.search_vector, '{{a,b}}') || to_tsvector('english', coalesce(t.titles, '')))
         AS words
    FROM involved i JOIN events e ON e.id = i.id
    LEFT JOIN titles t ON t.event_id = i.id
), text_parts AS (   -- shared = |x| + |y| - |x || y|: merging two sorted word sets (tsvector_concat) is
  -- linear, where comparing each word with each was quadratic, and joining word rows
  -- sorted millions of them
  SELECT p.a_id, p.b_id,
         CASE WHEN length(x.words) > 0 AND length(y.words) > 0
              THEN (length(x.words) + length(y.words) - length(x.words || y.words))::real
                   / sqrt(length(x.words) * length(y.words)) END AS text_score
    FROM {pairs} p
    JOIN word_sets x ON x.event_id = p.a_id
    JOIN word_sets y ON y.event_id = p.b_id
), scored AS (
  SELECT p.a_id, p.b_id, p.days_apart, p.km,
         ({_TIME_SCORE})::real AS time_score, ({_PLACE_SCORE})::real AS place_score, p.type_score::real AS type_score,
         ap.actor_score::real AS actor_score,
         CASE WHEN ea.fatalities_best IS NULL OR eb.fatalities_best IS NULL THEN NULL
              WHEN ea.fatalities_best BETWEEN eb.fatalities_low AND coalesce(eb.fatalities_high, 2147483647)
                OR eb.fatalities_best BETWEEN ea.fatalities_low AND coalesce(ea.fatalities_high, 2147483647)
              THEN greatest(0.85, {_figures_closeness("ea", "eb")})
              ELSE {_figures_closeness("ea", "eb")} END::real AS fatality_score,
         cp.claimant_score::real AS claimant_score, tp.text_score::real AS text_score
    FROM {pairs} p
    JOIN events ea ON ea.id = p.a_id
    JOIN events eb ON eb.id = p.b_id
    LEFT JOIN actor_parts ap ON (ap.a_id, ap.b_id) = (p.a_id, p.b_id)
    LEFT JOIN claimant_parts cp ON (cp.a_id, cp.b_id) = (p.a_id, p.b_id)
    LEFT JOIN text_parts tp ON (tp.a_id, tp.b_id) = (p.a_id, p.b_id)
), totals AS (
  SELECT *, ({_SCORE})::real AS score FROM scored
)"""


# Only what changed is written: an unchanged pair is no change in the history and feed.
_UPSERT_FOUND = """
INSERT INTO event_matches AS m (event_id, other_id, score, time_score, place_score, type_score, actor_score,
                                fatality_score, claimant_score, text_score, days_apart, distance_km, linked, status)
SELECT event_id, other_id, score, time_score, place_score, type_score, actor_score, fatality_score, claimant_score,
       text_score, days_apart, distance_km, false, 'candidate' FROM found
ON CONFLICT (event_id, other_id) DO UPDATE SET
  score = excluded.score, time_score = excluded.time_score, place_score = excluded.place_score,
  type_score = excluded.type_score, actor_score = excluded.actor_score, fatality_score = excluded.fatality_score,
  claimant_score = excluded.claimant_score, text_score = excluded.text_score,
  days_apart = excluded.days_apart, distance_km = excluded.distance_km
WHERE (m.score, m.time_score, m.place_score, m.type_score, m.actor_score, m.fatality_score, m.claimant_score,
       m.text_score, m.days_apart, m.distance_km)
      IS DISTINCT FROM
      (excluded.score, excluded.time_score, excluded.place_score, excluded.type_score, excluded.actor_score,
       excluded.fatality_score, excluded.claimant_score, excluded.text_score, excluded.days_apart,
       excluded.distance_km)
"""

_FOUND = """
found AS (
  SELECT least(a_id, b_id) AS event_id, greatest(a_id, b_id) AS other_id, round(score::numeric, 3)::real AS score,
         time_score, place_score, type_score, actor_score, fatality_score, claimant_score, text_score, days_apart,
         round(km::numeric, 3)::real AS distance_km
    FROM {totals}
)"""


def _match_sql(candidates: str):
    return text(f"""
WITH batch AS (
  SELECT {_CANDIDATE_COLUMNS}, e.type_of_violence, s.source
    FROM ({sources_of(_IDS)}) s JOIN events e ON e.id = s.id   -- (a hash, not ANY() per row)
   WHERE e.country_id IS NOT NULL
), others AS MATERIALIZED (
  SELECT o.*, e.type_of_violence FROM {candidates} o JOIN events e ON e.id = o.id
   WHERE o.country_id IN (SELECT country_id FROM batch)
     AND o.date_start <= (SELECT max(date_end) FROM batch) + {MAX_DAYS_APART}
     AND o.date_end >= (SELECT min(date_start) FROM batch) - {MAX_DAYS_APART}
     -- (a bound the index can use: no interval is longer than a year and a day)
     AND o.date_start >= (SELECT min(date_start) FROM batch) - {MAX_DAYS_APART} - 367
), batch_weeks AS MATERIALIZED (   -- the weeks each record's interval touches: an equality to join on
  -- (materialized, as other_weeks: inlined, the planner joined the batch with every
  -- candidate of the country first and made the weeks of each such pair: quadratic)
  SELECT b.id, b.country_id, b.admin1_id, {_BAND.format(e="b")} AS band, w.week
    FROM batch b CROSS JOIN generate_series((b.date_start - DATE '2000-01-03') / 7,
                                            (b.date_end - DATE '2000-01-03') / 7) AS w (week)
), other_weeks AS MATERIALIZED (   -- ... and a candidate's, widened by MAX_DAYS_APART each side
  SELECT o.id, o.country_id, o.admin1_id, {_BAND.format(e="o")} AS band, w.week
    FROM others o CROSS JOIN generate_series((o.date_start - {MAX_DAYS_APART} - DATE '2000-01-03') / 7,
                                             (o.date_end + {MAX_DAYS_APART} - DATE '2000-01-03') / 7) AS w (week)
), batch_bands AS MATERIALIZED (   -- a located record's band of latitude and the next ones (MAX_KM
  -- apart can be no further): an equality to join on, not a filter after the country's
  SELECT bw.id, bw.country_id, bw.week, n.band
    FROM batch_weeks bw CROSS JOIN generate_series(bw.band - 1, bw.band + 1) AS n (band)
), week_pairs AS (   -- sharing a week, and the admin1 (or either has none) or a band of latitude
  -- (each branch an equality join: the country alone paired every record with all of it)
  SELECT DISTINCT a_id, b_id FROM (
    SELECT bw.id AS a_id, ow.id AS b_id
      FROM batch_weeks bw JOIN other_weeks ow ON (ow.country_id, ow.week, ow.admin1_id) = (bw.country_id, bw.week, bw.admin1_id)
    UNION ALL
    SELECT bw.id, ow.id FROM (SELECT * FROM batch_weeks WHERE admin1_id IS NULL) bw
      JOIN other_weeks ow ON (ow.country_id, ow.week) = (bw.country_id, bw.week)
    UNION ALL
    SELECT bw.id, ow.id FROM batch_weeks bw
      JOIN (SELECT * FROM other_weeks WHERE admin1_id IS NULL) ow ON (ow.country_id, ow.week) = (bw.country_id, bw.week)
    UNION ALL
    SELECT bb.id, ow.id
      FROM batch_bands bb JOIN other_weeks ow ON (ow.country_id, ow.week, ow.band) = (bb.country_id, bb.week, bb.band)) wp
), near_pairs AS (
  SELECT b.id AS a_id, o.id AS b_id, o.source AS b_source, {_CHEAP_PARTS}
    FROM week_pairs wp JOIN batch b ON b.id = wp.a_id JOIN others o ON o.id = wp.b_id
     AND o.date_start <= b.date_end + {MAX_DAYS_APART} AND o.date_end >= b.date_start - {MAX_DAYS_APART}
     AND (b.admin1_id IS NULL OR o.admin1_id IS NULL OR o.admin1_id = b.admin1_id
          OR great_circle_km(b.location, o.location[1], o.location[0]) <= {MAX_KM})
     AND o.id <> b.id
     -- a record is never compared with its own source's
     AND (b.source IS NULL OR o.source IS NULL OR b.source <> o.source)
), prefiltered AS (
  SELECT * FROM (
    SELECT *, row_number() OVER (PARTITION BY a_id ORDER BY
                0.2 * {_TIME_SCORE} + 0.2 * {_PLACE_SCORE} + 0.1 * type_score + 0.1 * figures_near DESC, b_id)
                AS cheap_rank
      FROM near_pairs
     WHERE (km IS NULL OR km <= {MAX_KM}) AND (km IS NOT NULL OR area_score > 0.3 OR days_apart = 0)) r
   WHERE cheap_rank <= {PREFILTER}
), {_scoring_ctes("prefiltered")},
ranked AS (   -- the rank of each pair among the record's pairs with that source
  SELECT t.*, row_number() OVER (PARTITION BY t.a_id, p.b_source ORDER BY t.score DESC, t.b_id) AS rank_here,
         b.source AS a_source
    FROM totals t JOIN prefiltered p USING (a_id, b_id) JOIN batch b ON b.id = t.a_id
   WHERE t.score >= {CANDIDATE_THRESHOLD}
), kept_pairs AS (   -- the candidates' kept pairs with records outside the batch
  SELECT m.other_id AS b_id, m.event_id AS partner, m.score FROM event_matches m
   WHERE m.other_id IN (SELECT b_id FROM ranked) AND m.event_id NOT IN (SELECT id FROM batch)
  UNION ALL
  SELECT m.event_id, m.other_id, m.score FROM event_matches m
   WHERE m.event_id IN (SELECT b_id FROM ranked) AND m.other_id NOT IN (SELECT id FROM batch)
), partner_sources AS (
  {sources_of("(SELECT DISTINCT partner FROM kept_pairs)")}
), kept_there AS (   -- ... ranked per source
  SELECT c.b_id, x.source, c.score, row_number() OVER (PARTITION BY c.b_id, x.source ORDER BY c.score DESC) AS rank
    FROM kept_pairs c JOIN partner_sources x ON x.id = c.partner
), best AS (   -- among the TOP_K best of the record, or of the candidate (over its kept pairs)
  SELECT DISTINCT ON (least(r.a_id, r.b_id), greatest(r.a_id, r.b_id)) r.* FROM ranked r
    LEFT JOIN kept_there k ON k.b_id = r.b_id AND coalesce(k.source, '') = coalesce(r.a_source, '') AND k.rank = {TOP_K}
   WHERE r.rank_here <= {TOP_K} OR k.score IS NULL OR r.score > k.score
   ORDER BY least(r.a_id, r.b_id), greatest(r.a_id, r.b_id)
), {_FOUND.format(totals="best")},
dropped AS (   -- pairs of these records that no longer score, unless an editor judged them
  DELETE FROM event_matches m USING ({_pairs_touching(_IDS)}) t
   WHERE (m.event_id, m.other_id) = (t.event_id, t.other_id)
     AND NOT EXISTS (SELECT 1 FROM found f WHERE f.event_id = m.event_id AND f.other_id = m.other_id)
     AND NOT EXISTS (SELECT 1 FROM event_links l WHERE l.event_id = m.event_id AND l.other_id = m.other_id)
)
{_UPSERT_FOUND}""")


_MATCH_AMONG_EVENTS = _match_sql(f"({_OTHER_SOURCES})")
_MATCH_AMONG_SNAPSHOT = _match_sql(SNAPSHOT_TABLE)

# Pairs an editor judged, scored whatever their distance (a confirmed pair need not be
# a candidate), so /matches shows what the rule thinks of them.
_SCORE_JUDGED = text(f"""
WITH judged AS (
  SELECT b.id AS a_id, o.id AS b_id, {_CHEAP_PARTS}
    FROM ({_pairs_touching(_IDS, "event_links")}) l
    JOIN events b ON b.id = l.event_id
    JOIN events o ON o.id = l.other_id
   WHERE l.event_id < l.other_id
), {_scoring_ctes("judged")},
{_FOUND.format(totals="totals")}
{_UPSERT_FOUND}""")

# Keeps each record's list bounded: a pair is dropped once it is among neither record's
# TOP_K best of the other's source (and nobody judged it, and it is not linked).
_PRUNE = text(f"""
WITH touched AS (
  {_pairs_touching(_IDS)}
), ends AS (
  SELECT event_id AS id FROM touched UNION SELECT other_id FROM touched
), around AS (   -- every pair of those records
  {_pairs_touching("ends")}
), around_ends AS (
  SELECT event_id AS id FROM around UNION SELECT other_id FROM around
), sources AS (
  {sources_of("around_ends")}
), ranked AS (
  SELECT m.event_id, m.other_id,
         row_number() OVER (PARTITION BY m.event_id, so.source ORDER BY m.score DESC, m.other_id) AS rank_here,
         row_number() OVER (PARTITION BY m.other_id, se.source ORDER BY m.score DESC, m.event_id) AS rank_there
    FROM around a JOIN event_matches m USING (event_id, other_id)
    JOIN sources se ON se.id = m.event_id JOIN sources so ON so.id = m.other_id
)
DELETE FROM event_matches m USING ranked r JOIN touched t USING (event_id, other_id)
 WHERE (m.event_id, m.other_id) = (r.event_id, r.other_id)
   AND r.rank_here > {TOP_K} AND r.rank_there > {TOP_K} AND NOT m.linked
   AND NOT EXISTS (SELECT 1 FROM event_links l WHERE l.event_id = m.event_id AND l.other_id = m.other_id)
""")


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
    """Score these events against other sources' (the module's rule), keep their best
    candidates, and link and group them into happenings anew; `datasets`: the sources
    the events come from (their own records are never candidates); `among_snapshot`:
    candidates from snapshot_other_sources."""
    if not event_ids:
        return
    ids = sorted(event_ids)
    # A batch's statement joins sets the planner knows little of (CTEs over rows this
    # transaction wrote): a nested loop over two of them is quadratic, hashing is not.
    many = len(ids) > NESTED_LOOPS_UP_TO
    if many:
        await conn.execute(text("SET LOCAL enable_nestloop = off"))
    if among_snapshot:
        await conn.execute(_MATCH_AMONG_SNAPSHOT, {"ids": ids})
    else:
        await conn.execute(_MATCH_AMONG_EVENTS, {"ids": ids, "datasets": sorted(datasets)})
    await score_judged(conn, ids)
    await conn.execute(_PRUNE, {"ids": ids})
    if many:
        await conn.execute(text("SET LOCAL enable_nestloop = on"))
    await relink(conn, ids)


async def score_judged(conn: AsyncConnection, event_ids: Collection[UUID]) -> None:
    """Score (and keep in event_matches) every pair of these records an editor judged,
    candidates or not; call relink after it for the verdict to take effect."""
    if event_ids:
        await conn.execute(_SCORE_JUDGED, {"ids": sorted(event_ids)})


# A pair under LINK_THRESHOLD that nobody judged is a `candidate` whatever the others
# are, and moves nothing: only the rest are selected (and those whose status is to go).
_SELECTABLE = f"""(t.score >= {LINK_THRESHOLD} OR t.status <> 'candidate'
  OR EXISTS (SELECT 1 FROM event_links l WHERE (l.event_id, l.other_id) = (t.event_id, t.other_id)))"""

# Every such pair within two steps of these records, with its sources and any verdict:
# the neighbourhood whose one-to-one selection a change to these records can move.
_NEIGHBOURHOOD = text(f"""
WITH first_step AS (
  {_pairs_touching(_IDS, only=_SELECTABLE)}
), reached AS (
  SELECT id FROM {_IDS} id
  UNION SELECT event_id FROM first_step UNION SELECT other_id FROM first_step
), around AS (
  {_pairs_touching("reached", only=_SELECTABLE)}
), around_ends AS (
  SELECT event_id AS id FROM around UNION SELECT other_id FROM around
), sources AS (
  {sources_of("around_ends")}
)
SELECT m.event_id, m.other_id, m.score, m.status, coalesce(se.source, '') AS event_source,
       coalesce(so.source, '') AS other_source, l.verdict
  FROM around r
  JOIN event_matches m USING (event_id, other_id)
  JOIN sources se ON se.id = m.event_id JOIN sources so ON so.id = m.other_id
  LEFT JOIN event_links l ON l.event_id = m.event_id AND l.other_id = m.other_id
""")

_SET_STATUS = text("""
UPDATE event_matches m SET status = s.status, linked = s.status = 'linked'
  FROM unnest(CAST(:event_ids AS uuid[]), CAST(:other_ids AS uuid[]), CAST(:statuses AS text[]))
       AS s (event_id, other_id, status)
 WHERE (m.event_id, m.other_id) = (s.event_id, s.other_id) AND m.status <> s.status
""")


def select_links(pairs: list) -> dict[tuple[UUID, UUID], str]:
    """The status of each pair (rows of _NEIGHBOURHOOD): confirmed pairs linked,
    rejected ones not; then, best score first, a pair over LINK_THRESHOLD is linked
    unless one of its records already has a partner of the other's source, or has
    another candidate of that source that scores the same (a tie the rule cannot
    break: an editor must); those are `contender`s, the rest `candidate`s."""
    partner_of: set[tuple[UUID, str]] = set()  # (record, source it has a partner of, or a tie with)
    status: dict[tuple[UUID, UUID], str] = {}
    by_end: dict[tuple[UUID, str], list] = {}
    for p in pairs:
        by_end.setdefault((p.event_id, p.other_source), []).append(p)
        by_end.setdefault((p.other_id, p.event_source), []).append(p)
        if p.verdict == "confirmed":
            status[p.event_id, p.other_id] = "linked"
            partner_of |= {(p.event_id, p.other_source), (p.other_id, p.event_source)}

    def free(p) -> bool:
        return (p.event_id, p.other_source) not in partner_of and (p.other_id, p.event_source) not in partner_of

    for p in sorted(pairs, key=lambda p: (-p.score, p.event_id, p.other_id)):
        key = (p.event_id, p.other_id)
        if key in status:
            continue
        if p.verdict == "rejected" or p.score < LINK_THRESHOLD:
            status[key] = "candidate" if p.score < LINK_THRESHOLD else "contender"
        elif not free(p):
            status[key] = "contender"
        else:
            ends = ((p.event_id, p.other_source), (p.other_id, p.event_source))
            tied = [end for end in ends
                    if any(q is not p and q.score == p.score and q.verdict != "rejected" and free(q)
                           and (q.event_id, q.other_id) not in status for q in by_end[end])]
            status[key] = "contender" if tied else "linked"
            partner_of |= set(tied or ends)
    return status


async def relink(conn: AsyncConnection, event_ids: Collection[UUID]) -> None:
    """Select the links around these records anew (after their scores or an editor's
    verdict changed) and regroup the happenings they are in."""
    if not event_ids:
        return
    pairs = (await conn.execute(_NEIGHBOURHOOD, {"ids": sorted(event_ids)})).all()
    status = select_links(pairs)
    changed = [(p.event_id, p.other_id, status[p.event_id, p.other_id]) for p in pairs
               if status[p.event_id, p.other_id] != p.status]
    if changed:
        await conn.execute(_SET_STATUS, {"event_ids": [c[0] for c in changed], "other_ids": [c[1] for c in changed],
                                         "statuses": [c[2] for c in changed]})
    # a happening changes only where a link came or went (or a record itself did)
    touched = set(event_ids) | {c[0] for c in changed} | {c[1] for c in changed}
    await group_happenings(conn, touched)


# The happenings of these records: records linked together, directly or not, are one;
# its id is its earliest record's. Members of these records' former happenings are
# regrouped too (a happening split by an unlink).
_GROUP_HAPPENINGS = text("""
WITH RECURSIVE starts AS (   -- (a record linked to none, in no happening, is one of its own: nothing to write)
  SELECT i.id FROM unnest(CAST(:ids AS uuid[])) i (id)
   WHERE EXISTS (SELECT 1 FROM event_matches m WHERE m.event_id = i.id AND m.linked)
      OR EXISTS (SELECT 1 FROM event_matches m WHERE m.other_id = i.id AND m.linked)
      OR EXISTS (SELECT 1 FROM happening_members h WHERE h.event_id = i.id)
  UNION
  SELECT h.event_id FROM happening_members h
   WHERE h.happening_id IN (SELECT happening_id FROM happening_members WHERE event_id = ANY(:ids))
), walk (start, member) AS (
  SELECT id, id FROM starts
  UNION
  SELECT w.start, n.id FROM walk w CROSS JOIN LATERAL (
    SELECT other_id AS id FROM event_matches WHERE event_id = w.member AND linked
    UNION ALL
    SELECT event_id FROM event_matches WHERE other_id = w.member AND linked) n
), grouped AS (
  SELECT w.member AS event_id,
         first_value(w.member) OVER (PARTITION BY w.start ORDER BY e.created_at, e.id) AS happening_id,
         count(*) OVER (PARTITION BY w.start) AS size
    FROM walk w JOIN events e ON e.id = w.member
), wanted AS (
  SELECT DISTINCT event_id, happening_id, size FROM grouped
), gone AS (
  DELETE FROM happening_members h
   USING wanted w WHERE h.event_id = w.event_id AND w.size = 1
)
INSERT INTO happening_members AS h (event_id, happening_id)
SELECT event_id, happening_id FROM wanted WHERE size > 1
ON CONFLICT (event_id) DO UPDATE SET happening_id = excluded.happening_id
WHERE h.happening_id <> excluded.happening_id
""")


async def group_happenings(conn: AsyncConnection, event_ids: Collection[UUID]) -> None:
    """Regroup the happenings of these records (and of the records they were grouped with)."""
    if event_ids:
        await conn.execute(_GROUP_HAPPENINGS, {"ids": sorted(event_ids)})
