"""Per-token token buckets for the api's mutating routes (plain code, no I/O)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler

from herald_api.auth import authenticate, request_token
from herald_common.errors import ErrorCode, HeraldError
from herald_common.tokens import Claims

#: Past this many tracked tokens, buckets that have refilled completely are dropped.
PRUNE_AT = 10_000


class RateLimiter:
    """``rate`` requests per second with bursts of ``burst``; ``rate`` 0 disables it."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[bytes, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        now = self._clock()
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        tokens, last = self._buckets.get(digest, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[digest] = (tokens, now)
        if len(self._buckets) > PRUNE_AT:
            self._prune(now)
        return allowed

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


#: Methods that change something: each request with one of them costs a token.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CHARGED_KEY = "herald_rate_charged"


async def write_rate_limit(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for every ``/api`` route: a POST, PUT, PATCH or DELETE takes one token from the
    bucket of the request's bearer token, and gets 429 ``rate_limited`` when it is empty.

    Tokens with the publisher or admin role (backend producers) have a bucket of their
    own, off by default; everyone else's is ``HERALD_API_POST_RATE``. A request is charged
    once however many times the guard runs for it (the router and a handler may both list
    it). Async although it never waits: litestar runs a plain function guard in a worker
    thread.
    """
    if connection.scope.get("method") not in WRITE_METHODS or connection.state.get(_CHARGED_KEY):
        return
    connection.state[_CHARGED_KEY] = True
    check_write_rate(connection.app.state, request_token(connection), authenticate(connection))


def check_write_rate(state: State, token: str, claims: Claims) -> None:
    """Raise ``rate_limited`` when ``token``'s bucket is empty (see :func:`write_rate_limit`)."""
    limiter: RateLimiter = state.publisher_rate_limiter if claims.can_publish_rest else state.rate_limiter
    if not limiter.allow(token):
        raise HeraldError(ErrorCode.RATE_LIMITED, "too many requests for this token; slow down")


#: The former name, from when only POSTs were limited.
post_rate_limit = write_rate_limit
