"""What the sans-I/O core asks its I/O shell to do (plain values, in order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from herald_client.messages import Gap, Message, PresenceEvent


@dataclass(frozen=True, slots=True)
class Send:
    """Write this text frame on the socket."""

    text: str


@dataclass(frozen=True, slots=True)
class Abort:
    """Close the socket now (it is dead or unusable); :meth:`Core.on_closed` follows."""

    reason: str


@dataclass(frozen=True, slots=True)
class CloseSocket:
    """Close the socket with 1000: the application closed the client."""


@dataclass(frozen=True, slots=True)
class FetchToken:
    """Call the token callback and hand the result to :meth:`Core.on_fresh_token`."""


@dataclass(frozen=True, slots=True)
class ReconnectIn:
    """Open a new socket after ``delay`` seconds (fetching a fresh token first if callable)."""

    delay: float


@dataclass(frozen=True, slots=True)
class Stopped:
    """The client is closed for good; ``error`` says why (None: the application closed it)."""

    error: Exception | None


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand ``message`` to the subscription on ``pattern``."""

    pattern: str
    message: Message


@dataclass(frozen=True, slots=True)
class Presence:
    pattern: str
    event: PresenceEvent


@dataclass(frozen=True, slots=True)
class GapFound:
    gap: Gap


@dataclass(frozen=True, slots=True)
class Ended:
    """The subscription on ``pattern`` is over (``error``: why, None when the app ended it)."""

    pattern: str
    error: Exception | None


@dataclass(frozen=True, slots=True)
class Resolve:
    """Request ``request_id`` succeeded with ``value``."""

    request_id: int
    value: Any


@dataclass(frozen=True, slots=True)
class Reject:
    request_id: int
    error: Exception


@dataclass(frozen=True, slots=True)
class Notice:
    """An ``error`` frame that answered no request (e.g. ``rate_limited``), for the app's log."""

    code: str
    message: str


Output = (
    Send
    | Abort
    | CloseSocket
    | FetchToken
    | ReconnectIn
    | Stopped
    | Deliver
    | Presence
    | GapFound
    | Ended
    | Resolve
    | Reject
    | Notice
)
