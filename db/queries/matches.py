"""An event's matches: the records of other sources that may be the same happening
(db/linking.py scores and selects them), best score first, paged like every list.

Each entry is the other record, the score with every part of it (NULL where a part
could not be measured), the outcome of the selection (`status`: linked, contender,
candidate) and an editor's verdict on the pair, if any (event_links).
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import REAL, bindparam, column, text, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from db.cache import AnswerCache
from db.linking import LINK_THRESHOLD, WEIGHTS
from db.pagination import CursorCodec, Page, PageRequest, Sort
from db.queries.common import keyset_page
from db.queries.events import MATCHES_OF

# The parts of a match's score (db/linking.py's WEIGHTS): the column of event_matches
# that holds each, and what it measures. One declaration for the SQL, REST's model and
# GraphQL's type (api/schemas.py, schema/types.py).
MATCH_PARTS: dict[str, tuple[str, str]] = {
    "time": ("time_score", "How specific the pair's dates are (a day 1 ... longer than two months 0.5), less "
                           "for the days between them."),
    "place": ("place_score", "Both located: 1 - km / 25; else how small the area holding both is (the same "
                             "admin2 0.8, admin1 0.6, country 0.3)."),
    "type": ("type_score", "The same sub-event type 1; else through the UCDP/ACLED type crosswalk."),
    "actors": ("actor_score", "How the actors of the record naming fewer fit the other's: one identity or one "
                              "standing for the other 1, a shared parent or group 0.6."),
    "fatalities": ("fatality_score", "1 - |best - best'| / (the larger + 2), at least 0.85 when one's best is "
                                     "in the other's range."),
    "claimants": ("claimant_score", "1 when one source reports both, 0.25 when they cite only others."),
    "text": ("text_score", "The words their summaries, quotes and document titles share: shared / "
                           "sqrt(words of one * words of the other)."),
}
assert set(MATCH_PARTS) == set(WEIGHTS), "every part of db/linking.py's score is declared here"
SCORE_DESCRIPTION = ("0-1: " + " + ".join(f"{weight:.2f} {part}" for part, weight in WEIGHTS.items())
                     + "; a part not measured (null) counts 0.5.")
LINKED_DESCRIPTION = (f"Linked: the same happening (status linked: scored at least {LINK_THRESHOLD} and chosen "
                      "one-to-one for its pair of sources, or confirmed by an editor).")

_MATCH_TREES = text(f"""
SELECT json_build_object(
  'event', json_build_object(
      'id', o.id, 'event_type', o.event_type, 'sub_event_type', o.sub_event_type,
      'date_start', o.date_start, 'date_end', o.date_end, 'date_precision', o.date_precision,
      'place', json_build_object('id', p.id, 'name', p.name, 'kind', p.kind),
      'fatalities_best', o.fatalities_best,
      'external_ids', coalesce((SELECT json_agg(json_build_object('dataset', x.dataset, 'id', x.external_id)
                                                ORDER BY x.dataset, x.external_id)
                                  FROM event_external_ids x WHERE x.event_id = o.id), '[]'::json)),
  'score', mt.score, 'status', mt.status, 'linked', mt.linked, 'days_apart', mt.days_apart,
  'distance_km', mt.distance_km,
  'parts', json_build_object({", ".join(f"'{part}', mt.{column}" for part, (column, _) in MATCH_PARTS.items())}),
  'verdict', (SELECT json_build_object('verdict', l.verdict, 'note', l.note, 'decided_by', l.decided_by,
                                       'decided_at', l.decided_at)
                FROM event_links l
               WHERE (l.event_id, l.other_id) IN ((:event, o.id), (o.id, :event))
               ORDER BY l.event_id = :event DESC LIMIT 1)   -- this event's row of the verdict
) AS tree
FROM unnest(:ids) WITH ORDINALITY AS page(id, ord)
JOIN event_matches mt ON (mt.event_id, mt.other_id) = (least(:event, page.id), greatest(:event, page.id))
JOIN events o ON o.id = page.id
LEFT JOIN places p ON p.id = o.place_id
ORDER BY page.ord
""").bindparams(bindparam("ids", type_=ARRAY(PG_UUID(as_uuid=True))), bindparam("event", type_=PG_UUID(as_uuid=True)))


async def list_matches(conn: AsyncConnection, page: PageRequest, codec: CursorCodec, cache: AnswerCache,
                       event_id: UUID) -> Page:
    """One page of the event's matches, best score first (ties by the other's id)."""
    matches = (text(MATCHES_OF.format(event=":event"))
               .bindparams(bindparam("event", event_id, type_=PG_UUID(as_uuid=True)))
               .columns(column("match_id", PG_UUID(as_uuid=True)), column("score", REAL))
               .subquery("matches"))
    order = Sort("-score", (matches.c.score, matches.c.match_id), (float, UUID), descending=True,
                 scope="matches", variant=str(event_id))

    async def trees(conn: AsyncConnection, ids: list[UUID]) -> list[dict]:
        return [r.tree for r in await conn.execute(_MATCH_TREES, {"ids": ids, "event": event_id})]

    return await keyset_page(conn, matches.c.match_id, true(), sort=order, page=page, codec=codec, cache=cache,
                             trees=trees)
