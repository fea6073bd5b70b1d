"""The one error table of Herald, shared by REST and WebSocket.

The api maps each :class:`ErrorCode` to an HTTP status; the gateway sends it in an
``error`` frame and, for fatal conditions, closes with a :class:`CloseCode`.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    INVALID_TOPIC = "invalid_topic"
    RATE_LIMITED = "rate_limited"
    TOO_LARGE = "too_large"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self]


_HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.INVALID_TOPIC: 400,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}


class CloseCode(enum.IntEnum):
    """WebSocket close codes. 4xxx are Herald's; 1xxx are RFC 6455's."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down: reconnect
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    AUTH_FAILED = 4001  # authentication failed or timed out: get a new token first
    OPERATOR_DISCONNECT = 4003  # disconnected by an operator: do not reconnect automatically
    POLICY_LIMIT = 4008  # rate or connection limit: back off before reconnecting
    SLOW_CONSUMER = 4009  # fell too far behind: reconnect and recover


class HeraldError(Exception):
    """An error a client can act on, carrying its :class:`ErrorCode`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"HeraldError({self.code.value!r}, {self.message!r})"
