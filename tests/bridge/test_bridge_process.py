"""The bridge as a process: its HTTP listener, the metrics that move, the spans it exports."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from herald_common.config import load_settings
from herald_common.events import MESSAGE_SENT, encode_event, new_event
from herald_common.streams import TOPICS_STREAM, ensure_streams
from tests.support.natsclients import connect_nats
from tests.support.otlp import OtlpReceiver, otlp_receiver, tracing_env
from tests.support.procs import NatsServer, Service, free_port, wait_http_ok

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


class Bridge:
    def __init__(self, service: Service, port: int) -> None:
        self.service = service
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str) -> float:
        text = self.get("/metrics")[1]
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        assert found, f"{name} not in /metrics"
        return float(found.group(1))

    def wait_metric(self, name: str, ok: Callable[[float], bool], timeout: float = 15.0) -> float:
        deadline = time.monotonic() + timeout
        while True:
            value = self.metric(name)
            if ok(value) or time.monotonic() > deadline:
                assert ok(value), f"{name} = {value}\n{self.service.logs()[-3000:]}"
                return value
            time.sleep(0.1)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as r:
        yield r


@pytest.fixture
def bridge(nats_server: NatsServer, tmp_path: Path, receiver: OtlpReceiver) -> Iterator[Bridge]:
    port = free_port()
    env = {
        "HERALD_NATS_URL": nats_server.url,
        "HERALD_DATA_DIR": str(tmp_path),
        "HERALD_BRIDGE_METRICS_PORT": str(port),
        "OTEL_SERVICE_NAME": "bridge-under-test",
        **tracing_env(receiver),
    }
    service = Service("bridge", env, tmp_path / "bridge.log")
    service.start()
    wait_http_ok(f"http://127.0.0.1:{port}/readyz", proc=service.proc)
    try:
        yield Bridge(service, port)
    finally:
        assert service.stop() == 0, service.logs()


async def _publish(url: str, count: int, *, traceparent: str | None = None) -> None:
    nc = await connect_nats(url)
    js = nc.jetstream()  # the bridge created the streams before it was ready
    for i in range(count):
        ev = new_event(MESSAGE_SENT, {"id": f"m{i}", "senderId": "s", "recipientId": "r"})
        headers = {"Nats-Msg-Id": ev.id}
        if traceparent:
            headers["traceparent"] = traceparent
        await js.publish(ev.subject, encode_event(ev), headers=headers)
    await nc.close()


async def _delete_topics_stream(url: str) -> None:
    nc = await connect_nats(url)
    await nc.jetstream().delete_stream(TOPICS_STREAM)
    await nc.close()


async def _recreate_streams(url: str) -> None:
    nc = await connect_nats(url)
    await ensure_streams(nc.jetstream(), load_settings({}))
    await nc.close()


def test_health_endpoints(bridge: Bridge) -> None:
    assert bridge.get("/healthz") == (200, "ok\n")
    assert bridge.get("/readyz") == (200, "ready\n")
    assert bridge.metric("herald_bridge_nats_connected") == 1
    bridge.wait_metric("herald_bridge_active", lambda v: v == 1)


def test_readyz_fails_without_nats(bridge: Bridge, nats_server: NatsServer) -> None:
    nats_server.stop()
    deadline = time.monotonic() + 10
    while bridge.get("/readyz")[0] == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bridge.get("/readyz") == (503, "nats not connected\n")
    assert bridge.metric("herald_bridge_nats_connected") == 0
    assert bridge.get("/healthz")[0] == 200


def test_counters_and_lag_move(bridge: Bridge, nats_server: NatsServer) -> None:
    asyncio.run(_publish(nats_server.url, 5))
    bridge.wait_metric("herald_bridge_events_total", lambda v: v == 5)
    assert bridge.metric("herald_bridge_publications_total") == 15  # messages, sender's, recipient's
    bridge.wait_metric("herald_bridge_lag_events", lambda v: v == 0)
    # Without the topics stream every publish fails: the bridge stalls and falls behind.
    asyncio.run(_delete_topics_stream(nats_server.url))
    asyncio.run(_publish(nats_server.url, 3))
    bridge.wait_metric("herald_bridge_publish_failures_total", lambda v: v >= 1)
    bridge.wait_metric("herald_bridge_lag_events", lambda v: v == 3)
    bridge.wait_metric("herald_bridge_lag_seconds", lambda v: v >= 0.5)
    asyncio.run(_recreate_streams(nats_server.url))
    bridge.wait_metric("herald_bridge_events_total", lambda v: v == 8)
    bridge.wait_metric("herald_bridge_lag_events", lambda v: v == 0)
    bridge.wait_metric("herald_bridge_lag_seconds", lambda v: v == 0)


def test_spans_continue_the_event_trace(bridge: Bridge, nats_server: NatsServer, receiver: OtlpReceiver) -> None:
    asyncio.run(_publish(nats_server.url, 1, traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
    spans = receiver.wait_for(lambda s: len(s) >= 4)
    assert {s.trace_id for s in spans} == {CLIENT_TRACE}
    assert {s.service for s in spans} == {"bridge-under-test"}
    (process,) = [s for s in spans if s.name == "process events.message.sent"]
    assert process.parent_span_id == CLIENT_SPAN
    publishes = [s for s in spans if s.name.startswith("publish ")]
    assert sorted(s.name for s in publishes) == [
        "publish topics.messages",
        "publish topics.messages.user.r",
        "publish topics.messages.user.s",
    ]
    assert {s.parent_span_id for s in publishes} == {process.span_id}
