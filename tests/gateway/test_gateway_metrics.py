"""The gateway's /metrics as a process: each metric moves when it should."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from herald_common.config import load_settings
from herald_common.streams import ensure_streams
from herald_common.tokens import issue_token
from tests.support.natsclients import connect_nats
from tests.support.procs import NatsServer, Service, gateway_process

pytestmark = pytest.mark.integration

SECRET = "gateway-metrics-test-secret-32-bytes"


class Gateway:
    def __init__(self, service: Service, ws_url: str, http_url: str) -> None:
        self.service = service
        self.ws_url = ws_url
        self.http_url = http_url

    def metric(self, name: str, labels: str = "") -> float:
        with urllib.request.urlopen(self.http_url + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        full = name + ("{" + labels + "}" if labels else "")
        found = re.search(rf"^{re.escape(full)} (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    def wait(self, name: str, ok: Callable[[float], bool], labels: str = "", timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        value = self.metric(name, labels)
        while not ok(value) and time.monotonic() < deadline:
            time.sleep(0.05)
            value = self.metric(name, labels)
        assert ok(value), f"{name}{{{labels}}} = {value}"
        return value


@pytest.fixture
def gateway(nats_server: NatsServer, tmp_path: Path) -> Iterator[Gateway]:
    with gateway_process(nats_server.url, tmp_path, SECRET) as gw:
        yield Gateway(gw.service, gw.ws_url, gw.http_url)


@pytest.fixture
async def publish(nats_server: NatsServer, gateway: Gateway) -> AsyncIterator[Callable[[str], Any]]:
    nc = await connect_nats(nats_server.url)
    js = nc.jetstream()
    await ensure_streams(js, load_settings({}))

    async def send(topic: str) -> None:
        await js.publish("topics." + topic, json.dumps({"data": 1}).encode())

    yield send
    await nc.close()


async def recv(ws: ClientConnection) -> dict[str, Any]:
    frame = json.loads(await ws.recv(decode=True))
    assert isinstance(frame, dict)
    return frame


async def authed(url: str, sub: str, **claims: Any) -> ClientConnection:
    ws = await connect(url, open_timeout=10)
    await ws.send(json.dumps({"type": "auth", "token": issue_token(SECRET, sub, **claims)}))
    assert (await recv(ws))["type"] == "auth_success"
    return ws


async def test_connections_subscriptions_and_deliveries(gateway: Gateway, publish: Any) -> None:
    assert gateway.metric("herald_gateway_nats_connected") == 1
    assert gateway.metric("herald_gateway_connections") == 0
    a = await authed(gateway.ws_url, "a", topics=["m.**"])
    b = await authed(gateway.ws_url, "b", topics=["m.**"])
    assert gateway.metric("herald_gateway_connections") == 2
    for ws in (a, b):
        await ws.send(json.dumps({"type": "subscribe", "topic": "m.x"}))
        assert (await recv(ws))["type"] == "subscribed"
    assert gateway.metric("herald_gateway_subscriptions") == 2
    assert gateway.metric("herald_gateway_nats_subscriptions") == 1
    before = gateway.metric("herald_gateway_deliveries_total")
    await publish("m.x")
    for ws in (a, b):
        assert (await recv(ws))["type"] == "message"
    assert gateway.metric("herald_gateway_deliveries_total") == before + 2
    # one observation per message, not per recipient
    assert gateway.metric("herald_gateway_delivery_latency_seconds_count") == 1
    assert gateway.metric("herald_gateway_delivery_latency_seconds_bucket", 'le="+Inf"') == 1
    assert gateway.metric("herald_gateway_delivery_latency_seconds_sum") < 5
    await a.close()
    await b.close()
    gateway.wait("herald_gateway_connections", lambda v: v == 0)
    assert gateway.metric("herald_gateway_nats_subscriptions") == 0
    assert gateway.metric("herald_gateway_disconnects_total", 'code="1000"') == 2


async def test_auth_failures_and_refused_frames(gateway: Gateway) -> None:
    ws = await connect(gateway.ws_url, open_timeout=10)
    await ws.send(json.dumps({"type": "auth", "token": "not-a-token"}))
    assert (await recv(ws))["code"] == "unauthorized"
    gateway.wait("herald_gateway_auth_failures_total", lambda v: v == 1)
    gateway.wait("herald_gateway_disconnects_total", lambda v: v == 1, 'code="4001"')
    assert gateway.metric("herald_gateway_refused_frames_total", 'reason="unauthorized"') == 1

    ok = await authed(gateway.ws_url, "c")
    await ok.send(json.dumps({"type": "subscribe", "topic": "messages.user.someone-else"}))
    assert (await recv(ok))["code"] == "forbidden"
    await ok.send(json.dumps({"type": "subscribe", "topic": "bad..topic"}))
    assert (await recv(ok))["code"] == "invalid_topic"
    assert gateway.metric("herald_gateway_refused_frames_total", 'reason="forbidden"') == 1
    assert gateway.metric("herald_gateway_refused_frames_total", 'reason="invalid_topic"') == 1
    assert gateway.metric("herald_gateway_auth_failures_total") == 1
    await ok.close()


def test_nats_connection_state(gateway: Gateway, nats_server: NatsServer) -> None:
    assert gateway.metric("herald_gateway_nats_connected") == 1
    nats_server.stop()
    gateway.wait("herald_gateway_nats_connected", lambda v: v == 0)
