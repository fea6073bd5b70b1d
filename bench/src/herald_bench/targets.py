"""What the clients connect to, what they subscribe to, and how messages are published to them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js import JetStreamContext

from herald_bench import publishers
from herald_bench.publishers import Published

HERALD_TOPIC = "bench.x"
NATIVE_SUBJECT = "bench.native"
GATEWAY_PATH = "/ws"

HERALD_PATH = (
    "JetStream publish to topics.bench.x (waits for the ack) → HERALD_TOPICS stores it (file storage) "
    "→ the stream republishes to live.bench.x → the gateway's one core subscription → one `message` "
    "frame encoded → queued to every subscribed socket → websockets sends it"
)
NATIVE_PATH = (
    "core publish to bench.native (no stream, nothing stored) → nats-server writes `MSG` to every "
    "subscribed WebSocket client"
)
REST_PATH = (
    "POST /api/messages → api stores message + outbox event (SQLite) → outbox relay publishes "
    "events.message.sent (JetStream) → bridge maps it to topics.* (JetStream) → republish to live.* "
    "→ gateway → socket"
)


Publish = Callable[[float, float], Awaitable[Published]]


@dataclass
class Target:
    name: str
    #: "herald" (Herald's JSON protocol) or "nats" (NATS text protocol over WebSocket)
    kind: str
    endpoints: list[tuple[str, int, str]]
    #: what each client subscribes to (a Herald topic pattern or a NATS subject)
    topic: str
    #: publish(rate per second, seconds)
    publish: Publish
    #: processes whose CPU use the report shows, by name
    servers: dict[str, int]
    path: str


def herald(name: str, ports: list[int], js: JetStreamContext, payload: int, servers: dict[str, int]) -> Target:
    def publish(rate: float, seconds: float) -> Awaitable[Published]:
        return publishers.jetstream(js, "topics." + HERALD_TOPIC, rate, seconds, payload)

    endpoints = [("127.0.0.1", port, GATEWAY_PATH) for port in ports]
    return Target(name, "herald", endpoints, HERALD_TOPIC, publish, servers, HERALD_PATH)


def native(ws_port: int, nc: Client, payload: int, servers: dict[str, int]) -> Target:
    def publish(rate: float, seconds: float) -> Awaitable[Published]:
        return publishers.core(nc, NATIVE_SUBJECT, rate, seconds, payload)

    return Target("nats-native", "nats", [("127.0.0.1", ws_port, "/")], NATIVE_SUBJECT, publish, servers, NATIVE_PATH)
