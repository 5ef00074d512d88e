"""Example GraphQL queries for the common tasks, written once: GraphiQL lists them (its
Examples panel) and the front page links to GraphiQL with each one filled in
(api/pages.py); tests/test_pages.py runs every one on the shipped data and checks it
answers with data, so an example cannot drift from the schema."""

from __future__ import annotations

from dataclasses import dataclass

from graphql import parse


@dataclass(frozen=True)
class Example:
    title: str
    description: str
    query: str

    @property
    def operation_name(self) -> str:
        return parse(self.query).definitions[0].name.value


STRIKES_BY_REGION_AND_MONTH = Example(
    "Strikes by region and month",
    "Air/drone strikes and shelling per admin1 area and month, with fatality sums (REST: /v1/stats/events).",
    """# Strikes (air/drone strikes and shelling) per province and month.
query StrikesByRegionAndMonth {
  eventStats(
    groupBy: [ADMIN1, MONTH]
    where: {subEventType: ["Air/drone strike", "Shelling/artillery/missile attack"]}
  ) {
    admin1
    month
    events
    fatalitiesLow
    fatalitiesBest
    fatalitiesHigh
    civilianFatalities
  }
}
""")

EVENT_WITH_CLAIMS = Example(
    "An event with all its claims",
    "One event (by id or external id) with who claims what about it, and the attribution derived from the claims.",
    """# One event by id or external id (dataset:id), with every claim behind its figures.
query EventWithClaims {
  event(id: "conflictkb-seed:al-qasr-strike") {
    id
    eventType
    subEventType
    dateStart
    dateEnd
    datePrecision
    summary
    place { name kind }
    fatalities { low best high civilians claimIds }
    actors { role status statusClaimIds actor { name kind } }
    claims {
      id
      claimant { name }
      via { name }
      document { publisher title publishedAt }
      predicate
      stance
      value { low best high actor { name } }
      quote
    }
  }
}
""")

ACTOR_EVENTS = Example(
    "An actor's events",
    "Events naming an actor in any role, found by any of its names (Daesh, ISIS, IS, Islamic State).",
    """# Events naming an actor in any role, by name or alias, newest first.
query ActorEvents {
  events(where: {actor: ["Daesh"]}, first: 10) {
    totalCount
    edges {
      node {
        id
        dateStart
        eventType
        subEventType
        place { name }
        fatalities { best }
        actors { role status actor { name } }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
""")

CONTESTED_ATTRIBUTIONS = Example(
    "Contested attributions",
    "Events where a source blames an actor and another source (or the actor) denies it.",
    """# Events with an actor's role asserted by some sources and denied by others.
query ContestedAttributions {
  events(where: {attribution: [CONTESTED]}, first: 10) {
    totalCount
    edges {
      node {
        id
        dateStart
        summary
        actors { role status statusClaimIds actor { name } }
      }
    }
  }
}
""")

CHANGE_FEED = Example(
    "The change feed",
    "What was written since your last call, in commit order, for keeping a copy in sync (REST: /v1/changes).",
    """# Records created, updated, deleted or merged, oldest write first. Keep nextCursor and
# pass it as `since` on your next call; read each changed record again by its id.
query ChangeFeed {
  changes(first: 20) {
    data { op type id at mergedInto }
    nextCursor
    hasMore
  }
}
""")

EXAMPLES = (STRIKES_BY_REGION_AND_MONTH, EVENT_WITH_CLAIMS, ACTOR_EVENTS, CONTESTED_ATTRIBUTIONS, CHANGE_FEED)
