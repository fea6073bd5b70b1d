"""Bearer-token authentication for every ``/api`` route."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from herald_common.errors import ErrorCode, HeraldError
from herald_common.tokens import Claims, TokenVerifier

log = logging.getLogger(__name__)

#: Where a request's verified claims are kept in its scope state.
CLAIMS_KEY = "herald_claims"
_TOKEN_KEY = "herald_token"

#: Seconds a verified token is taken on trust before it is verified again.
VERIFIED_TTL = 30.0
#: Verified tokens remembered at most; the oldest is forgotten first.
VERIFIED_MAX = 10_000


class VerifiedTokens:
    """Claims of tokens verified recently, so a producer posting with one token does not
    pay for a signature check on every request (plain code, no I/O).

    A token is the same signed bytes each time, so its verdict only changes when it
    expires (checked here on every hit, with the verifier's leeway) or when its key is
    withdrawn from a JWKS, which takes effect within ``ttl`` seconds.
    """

    def __init__(
        self,
        ttl: float = VERIFIED_TTL,
        max_size: int = VERIFIED_MAX,
        leeway: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ttl = ttl
        self._max_size = max_size
        self._leeway = leeway
        self._clock = clock
        self._entries: dict[str, tuple[Claims, float]] = {}

    def get(self, token: str) -> Claims | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        claims, until = entry
        if self._clock() >= until:
            del self._entries[token]
            return None
        return claims

    def put(self, token: str, claims: Claims) -> None:
        if self._ttl <= 0 or self._max_size <= 0 or not math.isfinite(claims.exp):
            return
        # PyJWT rejects a token once now >= exp + leeway; so does get().
        until = min(self._clock() + self._ttl, claims.exp + self._leeway)
        self._entries.pop(token, None)
        while len(self._entries) >= self._max_size:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = (claims, until)


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return parse_bearer(connection.headers.get("authorization"))


def parse_bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header value; ``unauthorized`` otherwise."""
    if not header:
        raise HeraldError(ErrorCode.UNAUTHORIZED, "missing Authorization: Bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HeraldError(ErrorCode.UNAUTHORIZED, "Authorization header must be 'Bearer <token>'")
    return token.strip()


@contextmanager
def _refusing_surprises() -> Iterator[None]:
    """Whatever a signed token's claims hold, verifying it ends in its claims or a 401:
    a claim value no check anticipated (a number too large for a float, say) is refused
    like any other bad token, never a 500."""
    try:
        yield
    except HeraldError:
        raise
    except Exception as exc:
        log.warning("token refused: %s while verifying it", type(exc).__name__)
        raise HeraldError(ErrorCode.UNAUTHORIZED, "invalid token: a claim has an unusable value") from None


def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Claims:
    """The verified claims of the request's token, verified once per request."""
    cached = connection.scope.get("state", {}).get(CLAIMS_KEY)
    if isinstance(cached, Claims):
        return cached
    verifier: TokenVerifier = connection.app.state.verifier
    token = bearer_token(connection)
    with _refusing_surprises():
        claims = verifier.verify(token)
    connection.state[CLAIMS_KEY] = claims
    connection.state[_TOKEN_KEY] = token
    return claims


async def require_token(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Router guard: every route below it needs a valid token (JWKS keys fetched as needed)."""
    if isinstance(connection.scope.get("state", {}).get(CLAIMS_KEY), Claims):
        return
    token = bearer_token(connection)
    claims = await verified_claims(connection.app.state.verified_tokens, connection.app.state.verifier, token)
    connection.state[CLAIMS_KEY] = claims
    connection.state[_TOKEN_KEY] = token


async def verified_claims(verified: VerifiedTokens, verifier: TokenVerifier, token: str) -> Claims:
    """The claims of ``token``: from the cache of recently verified tokens, else verified
    (JWKS keys fetched as needed) and remembered."""
    claims = verified.get(token)
    if claims is None:
        with _refusing_surprises():
            claims = await verifier.verify_async(token)
        verified.put(token, claims)
    return claims


def request_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    authenticate(connection)
    token: str = connection.state[_TOKEN_KEY]
    return token


async def provide_claims(request: ASGIConnection[Any, Any, Any, Any]) -> Claims:
    return authenticate(request)
