"""What the connection core asks its I/O shell to do.

The core (:mod:`herald_gateway.session`) never touches a socket or NATS; each input
returns a list of these actions, which the shell performs in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from msgspec import UNSET

from herald_common import wire
from herald_common.errors import CloseCode


@dataclass(frozen=True, slots=True)
class Send:
    """Send one already-encoded JSON text frame to this client."""

    frame: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close the WebSocket with ``code``; the session is already closed."""

    code: CloseCode
    reason: str


@dataclass(frozen=True, slots=True)
class AddInterest:
    """This connection now holds ``pattern``: deliver its live messages here.

    ``presence``: it wants join/leave frames of that (exact) topic.
    """

    pattern: str
    presence: bool = False


@dataclass(frozen=True, slots=True)
class RemoveInterest:
    """This connection no longer holds ``pattern``."""

    pattern: str


@dataclass(frozen=True, slots=True)
class AskMembership:
    """Ask the api whether ``user_id`` belongs to ``channel_id``.

    The answer goes back through ``Session.on_membership(request_id, reply)``.
    """

    request_id: int
    channel_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class PublishTo:
    """Publish ``data`` (raw JSON) to ``topic`` on behalf of this client, user ``publisher``.

    ``frame_id`` is the client's frame ``id`` (``UNSET`` if none), echoed in the
    ``published`` reply once the message is stored (``Session.on_published``) or in an
    error frame when publishing fails (``Session.on_publish_failed``).
    """

    topic: str
    data: bytes
    publisher: str
    frame_id: Any = UNSET


@dataclass(frozen=True, slots=True)
class BeginRecovery:
    """Park the live messages of ``pattern`` on this connection until :class:`Replay` ends.

    Comes before the :class:`AddInterest` of the same pattern, so no live message can
    slip out before the replayed ones.
    """

    pattern: str


@dataclass(frozen=True, slots=True)
class Replay:
    """Replay what came after ``since`` on ``pattern``, then deliver the parked live messages.

    The shell first sends ``recovered_frame`` (``subscribed`` with ``recovered: true``)
    when every missed message is still stored and the epoch matches, else
    ``lost_frame`` (``recovered: false``, and no replay).
    """

    pattern: str
    since: wire.Since
    recovered_frame: bytes
    lost_frame: bytes


@dataclass(frozen=True, slots=True)
class Watch:
    """A repeated ``subscribe`` of the exact ``topic`` already held: join/leave frames wanted or not."""

    topic: str
    presence: bool


@dataclass(frozen=True, slots=True)
class AskPresence:
    """Answer a ``presence`` query for ``topic`` (authorized already), echoing ``frame_id``."""

    topic: str
    frame_id: Any = UNSET


Action = (
    Send
    | Close
    | AddInterest
    | RemoveInterest
    | AskMembership
    | PublishTo
    | BeginRecovery
    | Replay
    | AskPresence
    | Watch
)
