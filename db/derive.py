"""Event figures, attribution and search text derived from claims: the rules, in one place.

Whoever changes claims (the seed, an import, an API write) calls
`recompute_events(conn, event_ids)` in the same transaction, so an event's figures
never disagree with its claims. Both rules are set-based SQL, so a bulk import
recomputes thousands of events in one statement each. Each is written once, as CTEs
over a group of claims (`attribution_ctes`, `fatality_ctes`): an event's claims here,
and all the claims of a happening's records in db/queries/happenings.py, so a
happening's figures and attribution follow the same rules as one event's.

A bulk load of new events (db/generate.py) does not insert them and then recompute:
that would write every event and role twice (a dead row, every index touched again,
and a second history version of each). It stages the batch in temporary tables
(`empty_staging`, then COPY), and `insert_staged_events` applies the same statements,
made from the same rule text for staging's relations (`_rules_for`), before inserting
the finished rows once.

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
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.references import can_skip_row_checks, check_references

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


# What full-text search (`q`) finds an event by: its summary (weight A), its claims'
# quotes (B), and every name and alias of its place and the place's ancestors, and of
# its actors (C). One text search configuration for all of it, so a query word is
# stemmed the way the indexed words were. Place and actor vectors are built once per
# place and actor of the batch. Quotes and actors are joined in a fixed order (a
# tsvector keeps word positions): the same rows give the same vector however they
# happen to lie on disk, in the stored tables or in staging.


def search_text_ctes(events: str, claims: str, event_actors: str) -> str:
    """CTEs ending in `texts` (id, vector): the search text of each event in `events`,
    from `claims` and `event_actors` (relations holding the batch's rows)."""
    return f"""
batch AS (
  SELECT id, place_id, summary FROM {events}
), place_vectors AS (   -- once per place of the batch, not once per event
  SELECT pl.place_id, to_tsvector('english', string_agg(DISTINCT n.name, ' ')) AS vector
    FROM (SELECT DISTINCT place_id FROM batch) pl
    JOIN place_lineage l ON l.descendant_id = pl.place_id
    JOIN place_names n ON n.place_id = l.ancestor_id
   GROUP BY pl.place_id
), actor_vectors AS (   -- once per actor of the batch
  SELECT ac.actor_id, to_tsvector('english', string_agg(DISTINCT n.name, ' ')) AS vector
    FROM (SELECT DISTINCT actor_id FROM {event_actors} ea) ac
    JOIN actor_names n ON n.actor_id = ac.actor_id
   GROUP BY ac.actor_id
), event_actor_vectors AS (
  SELECT ea.event_id, tsvector_agg(av.vector ORDER BY ea.actor_id, ea.role) AS vector
    FROM {event_actors} ea JOIN actor_vectors av USING (actor_id)
   GROUP BY ea.event_id
), quotes AS (
  SELECT c.event_id, string_agg(c.quote, ' ' ORDER BY c.id) AS quotes FROM {claims} c GROUP BY c.event_id
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


@dataclass(frozen=True)
class _BatchRows:
    """Where the rules find a batch of events' rows (`events`, `claims`,
    `event_actors`: relations holding the batch's rows alone) and the tables the
    derived values are written to."""

    events_table: str
    event_actors_table: str
    events: str
    claims: str
    event_actors: str


# Events already stored, the batch picked by its ids (`:ids`).
_STORED = _BatchRows(
    "events", "event_actors",
    events="(SELECT * FROM events WHERE id = ANY(:ids))",
    claims="(SELECT * FROM claims WHERE event_id = ANY(:ids))",
    event_actors="(SELECT * FROM event_actors WHERE event_id = ANY(:ids))")
# New events staged before they go in (empty_staging, then COPY): staging holds the batch alone.
_STAGED = _BatchRows("new_events", "new_event_actors",
                     events="new_events", claims="new_claims", event_actors="new_event_actors")


def _rules_for(rows: _BatchRows) -> tuple[TextClause, ...]:
    """The statements, in order, that derive a batch's roles named in claims, its
    attribution, and its figures and search text where `rows` says."""
    add_roles_named_in_claims = text(f"""
INSERT INTO {rows.event_actors_table} (event_id, actor_id, role)
SELECT DISTINCT c.event_id, c.value_actor_id, c.predicate
  FROM {rows.claims} c
 WHERE c.predicate IN ('perpetrator', 'target') AND c.value_actor_id IS NOT NULL
ON CONFLICT DO NOTHING""")
    claims = f"(SELECT c.event_id AS group_id, c.* FROM {rows.claims} c)"  # an event is its own group
    attribution = text(f"""
WITH {attribution_ctes(claims, f"(SELECT ea.event_id AS group_id, ea.actor_id, ea.role FROM {rows.event_actors} ea)")}
UPDATE {rows.event_actors_table} ea SET status = d.status, status_claim_ids = d.claim_ids
  FROM decided d
 WHERE (ea.event_id, ea.actor_id, ea.role) = (d.group_id, d.actor_id, d.role)
   AND (ea.status, ea.status_claim_ids) IS DISTINCT FROM (d.status, d.claim_ids)""")
    # One UPDATE for figures and search text: each event row is rewritten (and its
    # indexes touched) once per recompute, not once per derived value.
    figures_and_search_text = text(f"""
WITH {fatality_ctes(claims, f"(SELECT e.id AS group_id FROM {rows.events} e)")},
{search_text_ctes(rows.events, rows.claims, rows.event_actors)}
UPDATE {rows.events_table} e SET
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
      (d.low, d.best, d.high, d.civilians_low, d.civilians_best, d.civilians_high, d.claim_ids, t.vector)""")
    return add_roles_named_in_claims, attribution, figures_and_search_text


_RULES_FOR_STORED = _rules_for(_STORED)
_RULES_FOR_STAGED = _rules_for(_STAGED)

# Staging for new events: temporary tables shaped like the tables (made LIKE them in
# the session, so `SELECT *` lines up), kept for the session and emptied per batch.
# They write no WAL and fire no triggers; a role's dates are the event's, copied in by
# the trigger of event_actors when the row goes in, and its key is there for the
# roles named in claims to be added once.
_MAKE_STAGING = (
    "CREATE TEMP TABLE new_events (LIKE events INCLUDING DEFAULTS)",
    "CREATE TEMP TABLE new_claims (LIKE claims INCLUDING DEFAULTS)",
    "CREATE TEMP TABLE new_event_actors (LIKE event_actors INCLUDING DEFAULTS, PRIMARY KEY (event_id, actor_id, role))",
    "ALTER TABLE new_event_actors ALTER date_start DROP NOT NULL, ALTER date_end DROP NOT NULL",
)
_STAGED_TABLES = ("events", "event_actors", "claims")  # events first: the others refer to them
_INSERT_STAGED = tuple(text(f"INSERT INTO {table} SELECT * FROM new_{table}") for table in _STAGED_TABLES)


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
    """Re-derive fatalities and attribution of these (stored) events from their claims."""
    if not event_ids:
        return
    params = {"ids": list(event_ids)}
    for statement in _RULES_FOR_STORED:
        await conn.execute(statement, params)


async def empty_staging(conn: AsyncConnection) -> None:
    """The session's staging tables for a batch of new events, made if missing, empty:
    `new_events`, `new_event_actors` and `new_claims`, shaped like their tables."""
    if await conn.scalar(text("SELECT to_regclass('pg_temp.new_events') IS NULL")):
        for statement in _MAKE_STAGING:
            await conn.execute(text(statement))
    else:
        await conn.execute(text("TRUNCATE new_events, new_event_actors, new_claims"))


# What the row triggers of events and event_actors compute for every other write, for
# the staged rows in one statement each (migration 0022: those triggers do not fire for
# the staged rows, which go in under session_replication_role = replica): an event's
# place context by the triggers' own function, a role's dates its event's.
TRIGGERS_DONE_IN_STAGING = ("tr_events_place_context", "tr_event_actors_event_dates")
_FINISH_STAGED = (
    text("""
UPDATE new_events e SET (country_id, admin1_id, admin2_id, location) =
       (SELECT c.country_id, c.admin1_id, c.admin2_id, c.location
          FROM event_place_context(e.place_id, e.latitude, e.longitude, e.geo_precision) c)"""),
    text("""
UPDATE new_event_actors ea SET date_start = e.date_start, date_end = e.date_end
  FROM new_events e WHERE e.id = ea.event_id"""),
)


async def derive_staged_events(conn: AsyncConnection) -> None:
    """Derive, in staging, what recompute_events would for the staged events once
    stored: the roles named in claims, their attribution, the figures and search text
    (staging holds every claim and role of these events; places and actors are stored);
    and what the rows' triggers would: the events' place context, the roles' dates."""
    # Temporary tables have no statistics until analysed (autovacuum never sees them):
    # planned as near-empty, the attribution's joins took 250 us an event, not 10.
    await conn.execute(text("ANALYZE new_events, new_event_actors, new_claims"))
    for statement in (*_RULES_FOR_STAGED, *_FINISH_STAGED):
        await conn.execute(statement)


async def insert_staged_events(conn: AsyncConnection) -> None:
    """Insert the staged new events with their roles and claims, derived first: each
    row is written once, finished (no update after it, so no second version of it);
    their foreign keys checked once per table where that may be (db/references.py)."""
    await derive_staged_events(conn)
    by_batch = await can_skip_row_checks(conn, _STAGED_TABLES, TRIGGERS_DONE_IN_STAGING)
    for table, statement in zip(_STAGED_TABLES, _INSERT_STAGED):
        if by_batch:
            await check_references(conn, table, f"new_{table}")
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(statement)
        if by_batch:
            await conn.execute(text("SET LOCAL session_replication_role = origin"))
