"""Presence on NATS: the subjects, the messages gateways exchange, the api's query, the events.

Each gateway owns the presence of its own sockets and tells the others:

- ``herald.presence.sync.<gateway>``: a batch of changes, numbered from 1 per gateway
  process (:class:`Sync`); an entry with ``connections: 0`` means the user is gone from
  that topic on that gateway (announced only after the grace period).
- ``herald.presence.beat.<gateway>``: every ``HERALD_PRESENCE_HEARTBEAT`` seconds, the
  number of the last batch sent (:class:`Beat`); a receiver that missed a batch, or never
  heard of the gateway, asks for a snapshot.
- ``herald.presence.snapshot.<gateway>``: request/reply; the answer is the gateway's whole
  state in chunks (:class:`Snapshot`, the last one with ``last: true``).
- ``herald.presence.hello``: a starting gateway asks every other one to beat now.
- ``herald.presence.bye.<gateway>``: a gateway stopping cleanly; the others drop its users
  after the grace period (in time to see them reconnect elsewhere).
- ``herald.rpc.presence``: the api's query for one topic (queue group ``herald-gateway``:
  any gateway answers from its copy of the whole state).

For backends, every join and leave is stored on the ``HERALD_PRESENCE`` stream as
``presence.join.<topic>`` / ``presence.leave.<topic>`` (:class:`PresenceEvent`).
"""

from __future__ import annotations

from typing import Literal

import msgspec

PREFIX = "herald.presence."
SYNC_PREFIX = "herald.presence.sync."
BEAT_PREFIX = "herald.presence.beat."
SNAPSHOT_PREFIX = "herald.presence.snapshot."
BYE_PREFIX = "herald.presence.bye."
HELLO_SUBJECT = "herald.presence.hello"
QUERY_SUBJECT = "herald.rpc.presence"
GATEWAY_QUEUE = "herald-gateway"

PRESENCE_STREAM = "HERALD_PRESENCE"
EVENT_PREFIX = "presence."


class Entry(msgspec.Struct, frozen=True, array_like=True):
    """``user`` holds ``connections`` sockets subscribed to ``topic`` on one gateway (0: gone)."""

    topic: str
    user: str
    connections: int


class Sync(msgspec.Struct, frozen=True):
    gateway: str
    seq: int
    entries: list[Entry]


class Beat(msgspec.Struct, frozen=True):
    gateway: str
    #: the number of the last :class:`Sync` this gateway sent (0: none yet)
    seq: int


class Snapshot(msgspec.Struct, frozen=True):
    """One chunk of a gateway's state as of batch ``seq``."""

    gateway: str
    seq: int
    entries: list[Entry]
    last: bool


class Bye(msgspec.Struct, frozen=True):
    gateway: str


class TopicQuery(msgspec.Struct, frozen=True):
    topic: str


class UserPresence(msgspec.Struct, frozen=True, rename="camel"):
    user_id: str
    connections: int


class TopicPresence(msgspec.Struct, frozen=True, omit_defaults=True):
    """Who is on ``topic``; ``users`` is None above ``HERALD_PRESENCE_MAX_USERS``."""

    topic: str
    count: int
    users: list[UserPresence] | None = None


class PresenceEvent(msgspec.Struct, frozen=True, rename="camel"):
    """A join or leave as stored on the ``HERALD_PRESENCE`` stream.

    ``at`` is Unix milliseconds when the gateway decided it; ``gateway`` is the gateway
    that did (for a crashed gateway's users: the one that noticed).
    """

    type: Literal["join", "leave"]
    topic: str
    user_id: str
    at: int
    gateway: str


def event_subject(kind: Literal["join", "leave"], topic: str) -> str:
    """``presence.join.<topic>`` or ``presence.leave.<topic>``."""
    return f"{EVENT_PREFIX}{kind}.{topic}"


encoder = msgspec.json.Encoder()
sync_decoder = msgspec.json.Decoder(Sync)
beat_decoder = msgspec.json.Decoder(Beat)
snapshot_decoder = msgspec.json.Decoder(Snapshot)
bye_decoder = msgspec.json.Decoder(Bye)
query_decoder = msgspec.json.Decoder(TopicQuery)
answer_decoder = msgspec.json.Decoder(TopicPresence)
event_decoder = msgspec.json.Decoder(PresenceEvent)
