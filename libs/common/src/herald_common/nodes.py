"""What every Herald process tells operators about itself over NATS, and the operators' questions.

Node heartbeats (every process: gateways, api processes, bridges, standbys included):

- ``herald.node.beat.<service>.<id>``: every ``HERALD_NODE_HEARTBEAT`` seconds, a
  :class:`Beat` (uptime, version, NATS state, and a gateway's live figures). The api keeps
  the last beat of each process and forgets one silent for ``HERALD_NODE_TIMEOUT`` seconds.
- ``herald.node.bye.<service>.<id>``: a process stopping cleanly; it is forgotten at once.
- ``herald.node.hello``: a starting api asks every process to beat now, so its table is
  whole within a round trip instead of one heartbeat.

Operator requests to the gateways (no queue group: every gateway answers to the reply
subject, the asker gathers until each gateway it knows of answered or its time is up):

- ``herald.rpc.topics``: the patterns held by local sockets (:class:`TopicsQuery` →
  :class:`TopicsAnswer`).
- ``herald.rpc.connections``: one user's sockets (:class:`UserQuery` → :class:`ConnectionsAnswer`).
- ``herald.rpc.disconnect``: close one user's sockets with 4003 (:class:`UserQuery` →
  :class:`DisconnectAnswer`).
"""

from __future__ import annotations

from typing import Literal

import msgspec

BEAT_PREFIX = "herald.node.beat."
BYE_PREFIX = "herald.node.bye."
HELLO_SUBJECT = "herald.node.hello"
TOPICS_SUBJECT = "herald.rpc.topics"
CONNECTIONS_SUBJECT = "herald.rpc.connections"
DISCONNECT_SUBJECT = "herald.rpc.disconnect"

Service = Literal["gateway", "api", "bridge"]

#: Patterns one gateway lists in a topics answer at most (the answer says when it left some out).
TOPICS_ANSWER_MAX = 5000


class GatewayFigures(msgspec.Struct, frozen=True, rename="camel"):
    connections: int
    subscriptions: int
    nats_subscriptions: int
    #: message frames queued to sockets since the process started
    deliveries: int


class Beat(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    id: str
    service: Service
    version: str
    host: str
    pid: int
    #: Unix seconds when the process started
    started: float
    #: Unix seconds when this beat was sent
    sent: float
    #: the NATS server this process is connected to
    nats_server: str
    nats_reconnects: int
    gateway: GatewayFigures | None = None
    #: ``active`` or ``standby``, for bridges
    role: str | None = None
    #: whether the database answered, for api processes
    storage: bool | None = None


class Bye(msgspec.Struct, frozen=True):
    id: str


class TopicsQuery(msgspec.Struct, frozen=True):
    #: only patterns containing this text (case-insensitive); empty: all
    search: str = ""


class HeldPattern(msgspec.Struct, frozen=True, array_like=True):
    pattern: str
    subscribers: int


class TopicsAnswer(msgspec.Struct, frozen=True):
    gateway: str
    patterns: list[HeldPattern]
    truncated: bool = False


class UserQuery(msgspec.Struct, frozen=True, rename="camel"):
    user_id: str


class SocketInfo(msgspec.Struct, frozen=True, rename="camel"):
    id: str
    client_ip: str
    #: Unix seconds when the socket authenticated
    connected: float
    subscriptions: list[str]


class ConnectionsAnswer(msgspec.Struct, frozen=True):
    gateway: str
    sockets: list[SocketInfo]


class DisconnectAnswer(msgspec.Struct, frozen=True):
    gateway: str
    closed: int


def beat_subject(service: str, node_id: str) -> str:
    return f"{BEAT_PREFIX}{service}.{node_id}"


def bye_subject(service: str, node_id: str) -> str:
    return f"{BYE_PREFIX}{service}.{node_id}"


encoder = msgspec.json.Encoder()
beat_decoder = msgspec.json.Decoder(Beat)
bye_decoder = msgspec.json.Decoder(Bye)
topics_query_decoder = msgspec.json.Decoder(TopicsQuery)
topics_answer_decoder = msgspec.json.Decoder(TopicsAnswer)
user_query_decoder = msgspec.json.Decoder(UserQuery)
connections_answer_decoder = msgspec.json.Decoder(ConnectionsAnswer)
disconnect_answer_decoder = msgspec.json.Decoder(DisconnectAnswer)
