"""Tokens: a fixed string or an async callable, and when to refresh one (pure helpers).

The client never verifies a token (the gateway does); it only reads ``exp`` (and
``iat``) from the JWT payload to refresh before the gateway would expire the session.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

TokenProvider = Callable[[], Awaitable[str]]
TokenSource = str | TokenProvider

#: Refresh this share of the token's lifetime before ``exp`` ...
REFRESH_SHARE = 0.1
#: ... but never more than this many seconds before it.
REFRESH_MARGIN_CAP = 30.0


@dataclass(frozen=True, slots=True)
class TokenTimes:
    exp: float
    iat: float | None


def read_times(token: str) -> TokenTimes | None:
    """``exp``/``iat`` from a JWT's payload, unverified; None when it is not a JWT with a numeric ``exp``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    body = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(body.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if not isinstance(claims, dict):
        return None
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    if exp is None:
        return None
    return TokenTimes(exp, iat)


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def refresh_in(token: str, wall_now: float) -> float | None:
    """Seconds from ``wall_now`` (Unix time) until the token should be refreshed; None: never.

    The margin is :data:`REFRESH_SHARE` of the lifetime (``exp - iat``, or ``exp - now``
    without ``iat``) capped at :data:`REFRESH_MARGIN_CAP`; an already expired token is
    due at once (0).
    """
    times = read_times(token)
    if times is None:
        return None
    start = times.iat if times.iat is not None and times.iat <= wall_now else wall_now
    lifetime = max(0.0, times.exp - start)
    margin = min(REFRESH_SHARE * lifetime, REFRESH_MARGIN_CAP)
    return max(0.0, times.exp - margin - wall_now)


class Refresh:
    """When to refresh the token of the live socket, and whether a refresh awaits its answer.

    Monotonic times throughout. ``planned`` is set from each token sent (first ``auth``
    or refresh) and takes effect when the gateway accepts it (``auth_success``).
    """

    __slots__ = ("answer_timeout", "awaiting", "due", "planned", "refreshable")

    def __init__(self, refreshable: bool, answer_timeout: float) -> None:
        self.refreshable = refreshable
        self.answer_timeout = answer_timeout
        #: When to fetch a fresh token (None: never).
        self.due: float | None = None
        #: Deadline of the refresh in flight (None: none in flight).
        self.awaiting: float | None = None
        self.planned: float | None = None

    def sent(self, token: str, now: float, wall: float, *, refresh: bool) -> None:
        delay = refresh_in(token, wall) if self.refreshable else None
        self.planned = None if delay is None else now + delay
        if refresh:
            self.awaiting = now + self.answer_timeout

    def accepted(self) -> None:
        self.due, self.awaiting = self.planned, None

    def forget(self) -> None:
        self.due = self.awaiting = None

    @property
    def deadline(self) -> float | None:
        return self.due if self.awaiting is None else self.awaiting
