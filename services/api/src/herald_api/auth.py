"""Bearer-token authentication for every ``/api`` route."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from herald_common.errors import ErrorCode, HeraldError
from herald_common.tokens import Claims, TokenVerifier

_CLAIMS_KEY = "herald_claims"
_TOKEN_KEY = "herald_token"


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization")
    if not header:
        raise HeraldError(ErrorCode.UNAUTHORIZED, "missing Authorization: Bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HeraldError(ErrorCode.UNAUTHORIZED, "Authorization header must be 'Bearer <token>'")
    return token.strip()


def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Claims:
    """The verified claims of the request's token, verified once per request."""
    cached = connection.scope.get("state", {}).get(_CLAIMS_KEY)
    if isinstance(cached, Claims):
        return cached
    verifier: TokenVerifier = connection.app.state.verifier
    token = bearer_token(connection)
    claims = verifier.verify(token)
    connection.state[_CLAIMS_KEY] = claims
    connection.state[_TOKEN_KEY] = token
    return claims


async def require_token(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Router guard: every route below it needs a valid token (JWKS keys fetched as needed)."""
    if isinstance(connection.scope.get("state", {}).get(_CLAIMS_KEY), Claims):
        return
    verifier: TokenVerifier = connection.app.state.verifier
    token = bearer_token(connection)
    connection.state[_CLAIMS_KEY] = await verifier.verify_async(token)
    connection.state[_TOKEN_KEY] = token


def request_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    authenticate(connection)
    token: str = connection.state[_TOKEN_KEY]
    return token


async def provide_claims(request: ASGIConnection[Any, Any, Any, Any]) -> Claims:
    return authenticate(request)
