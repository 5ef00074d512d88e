"""What a public request may cost, and the refusals of going over.

Transport-neutral, like db/filters.py's FilterError: REST turns these into problem+json
(422, 429), GraphQL into typed errors. The cost model itself (how a filter, a page, a
stats grouping or a GraphQL operation is priced, and the limits) grows here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable


class CostLimitExceeded(ValueError):
    """A request over one of the cost limits, refused before any SQL runs: `parameter`
    names what to change (`q`, `where`, `limit`, `first`, ...), `limit` the most allowed."""

    def __init__(self, parameter: str, limit: int, given: int, what: str):
        super().__init__(f"{parameter}: {what} {given}, more than the limit of {limit}")
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
