"""What a public request may cost, and the refusals of going over.

Transport-neutral, like db/filters.py's FilterError: REST turns these into problem+json
(422, 429), GraphQL into typed errors. One set of limits (`Limits`, the defaults in
`LIMITS`) holds for REST and GraphQL alike, and is checked by the pure functions below
before any SQL of the request runs: a refusal names the parameter to change and the
limit. Under the limits, a read finishes within its statement budget
(CONFLICTKB_READ_STATEMENT_TIMEOUT, db/engine.py).

A request's price is in units of the rate-limit quota: one unit is about the work of a
page of 50 events with their places and actors. Every request pays one unit on arrival
(api/ratelimit.py); a route charges what its price is beyond that (`beyond_arrival`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from db.filters import LIST_FIELDS, EventFilter


class CostLimitExceeded(ValueError):
    """A request over one of the cost limits, refused before any SQL runs: `parameter`
    names what to change (`q`, `where`, `limit`, `first`, ...), `limit` the most allowed."""

    def __init__(self, parameter: str, limit: int, given: int, what: str):
        super().__init__(f"{parameter}: {given} {what}, more than the limit of {limit}")
        self.parameter = parameter
        self.limit = limit
        self.given = given
        self.what = what


class QuotaExceeded(Exception):
    """The caller's rate-limit quota is spent: 429 with `Retry-After` in REST,
    RATE_LIMITED in GraphQL. `headers`: the RateLimit headers to send with the refusal."""

    def __init__(self, detail: str, retry_after: int, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        self.headers = headers or {}


# Charges a request `units` of its caller's quota beyond the unit every request pays on
# arrival, once its cost is known and before its SQL runs; raises QuotaExceeded when the
# quota cannot cover it. api/ratelimit.py makes one per request; GraphQL's context holds it.
Charge = Callable[[int], Awaitable[None]]


async def no_charge(units: int) -> None:
    """The charge where no limiter runs (commands, tests of the query layer)."""


# --------------------------------------------------------------------------- the limits


@dataclass(frozen=True)
class Limits:
    """The most one public read may ask for. Each default was measured on the shipped
    data (16,580 events) to answer well within the 5 s read budget at the limit (the
    figures are in the README, "Limits"); the refusals say which limit was hit."""

    # Page sizes: REST `limit`, GraphQL `first` (as of a time too: a page of 500 as of
    # a time takes 0.6 s since the history's tables are materialized, 5.4 s before).
    page_size: int = 500
    # /v1/changes: entries are small (type, id, op, time), so more to a page.
    changes_page_size: int = 10_000
    # The filter (REST's parameters and `where`; GraphQL's `where`), over its whole
    # _and/_or/_not tree: conditions set plus nested filters (an _or of 900 one-name
    # filters took 10.6 s); nesting depth; values of one list filter (country, actor...);
    # values of all list filters together (an _or of 1,500 actors took 7.2 s).
    filter_items: int = 100
    filter_depth: int = 4
    filter_values: int = 100
    filter_values_total: int = 250
    # Text search `q` (all of them in the tree): words, operators (`or`, `-`, quoted
    # phrases) and characters. A tsquery's cost is per term for every event it tests,
    # and most for sort=relevance (ts_rank_cd on every match: 16 frequent words ranked
    # over all 16,580 events 0.7 s, 32 words 2.2 s).
    q_terms: int = 16
    q_operators: int = 16
    q_length: int = 1_000
    # Stats: dimensions of one grouping (the answer's rows grow as their product).
    stats_dimensions: int = 4
    # A GraphQL operation's points (schema/cost.py): the richest selection of events
    # (every field, claims, actors, places with ancestors) on a page of 500 is 27,002
    # points and takes 1.1 s; two such pages are allowed, not three.
    graphql_points: int = 60_000


LIMITS = Limits()


def at_most(parameter: str, given: int, limit: int, what: str) -> None:
    """Refuse `given` (of `what`, in `parameter`) over `limit`."""
    if given > limit:
        raise CostLimitExceeded(parameter, limit, given, what)


# --------------------------------------------------------------------------- text search


_WORD = re.compile(r"\w+")
_OR = re.compile(r"(?<!\S)or(?!\S)", re.IGNORECASE)
_NOT = re.compile(r"(?<!\S)-\w")


@dataclass(frozen=True)
class TextSearchSize:
    """A `q` as websearch_to_tsquery reads it: its words (terms) and its operators."""

    terms: int
    operators: int
    length: int

    @classmethod
    def of(cls, q: str) -> TextSearchSize:
        ors = len(_OR.findall(q))
        words = len(_WORD.findall(q)) - ors
        return cls(terms=words, operators=ors + len(_NOT.findall(q)) + q.count('"') // 2, length=len(q))


def check_text_search(q: str, limits: Limits = LIMITS, parameter: str = "q") -> TextSearchSize:
    size = TextSearchSize.of(q)
    at_most(parameter, size.terms, limits.q_terms, "words")
    at_most(parameter, size.operators, limits.q_operators, "operators (or, -, quoted phrases)")
    at_most(parameter, size.length, limits.q_length, "characters")
    return size


# --------------------------------------------------------------------------- filters


_NESTED = ("all_of", "any_of", "none_of")


@dataclass(frozen=True)
class FilterSize:
    """An EventFilter's size over its whole tree."""

    items: int  # conditions set, plus nested filters
    depth: int  # levels of _and/_or/_not below the top
    values: int  # values of all list filters
    largest_list: tuple[str, int] | None  # the list filter with the most values: (name, count)
    q_terms: int
    q_operators: int
    q_length: int
    top_level: frozenset[str]  # what the top level sets (for naming a refusal)

    @classmethod
    def of(cls, f: EventFilter) -> FilterSize:
        items = values = depth = q_terms = q_ops = q_len = 0
        largest: tuple[str, int] | None = None
        stack = [(f, 0)]
        while stack:
            node, level = stack.pop()
            depth = max(depth, level)
            for name in node.given():
                if name in _NESTED:
                    continue
                items += 1
                value = getattr(node, name)
                if name in LIST_FIELDS:
                    values += len(value)
                    if largest is None or len(value) > largest[1]:
                        largest = (name, len(value))
                if name == "q":
                    size = TextSearchSize.of(value)
                    q_terms, q_ops, q_len = q_terms + size.terms, q_ops + size.operators, q_len + size.length
            children = node.nested()
            items += len(children)
            stack.extend((child, level + 1) for child in children)
        return cls(items=items, depth=depth, values=values, largest_list=largest, q_terms=q_terms,
                   q_operators=q_ops, q_length=q_len, top_level=frozenset(f.given()))


def check_filter(f: EventFilter, limits: Limits = LIMITS, *, where: str = "where",
                 top_level_name: Callable[[str], str] = str) -> FilterSize:
    """Refuse a filter over the limits. A limit hit by the top level alone is named by
    its parameter (`top_level_name("q")`: REST `q`, GraphQL `where.q`), one reached
    through nested filters by `where`."""
    for name in sorted(f.given()):  # the top level's own parameters first, by their names
        value = getattr(f, name)
        if name == "q":
            check_text_search(value, limits, top_level_name("q"))
        elif name in LIST_FIELDS:
            at_most(top_level_name(name), len(value), limits.filter_values, "values")
    size = FilterSize.of(f)
    at_most(where, size.depth, limits.filter_depth, "levels of _and/_or/_not")
    at_most(where, size.items, limits.filter_items, "filter items (conditions and nested filters)")
    if size.largest_list is not None:
        name, count = size.largest_list
        at_most(where, count, limits.filter_values, f"values of one {name} filter")
    at_most(where, size.values, limits.filter_values_total, "values of all list filters")
    at_most(where, size.q_length, limits.q_length, "characters of text search")
    at_most(where, size.q_terms, limits.q_terms, "words of text search")
    at_most(where, size.q_operators, limits.q_operators, "text search operators (or, -, quoted phrases)")
    return size


def check_page(size: int, limits: Limits = LIMITS, *, parameter: str = "limit") -> None:
    at_most(parameter, size, limits.page_size, "items per page")


def check_stats(group_by: tuple[str, ...], limits: Limits = LIMITS, parameter: str = "group_by") -> None:
    at_most(parameter, len(group_by), limits.stats_dimensions, "dimensions")


# --------------------------------------------------------------------------- prices
#
# What each part of a read adds to the unit every request pays on arrival, so the
# parts of a request are charged separately and add up (a plain page of 50 events
# with a simple filter: nothing more).

PAGE_UNIT = 50  # events (or other records) on one unit's page
AS_OF_FACTOR = 4  # a list as of a time reads the history: four times the work
CHANGES_UNIT = 1_000  # change-feed entries (an id, a type, a time) per unit


def page_charge(limit: int) -> int:
    return math.ceil(limit / PAGE_UNIT) - 1


def as_of_charge(limit: int) -> int:
    """What reading a page as of a time adds to page_charge."""
    return math.ceil(limit / PAGE_UNIT) * (AS_OF_FACTOR - 1)


def changes_charge(limit: int) -> int:
    return math.ceil(limit / CHANGES_UNIT) - 1


# A read collapsed by happening (db.filters.first_of_its_happening) tests each matching
# event for an earlier matching record of its happening, the filter applied again to
# those records, and stats read the events rather than the monthly rollup: 1.5 to 3
# times the work of the same read (50,000 events, 40% of them in happenings of two).
COLLAPSE_FACTOR = 2


def collapse_charge(limit: int) -> int:
    """What collapsing a list's page of `limit` adds to page_charge."""
    return math.ceil(limit / PAGE_UNIT) * (COLLAPSE_FACTOR - 1)


def collapse_stats_charge(group_by: tuple[str, ...], fill: bool) -> int:
    """What collapsing stats adds to stats_charge."""
    return (1 + stats_charge(group_by, fill)) * (COLLAPSE_FACTOR - 1)


def filter_charge(size: FilterSize) -> int:
    """Names to resolve, conditions to test, terms to look up (0 for a few of each)."""
    return size.items // 20 + size.values // 50 + size.q_terms // 8


def stats_charge(group_by: tuple[str, ...], fill: bool) -> int:
    """Before the answer is made: each dimension multiplies the groups."""
    return len(group_by) + (2 if fill else 0)


# Stats and exports are also charged by size: stats by the answer's bytes once made
# (the answer cache keeps it, so a repeat is not charged again), an export by its rows,
# counted before the first is sent (up to EXPORT_COUNT_CAP, so the count stays cheap).
STATS_BYTES_PER_UNIT = 64 * 1024
EXPORT_ROWS_PER_UNIT = 1_000
EXPORT_COUNT_CAP = 1_000_000


def stats_size_charge(answer_bytes: int) -> int:
    return answer_bytes // STATS_BYTES_PER_UNIT


def export_charge(rows: int) -> int:
    return math.ceil(rows / EXPORT_ROWS_PER_UNIT)


# A GraphQL operation's points (schema/cost.py): an object in the answer is a point.
# A unit is about what a REST page of 50 events is: 50 events with place and actors.
POINTS_PER_UNIT = 200


def operation_charge(points: int) -> int:
    return max(0, math.ceil(points / POINTS_PER_UNIT) - 1)
