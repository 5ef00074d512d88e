"""Rate limits and quotas (shared by every worker through Redis).

`charge(scope, units)` is how a route charges a request's cost beyond its first unit:
the limiter in front of the app leaves its per-request charge in the scope.
"""

from __future__ import annotations

from starlette.types import Scope

from db.cost import Charge, no_charge

CHARGE = "conflictkb.charge"  # in the scope: the request's db.cost.Charge


def request_charge(scope: Scope) -> Charge:
    """The request's charge (db.cost.Charge); without a limiter in front, one that charges nothing."""
    return scope.get(CHARGE, no_charge)


async def charge(scope: Scope, units: int) -> None:
    """Charge the request `units` more of its caller's quota; QuotaExceeded if it cannot."""
    if units > 0:
        await request_charge(scope)(units)
