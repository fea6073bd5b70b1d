"""The one mapping from failures to HTTP responses: status + ``{"code","message"}``.

:class:`HeraldError` carries its code; litestar's own exceptions (validation, routing,
body size) are translated by status; anything else is ``internal`` without details.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from herald_common.errors import ErrorCode, HeraldError

log = logging.getLogger(__name__)


class ErrorBody(msgspec.Struct, frozen=True):
    """Every error response body."""

    code: str
    message: str


_BY_STATUS: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.TOO_LARGE,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.UNAVAILABLE,
}


def error_response(code: ErrorCode, message: str, status: int | None = None) -> Response[ErrorBody]:
    return Response(
        ErrorBody(code=code.value, message=message),
        status_code=status or code.http_status,
        media_type=MediaType.JSON,
    )


def status_of(exc: BaseException) -> int:
    """The HTTP status a request that raised ``exc`` ends with."""
    if isinstance(exc, HeraldError):
        return exc.code.http_status
    if isinstance(exc, HTTPException):
        return exc.status_code
    return 500


def code_for_status(status: int) -> ErrorCode:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ErrorCode.INTERNAL if status >= 500 else ErrorCode.BAD_REQUEST


def _herald_error(_: Request[Any, Any, Any], exc: HeraldError) -> Response[ErrorBody]:
    return error_response(exc.code, exc.message)


def _validation_message(exc: ValidationException) -> str:
    extra = exc.extra
    if isinstance(extra, list) and extra:
        parts = []
        for item in extra:
            if isinstance(item, dict):
                key = item.get("key")
                text = str(item.get("message", ""))
                parts.append(f"{key}: {text}" if key else text)
        if parts:
            return "invalid request: " + "; ".join(parts)
    return f"invalid request: {exc.detail}"


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    status = exc.status_code
    code = code_for_status(status)
    if isinstance(exc, ValidationException):
        message = _validation_message(exc)
    elif code is ErrorCode.TOO_LARGE:
        message = "request body is too large"
    elif code is ErrorCode.INTERNAL:
        log.error("http error %d: %s", status, exc.detail)
        message = "internal error"
    else:
        message = exc.detail or code.value
    headers = exc.headers or None
    response = error_response(code, message, status)
    if headers:
        response.headers.update(headers)
    return response


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.exception("unhandled error", exc_info=exc)
    return error_response(ErrorCode.INTERNAL, "internal error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HeraldError: _herald_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
