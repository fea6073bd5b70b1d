"""What the client hands to the application: messages, gaps, presence events, publish results."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    """One message on ``topic``. ``offset`` increases per topic (not consecutively);
    ``epoch`` names the history it belongs to. ``event`` is set on the api's events
    (``message.sent``, ...), ``publisher`` on messages published from a socket."""

    topic: str
    data: Any
    offset: int
    epoch: str
    event: str | None = None
    publisher: str | None = None


class GapReason(enum.Enum):
    #: The gateway answered ``recovered: false``: the history window or the epoch was passed.
    NOT_RECOVERED = "not_recovered"
    #: A message arrived with another epoch than the one before: that history was lost.
    EPOCH_CHANGED = "epoch_changed"


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages may be missing on ``pattern`` after ``offset`` of ``epoch`` (the position
    resumed from): reload them from REST history."""

    pattern: str
    reason: GapReason
    offset: int | None
    epoch: str | None


class PresenceKind(enum.Enum):
    JOIN = "join"
    LEAVE = "leave"


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """A user's first socket subscribed to ``topic`` (join) or its last one left (leave)."""

    kind: PresenceKind
    topic: str
    user_id: str


@dataclass(frozen=True, slots=True)
class PresenceSnapshot:
    """Who is subscribed to ``topic`` now: ``count`` users; ``users`` (their ids) is None
    when the gateway leaves the list out (above its cap, only the count is given)."""

    topic: str
    count: int
    users: list[str] | None


@dataclass(frozen=True, slots=True)
class PublishResult:
    """A publish was stored: ``offset`` is the one its message frame carries."""

    topic: str
    offset: int
