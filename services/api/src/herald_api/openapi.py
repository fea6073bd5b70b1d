"""OpenAPI descriptions of error responses: every error is an :class:`ErrorBody`."""

from __future__ import annotations

from litestar.openapi import ResponseSpec

from herald_api.errors import ErrorBody

_MEANING: dict[int, str] = {
    400: "`bad_request` (invalid body or parameters) or `invalid_topic`",
    401: "`unauthorized`: missing, malformed, expired or badly signed token",
    403: "`forbidden`: the token does not allow this",
    404: "`not_found`: no such resource, or not visible to the caller",
    409: "`conflict`",
    413: "`too_large`: the body exceeds HERALD_MAX_BODY_BYTES",
    429: "`rate_limited`: this token exceeded HERALD_API_POST_RATE / HERALD_API_POST_BURST",
    503: "`unavailable`: NATS is unreachable",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """``responses=`` for a handler: the given error statuses, each with an ``ErrorBody``."""
    return {
        status: ResponseSpec(data_container=ErrorBody, description=_MEANING[status], generate_examples=False)
        for status in statuses
    }
