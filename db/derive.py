"""Event figures, attribution and search text derived from claims: the rules, in one place.

Whoever changes claims (the seed, an import, an API write) calls
`recompute_events(conn, event_ids)` in the same transaction, so an event's figures
never disagree with its claims. Both rules are set-based SQL, so a bulk import
recomputes thousands of events in one statement each. Each is written once, as CTEs
over a group of claims (`attribution_ctes`, `fatality_ctes`): an event's claims here,
and all the claims of a happening's records in db/queries/happenings.py, so a
happening's figures and attribution follow the same rules as one event's.

Fatalities (predicates `fatalities` and `civilian_fatalities`)
    Only claims that assert or concede a figure count; denials and uncertain claims
    carry no figure. A claim's low defaults to its best, its best to its low, and its
    high to its best; a claim with a low alone ("over two dozen": low 25) leaves the
    upper bound open, one with a high alone ("up to 30") says nothing of the low or the
    best. Over the counted claims:
      low  = the smallest low,
      best = the median of the best values (the lower middle one for an even count),
      high = the largest high, or NULL (open) if any claim leaves it open.
    Civilians killed are people killed, so each total bound is at least the civilian
    bound (and open if the civilian one is). `fatality_claim_ids` lists every claim
    that went into the figures.

Attribution status, per event (or happening), actor and role (perpetrator or target)
    From the claims whose predicate is that role and whose value is that actor:
      confirmed  the actor itself concedes it (the claimant is the actor or an
                 organisation above or below it in the actor tree, such as the UK
                 Ministry of Defence for the RAF), or at least two independent sources
                 (actor kinds marked independent: monitors, independent media, wire
                 services, NGOs, international organisations) assert it and nobody
                 denies it;
      contested  someone asserts it and someone (the actor included) denies it;
      alleged    someone asserts it and nobody denies it;
      unknown    nobody asserts it (only uncertain claims, or only denials).
    The first rule that holds wins, in that order. `status_claim_ids` holds the
    claims that made the status: the concessions; the assertions and denials; the
    assertions; or, for unknown, the uncertain and denying claims.
    Participants get no status: nobody claims "participation".
"""

from collections.abc import Collection
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_ADD_ROLES_NAMED_IN_CLAIMS = text("""
INSERT INTO event_actors (event_id, actor_id, role)
SELECT DISTINCT c.event_id, c.value_actor_id, c.predicate
  FROM claims c
 WHERE c.event_id = ANY(:ids) AND c.predicate IN ('perpetrator', 'target') AND c.value_actor_id IS NOT NULL
ON CONFLICT DO NOTHING
""")

# The rules as CTEs over a group of claims, so that one written rule serves a single
# event (recompute_events, which stores the outcome) and a happening, whose records'
# claims count together (db/queries/happenings.py, which reads it). `claims`: a
# relation of the claims with the key of their group (`group_id`: the event, or the
# happening) beside the claims' own columns; `roles`: the (group_id, actor_id, role)
# to decide; `groups`: the group_id of each group to figure.


def attribution_ctes(claims: str, roles: str) -> str:
    """CTEs ending in `decided` (group_id, actor_id, role, status, claim_ids): the
    attribution rule (the module's docstring) per group, actor and role."""
    return f"""
role_claims AS (
  SELECT c.group_id, c.value_actor_id AS actor_id, c.predicate AS role, c.id, c.stance, c.claimant_id,
         k.independent,
         -- the actor speaking of itself: the same actor, or one above or below it
         (c.claimant_id = c.value_actor_id OR EXISTS (
            SELECT 1 FROM actor_lineage l
             WHERE (l.ancestor_id = c.claimant_id AND l.descendant_id = c.value_actor_id)
                OR (l.ancestor_id = c.value_actor_id AND l.descendant_id = c.claimant_id))) AS by_self
    FROM {claims} c
    JOIN actors a ON a.id = c.claimant_id
    JOIN actor_kinds k ON k.code = a.kind
   WHERE c.predicate IN ('perpetrator', 'target') AND c.value_actor_id IS NOT NULL
), tallied AS (
  SELECT group_id, actor_id, role,
    array_agg(id ORDER BY id) FILTER (WHERE stance = 'concedes' AND by_self) AS conceded,
    array_agg(id ORDER BY id) FILTER (WHERE stance = 'asserts' OR (stance = 'concedes' AND NOT by_self)) AS asserted,
    array_agg(id ORDER BY id) FILTER (WHERE stance = 'denies') AS denied,
    array_agg(id ORDER BY id) FILTER (WHERE stance = 'uncertain') AS uncertain,
    count(DISTINCT claimant_id) FILTER (
      WHERE independent AND NOT by_self AND stance IN ('asserts', 'concedes')) AS independent_asserters
  FROM role_claims GROUP BY group_id, actor_id, role
), decided AS (
  SELECT r.group_id, r.actor_id, r.role,
    CASE
      WHEN r.role = 'participant' THEN NULL
      WHEN t.conceded IS NOT NULL THEN 'confirmed'
      WHEN t.asserted IS NOT NULL AND t.denied IS NOT NULL THEN 'contested'
      WHEN t.independent_asserters >= 2 AND t.denied IS NULL THEN 'confirmed'
      WHEN t.asserted IS NOT NULL THEN 'alleged'
      ELSE 'unknown'
    END AS status,
    CASE
      WHEN r.role = 'participant' THEN '{{}}'
      WHEN t.conceded IS NOT NULL THEN t.conceded
      WHEN t.asserted IS NOT NULL AND t.denied IS NOT NULL THEN t.asserted || t.denied
      WHEN t.asserted IS NOT NULL THEN t.asserted
      ELSE coalesce(t.uncertain, '{{}}') || coalesce(t.denied, '{{}}')
    END AS claim_ids
  FROM {roles} r
  LEFT JOIN tallied t USING (group_id, actor_id, role)
)"""


def fatality_ctes(claims: str, groups: str) -> str:
    """CTEs ending in `derived` (group_id, low, best, high, civilians_low,
    civilians_best, civilians_high, claim_ids): the fatality rule (the module's
    docstring) per group; a group without figures has NULLs and no claim ids."""
    return f"""
figures AS (
  SELECT c.group_id, c.predicate, c.id,
         coalesce(c.value_low, c.value_best) AS low,    -- "up to 30" says nothing of a low
         coalesce(c.value_best, c.value_low) AS best,
         coalesce(c.value_high, c.value_best) AS high
    FROM {claims} c
   WHERE c.predicate IN ('fatalities', 'civilian_fatalities')
     AND c.stance IN ('asserts', 'concedes')
     AND coalesce(c.value_low, c.value_best, c.value_high) IS NOT NULL
), per_predicate AS (
  SELECT group_id, predicate, min(low) AS low,
         CASE WHEN bool_and(high IS NOT NULL) THEN max(high) END AS high,
         percentile_disc(0.5) WITHIN GROUP (ORDER BY best) AS best,
         array_agg(id ORDER BY id) AS claim_ids
    FROM figures GROUP BY group_id, predicate
), derived AS (
  SELECT g.group_id,
         -- civilians killed are people killed: each total bound at least the civilian one
         greatest(t.low, c.low) AS low, greatest(t.best, c.best) AS best,
         -- an open bound on either side leaves the total's upper bound open
         CASE WHEN (t.group_id IS NOT NULL AND t.high IS NULL) OR (c.group_id IS NOT NULL AND c.high IS NULL)
              THEN NULL ELSE greatest(t.high, c.high) END AS high,
         c.low AS civilians_low, c.best AS civilians_best, c.high AS civilians_high,
         coalesce(t.claim_ids, '{{}}') || coalesce(c.claim_ids, '{{}}') AS claim_ids
    FROM {groups} g
    LEFT JOIN per_predicate t ON t.group_id = g.group_id AND t.predicate = 'fatalities'
    LEFT JOIN per_predicate c ON c.group_id = g.group_id AND c.predicate = 'civilian_fatalities'
)"""


# An event is its own group.
_EVENT_CLAIMS = "(SELECT c.event_id AS group_id, c.* FROM claims c WHERE c.event_id = ANY(:ids))"

_ATTRIBUTION = text(f"""
WITH {attribution_ctes(
    _EVENT_CLAIMS,
    "(SELECT event_id AS group_id, actor_id, role FROM event_actors WHERE event_id = ANY(:ids))")}
UPDATE event_actors ea SET status = d.status, status_claim_ids = d.claim_ids
  FROM decided d
 WHERE (ea.event_id, ea.actor_id, ea.role) = (d.group_id, d.actor_id, d.role)
   AND (ea.status, ea.status_claim_ids) IS DISTINCT FROM (d.status, d.claim_ids)
""")

# What full-text search (`q`) finds an event by: its summary (weight A), its claims'
# quotes (B), and every name and alias of its place and the place's ancestors, and of
# its actors (C). One text search configuration for all of it, so a query word is
# stemmed the way the indexed words were. Place and actor vectors are built once per
# place and actor of the batch.
_SEARCH_CTES = """
batch AS (
  SELECT id, place_id, summary FROM events WHERE id = ANY(:ids)
), place_vectors AS (   -- once per place of the batch, not once per event
  SELECT pl.place_id, to_tsvector('english', string_agg(DISTINCT n.name, ' ')) AS vector
    FROM (SELECT DISTINCT place_id FROM batch) pl
    JOIN place_lineage l ON l.descendant_id = pl.place_id
    JOIN place_names n ON n.place_id = l.ancestor_id
   GROUP BY pl.place_id
), actor_vectors AS (   -- once per actor of the batch
  SELECT ac.actor_id, to_tsvector('english', string_agg(DISTINCT n.name, ' ')) AS vector
    FROM (SELECT DISTINCT actor_id FROM event_actors WHERE event_id = ANY(:ids)) ac
    JOIN actor_names n ON n.actor_id = ac.actor_id
   GROUP BY ac.actor_id
), event_actor_vectors AS (
  SELECT ea.event_id, tsvector_agg(av.vector) AS vector
    FROM event_actors ea JOIN actor_vectors av USING (actor_id)
   WHERE ea.event_id = ANY(:ids)
   GROUP BY ea.event_id
), quotes AS (
  SELECT event_id, string_agg(quote, ' ') AS quotes FROM claims WHERE event_id = ANY(:ids) GROUP BY event_id
), texts AS (
  SELECT b.id,
         setweight(to_tsvector('english', coalesce(b.summary, '')), 'A')
      || setweight(to_tsvector('english', coalesce(q.quotes, '')), 'B')
      || setweight(coalesce(pv.vector, '') || coalesce(eav.vector, ''), 'C') AS vector
    FROM batch b
    LEFT JOIN quotes q ON q.event_id = b.id
    LEFT JOIN place_vectors pv ON pv.place_id = b.place_id
    LEFT JOIN event_actor_vectors eav ON eav.event_id = b.id
)"""

# One UPDATE for figures and search text: each event row is rewritten (and its
# indexes touched) once per recompute, not once per derived value.
_EVENT_FIGURES = text(f"""
WITH {fatality_ctes(_EVENT_CLAIMS, "(SELECT unnest(CAST(:ids AS uuid[])) AS group_id)")},
{_SEARCH_CTES}
UPDATE events e SET
  fatalities_low = d.low,
  fatalities_best = d.best,
  fatalities_high = d.high,
  civilian_fatalities_low = d.civilians_low,
  civilian_fatalities_best = d.civilians_best,
  civilian_fatalities_high = d.civilians_high,
  fatality_claim_ids = d.claim_ids,
  search_vector = t.vector
FROM derived d JOIN texts t ON t.id = d.group_id
WHERE e.id = d.group_id
  AND (e.fatalities_low, e.fatalities_best, e.fatalities_high, e.civilian_fatalities_low,
       e.civilian_fatalities_best, e.civilian_fatalities_high, e.fatality_claim_ids, e.search_vector)
      IS DISTINCT FROM
      (d.low, d.best, d.high, d.civilians_low, d.civilians_best, d.civilians_high, d.claim_ids, t.vector)
""")


async def drop_unclaimed_role(conn: AsyncConnection, event_id: UUID, actor_id: UUID | None, role: str) -> None:
    """After a claim naming `actor_id` as the event's perpetrator or target changed or
    went: the role goes too if no claim names it any more (an import's roles are its own)."""
    if actor_id is None or role not in ("perpetrator", "target"):
        return
    await conn.execute(text("""
        DELETE FROM event_actors ea
         WHERE ea.event_id = :event AND ea.actor_id = :actor AND ea.role = :role AND ea.dataset IS NULL
           AND NOT EXISTS (SELECT 1 FROM claims c
                            WHERE c.event_id = ea.event_id AND c.predicate = ea.role AND c.value_actor_id = ea.actor_id)"""),
        {"event": event_id, "actor": actor_id, "role": role})


async def recompute_events(conn: AsyncConnection, event_ids: Collection[UUID]) -> None:
    """Re-derive fatalities and attribution of these events from their claims."""
    if not event_ids:
        return
    params = {"ids": list(event_ids)}
    await conn.execute(_ADD_ROLES_NAMED_IN_CLAIMS, params)
    await conn.execute(_ATTRIBUTION, params)
    await conn.execute(_EVENT_FIGURES, params)
