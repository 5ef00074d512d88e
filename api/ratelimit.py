"""Rate limits and quotas (shared by every worker through Redis: db/rate_limits.py).

Who pays: the API key a request carries (its own limit, set with `conflictkb apikey
set-limit`, else its role's quota), else its client address (the anonymous quota). The
client address is the peer's, or, when the peer is one of the trusted proxies
(CONFLICTKB_TRUSTED_PROXIES), the nearest address in X-Forwarded-For that is not a
trusted proxy. Every request pays one unit on arrival, in RateLimitMiddleware, in front
of the answer cache (a cached answer counts); a route or a GraphQL operation charges
more through `charge(scope, units)` once its cost is known (a websocket pays one unit to
connect, and is closed with 1008 when it cannot). /healthz, /readyz and /metrics are
free: a probe refused 429 would take a healthy server out of service.

Failed authentication (an unknown, revoked or malformed key) costs the client address
CONFLICTKB_FAILED_AUTH_CHARGE units; CONFLICTKB_FAILED_AUTH_LOCKOUT_AFTER of them in a
window lock the address out for CONFLICTKB_FAILED_AUTH_LOCKOUT seconds: every request
from it that carries a key is then answered 429 before the key is looked up, a good key
too, or the lockout would tell a right guess from a wrong one. Requests without a key
go on as anonymous ones, paying from the address's quota, which failures have drained.

Every answer carries the draft-ietf-httpapi-ratelimit-headers fields, the policy named by
the role (`anonymous`, `reader`, `editor`, `admin`):
    RateLimit-Policy: "anonymous";q=600;w=60
    RateLimit: "anonymous";r=599;t=60
Past the quota: 429 problem+json with Retry-After (REST and /graphql alike); a charge
during a GraphQL operation that cannot be covered is a RATE_LIMITED error.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import refuse, request_principal
from api.errors import internal_error, problem_response, quota_exceeded
from api.settings import Settings
from db.api_keys import ApiKeyRefused, ApiPrincipal
from db.cost import Charge, QuotaExceeded, no_charge
from db.engine import is_database_unavailable
from db.metrics import RATE_LIMIT_REFUSALS
from db.rate_limits import Policy, RateLimiter, Usage

log = logging.getLogger(__name__)

CHARGE = "conflictkb.charge"  # in the scope: the request's db.cost.Charge

# Probes and scrapes: never refused, never counted.
FREE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def request_charge(scope: Scope) -> Charge:
    """The request's charge (db.cost.Charge); without a limiter in front, one that charges nothing."""
    return scope.get(CHARGE, no_charge)


async def charge(scope: Scope, units: int) -> None:
    """Charge the request `units` more of its caller's quota; QuotaExceeded if it cannot."""
    if units > 0:
        await request_charge(scope)(units)


Networks = Sequence[IPv4Network | IPv6Network]


def _trusted(address: str, proxies: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(scope: Scope, trusted_proxies: Networks) -> str:
    """Who sent the request: the peer, or, from a trusted proxy, the address its
    X-Forwarded-For names: walking the list from the right (each proxy appends the peer
    it saw), the first hop that is not itself a trusted proxy. Hops further left were
    written by the client and could say anything."""
    peer = scope["client"][0] if scope.get("client") else "unknown"
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return peer
    hops = [hop.strip() for name, value in scope["headers"] if name == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted_proxies):
            return hop[:64]  # an address (not the whole header, whatever it holds)
    return hops[0][:64] if hops else peer


def _carries_key(scope: Scope) -> bool:
    return any(name in (b"authorization", b"x-api-key") for name, _ in scope["headers"])


class RequestQuota:
    """One request's account: the Charge routes call (api.ratelimit.charge), and the
    RateLimit headers of its answer."""

    def __init__(self, limiter: RateLimiter, bucket: str, address: str, policy: Policy, payer: str):
        self.limiter = limiter
        self.bucket = bucket
        self.address = address
        self.policy = policy
        self.payer = payer  # who pays, as a refusal names them
        self.usage = Usage(True, policy.quota, policy.window)

    async def __call__(self, units: int) -> None:
        self.usage = await self.limiter.charge(self.bucket, units, self.policy)
        if not self.usage.allowed:
            raise self.refusal(units)

    def refusal(self, units: int) -> QuotaExceeded:
        usage, policy = self.usage, self.policy
        RATE_LIMIT_REFUSALS.labels(policy.name, "lockout" if usage.locked else "cost" if units > policy.quota
                                   else "quota").inc()
        if usage.locked:
            detail = (f"Too many failed authentications from {self.address}: it is locked out for "
                      f"{usage.reset_seconds} s more.")
        elif units > policy.quota:
            detail = (f"This request costs {units} units, more than the whole quota of {self.payer} "
                      f"({policy.quota} units per {policy.window} s).")
        else:
            detail = (f"The rate limit of {self.payer} is reached ({policy.quota} units per {policy.window} s, "
                      f"{usage.remaining} left, this needs {units}); try again in {usage.reset_seconds} s.")
        return QuotaExceeded(detail, usage.reset_seconds, dict(self.headers()))

    def headers(self) -> list[tuple[str, str]]:
        name, usage = self.policy.name, self.usage
        return [("RateLimit-Policy", f'"{name}";q={self.policy.quota};w={self.policy.window}'),
                ("RateLimit", f'"{name}";r={usage.remaining};t={usage.reset_seconds}')]


class RateLimitMiddleware:
    """Charges every request's arrival to who pays for it (see the module's text), leaves
    the request's RequestQuota in scope[CHARGE], and puts the RateLimit headers on every
    answer. In front of the answer cache and the key check for reads; a key it looks
    up is not looked up again (api/auth.py keeps it, or its refusal, in the scope)."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        window = settings.rate_limit_window_seconds
        self.policies = {role: Policy(role, quota, window) for role, quota in (
            ("anonymous", settings.rate_limit_anonymous), ("reader", settings.rate_limit_reader),
            ("editor", settings.rate_limit_editor), ("admin", settings.rate_limit_admin))}
        self.trusted_proxies = tuple(settings.trusted_proxies)
        self.failed_auth_charge = settings.failed_auth_charge
        self.lockout_after = settings.failed_auth_lockout_after
        self.lockout_seconds = settings.failed_auth_lockout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in FREE_PATHS:
            await self.app(scope, receive, send)
            return
        limiter: RateLimiter = scope["app"].state.rate_limiter
        address = client_address(scope, self.trusted_proxies)
        try:
            quota = await self._arrive(scope, limiter, address)
        except QuotaExceeded as exc:
            await refuse(quota_exceeded(exc), scope, receive, send)  # a websocket: closed before it is accepted
            return
        scope[CHARGE] = quota
        if scope["type"] == "websocket":  # its connection paid; its operations charge the same quota
            await self.app(scope, receive, send)
            return

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(raw=list(message["headers"]))
                for name, value in quota.headers():
                    headers[name] = value
                message = {**message, "headers": headers.raw}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # The app's 500 is sent by Starlette's outermost middleware, past this one: sent
            # here, it carries the headers too (that middleware still logs the error and
            # sends nothing more once a response has started).
            if not started:
                await problem_response(internal_error(), scope["path"])(scope, receive, send_with_headers)
            raise

    async def _arrive(self, scope: Scope, limiter: RateLimiter, address: str) -> RequestQuota:
        """The request's account, its first unit paid; QuotaExceeded if it cannot be."""
        anonymous = RequestQuota(limiter, f"address:{address}", address, self.policies["anonymous"], address)
        if _carries_key(scope):
            locked = await limiter.locked_for(address)
            if locked:
                anonymous.usage = Usage(False, 0, locked, locked=True)
                raise anonymous.refusal(1)
            try:
                principal = await request_principal(HTTPConnection(scope))
            except ApiKeyRefused:
                # answered by the route (a 401 where a key is needed; a public read goes on
                # as anonymous), after paying for the failure
                anonymous.usage = await limiter.fail(address, anonymous.policy, max(1, self.failed_auth_charge),
                                                     lockout_after=self.lockout_after,
                                                     lockout_seconds=self.lockout_seconds)
                if not anonymous.usage.allowed:
                    raise anonymous.refusal(self.failed_auth_charge) from None
                return anonymous
            except Exception as exc:
                if not is_database_unavailable(exc):
                    raise
                # the route looks the key up again and answers 503; until then, anonymous
                log.warning("rate limits: no key lookup for %s (%s); charged to the address", address, exc)
            else:
                await (quota := self._key_quota(limiter, principal, address))(1)
                return quota
        await anonymous(1)
        return anonymous

    def _key_quota(self, limiter: RateLimiter, principal: ApiPrincipal, address: str) -> RequestQuota:
        policy = self.policies[principal.role]
        if principal.rate_limit is not None:
            policy = Policy(policy.name, principal.rate_limit, policy.window)
        return RequestQuota(limiter, f"key:{principal.key_id}", address, policy, f"the key {principal.name!r}")
