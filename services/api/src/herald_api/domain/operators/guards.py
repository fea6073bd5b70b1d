"""Only ``admin`` tokens may use the operator endpoints."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from herald_api.auth import authenticate
from herald_common.errors import ErrorCode, HeraldError


async def require_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """403 ``forbidden`` for a valid token without the ``admin`` role (401 comes first, from the router)."""
    if not authenticate(connection).is_admin:
        raise HeraldError(ErrorCode.FORBIDDEN, "operator endpoints need a token with the admin role")
