"""Wire shapes of the operator endpoints (camelCase JSON)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType


class GatewayNumbers(msgspec.Struct, kw_only=True, rename="camel"):
    connections: Annotated[int, Meta(ge=0, description="Open WebSocket connections.")]
    subscriptions: Annotated[int, Meta(ge=0, description="Subscriptions held, summed over connections.")]
    nats_subscriptions: Annotated[int, Meta(ge=0, description="Distinct patterns subscribed to on NATS.")]
    deliveries: Annotated[int, Meta(ge=0, description="Message frames queued to clients since the process started.")]
    deliveries_per_second: Annotated[
        float | None, Meta(description="Over the last two heartbeats; null until two arrived.")
    ]


class Node(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """One live process."""

    id: Annotated[str, Meta(description="The process's id (a gateway's is also its presence id).")]
    service: Literal["gateway", "api", "bridge"]
    version: str
    host: str
    pid: int
    started_at: Annotated[float, Meta(description="Unix seconds when the process started.")]
    uptime: Annotated[float, Meta(description="Seconds since the process started.")]
    last_seen: Annotated[float, Meta(description="Seconds since its last heartbeat reached this api.")]
    nats: Annotated[str, Meta(description="`connected` (a process is heard of only while it is).")]
    nats_server: Annotated[str, Meta(description="host:port of the NATS server it is connected to.")]
    nats_reconnects: int
    gateway: GatewayNumbers | UnsetType = UNSET
    role: (
        Annotated[Literal["active", "standby"], Meta(description="Bridges: the active one or a standby.")] | UnsetType
    ) = UNSET
    storage: Annotated[bool, Meta(description="Api processes: whether the database answered.")] | UnsetType = UNSET


class NodeList(msgspec.Struct, kw_only=True, rename="camel"):
    nodes: list[Node]
    this: Annotated[str, Meta(description="The id of the api process that answered.")]


class ActiveTopic(msgspec.Struct, kw_only=True, rename="camel"):
    topic: Annotated[str, Meta(description="A topic or a pattern (`*`, `**`) held by some socket.")]
    pattern: Annotated[bool, Meta(description="Whether it has wildcards.")]
    subscribers: Annotated[int, Meta(ge=0, description="Sockets holding it, summed over gateways.")]
    gateways: Annotated[int, Meta(ge=1, description="Gateways with at least one such socket.")]
    last_offset: Annotated[
        int | None, Meta(description="Offset of the last stored message of a topic; null for patterns or none stored.")
    ]


class TopicList(msgspec.Struct, kw_only=True, rename="camel"):
    items: list[ActiveTopic]
    total: Annotated[int, Meta(ge=0, description="Matching topics and patterns, on every page.")]
    next_after: Annotated[str | None, Meta(description="Pass as `after` for the next page; null on the last.")]
    missing_gateways: Annotated[list[str], Meta(description="Known gateways that did not answer in time.")]
    truncated: Annotated[bool, Meta(description="Some gateway held more matches than it lists; narrow `search`.")]


class Connection(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    gateway: Annotated[str, Meta(description="The id of the gateway holding the socket.")]
    client_ip: str
    connected_at: Annotated[float, Meta(description="Unix seconds when the gateway accepted the socket.")]
    subscriptions: list[str]


class UserConnections(msgspec.Struct, kw_only=True, rename="camel"):
    user_id: str
    connections: list[Connection]
    missing_gateways: list[str]


class Disconnected(msgspec.Struct, kw_only=True, rename="camel"):
    user_id: str
    closed: Annotated[int, Meta(ge=0, description="Sockets closed with 4003, summed over the gateways.")]
    gateways: Annotated[int, Meta(ge=0, description="Gateways that answered.")]
    missing_gateways: list[str]
