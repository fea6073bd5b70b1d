"""The gateway as a real process against a real nats-server, driven by a WebSocket client."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from herald_common.config import load_settings
from herald_common.streams import TOPICS_STREAM, ensure_streams, epoch_of
from herald_common.tokens import issue_token
from tests.support.natsclients import connect_nats
from tests.support.procs import NatsServer, Service, gateway_process, wait_http_ok

pytestmark = pytest.mark.integration

SECRET = "gateway-process-test-secret-32-bytes!"
RECV_TIMEOUT = 10.0


@dataclass
class Running:
    service: Service
    ws_url: str
    http_url: str
    nats_url: str


@pytest.fixture
def gateway_env() -> dict[str, str]:
    """Extra ``HERALD_*`` settings for the gateway; tests override it with ``parametrize``."""
    return {}


@pytest.fixture
def gateway(nats_server: NatsServer, tmp_path: Path, gateway_env: dict[str, str]) -> Iterator[Running]:
    with gateway_process(nats_server.url, tmp_path, SECRET, HERALD_AUTH_TIMEOUT="3", **gateway_env) as gw:
        yield Running(gw.service, gw.ws_url, gw.http_url, nats_server.url)


def token(sub: str = "alice", **kwargs: Any) -> str:
    return issue_token(SECRET, sub, **kwargs)


async def recv(ws: ClientConnection) -> dict[str, Any]:
    frame = json.loads(await ws.recv(decode=True))
    assert isinstance(frame, dict)
    return frame


async def authed(url: str, sub: str = "alice", **kwargs: Any) -> ClientConnection:
    ws = await connect(url, open_timeout=RECV_TIMEOUT)
    await ws.send(json.dumps({"type": "auth", "token": token(sub, **kwargs)}))
    assert await recv(ws) == {"type": "auth_success", "userId": sub}
    return ws


@pytest.fixture
async def js_publish(gateway: Running, gateway_env: dict[str, str]) -> AsyncIterator[Any]:
    nc = await connect_nats(gateway.nats_url)
    js = nc.jetstream()
    # The same stream settings as the gateway's, or this would undo them.
    await ensure_streams(js, load_settings(gateway_env))

    async def publish(topic: str, body: dict[str, Any]) -> int:
        ack = await js.publish("topics." + topic, json.dumps(body).encode())
        return int(ack.seq)

    yield publish
    await nc.close()


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_subscribed_client_receives_each_message_once(gateway: Running, js_publish: Any) -> None:
    ws = await authed(gateway.ws_url, topics=["x.**"])
    await ws.send(json.dumps({"type": "subscribe", "topic": "x.y", "id": 1}))
    assert await recv(ws) == {"type": "subscribed", "topic": "x.y", "id": 1}
    await ws.send(json.dumps({"type": "subscribe", "topic": "x.*", "id": 2}))
    assert await recv(ws) == {"type": "subscribed", "topic": "x.*", "id": 2}

    first = await js_publish("x.y", {"data": {"hello": "world"}, "event": "greeting"})
    second = await js_publish("x.y", {"data": [1, 2, 3]})
    one = await recv(ws)
    two = await recv(ws)
    assert one == {
        "type": "message",
        "topic": "x.y",
        "data": {"hello": "world"},
        "offset": first,
        "epoch": one["epoch"],
        "event": "greeting",
    }
    assert isinstance(one["epoch"], str) and one["epoch"]
    # The overlapping subscription must not deliver the first message a second time.
    assert two == {"type": "message", "topic": "x.y", "data": [1, 2, 3], "offset": second, "epoch": one["epoch"]}

    status, metrics = http_get(gateway.http_url + "/metrics")
    assert status == 200
    assert "herald_gateway_nats_subscriptions 2.0" in metrics
    assert "herald_gateway_deliveries_total 2.0" in metrics
    await ws.close()


async def test_socket_publish_reaches_subscriber(gateway: Running) -> None:
    reader = await authed(gateway.ws_url, "bob", topics=["chat.*"])
    await reader.send(json.dumps({"type": "subscribe", "topic": "chat.*"}))
    assert (await recv(reader))["type"] == "subscribed"
    writer = await authed(gateway.ws_url, "alice", publish=["chat.*"])
    await writer.send(json.dumps({"type": "message", "topic": "chat.room", "data": {"text": "hi"}}))
    frame = await recv(reader)
    assert (frame["type"], frame["topic"], frame["data"]) == ("message", "chat.room", {"text": "hi"})
    assert (await recv(writer))["type"] == "published"
    await writer.send(json.dumps({"type": "message", "topic": "other.room", "data": 1, "id": "p"}))
    error = await recv(writer)
    assert (error["type"], error["code"], error["id"]) == ("error", "forbidden", "p")
    await reader.close()
    await writer.close()


async def test_frame_over_limit_closes_1009(gateway: Running) -> None:
    ws = await authed(gateway.ws_url)
    await ws.send("x" * (2 * 1024 * 1024))
    with pytest.raises(ConnectionClosed):
        await ws.recv()
    assert ws.close_code == 1009


async def test_auth_timeout_closes_4001(gateway: Running) -> None:
    ws = await connect(gateway.ws_url)
    error = await recv(ws)
    assert (error["type"], error["code"]) == ("error", "unauthorized")
    with pytest.raises(ConnectionClosed):
        await ws.recv()
    assert ws.close_code == 4001


async def test_bad_token_closes_4001(gateway: Running) -> None:
    ws = await connect(gateway.ws_url)
    await ws.send(json.dumps({"type": "auth", "token": issue_token("another-secret-of-32-bytes-or-more", "alice")}))
    assert (await recv(ws))["code"] == "unauthorized"
    with pytest.raises(ConnectionClosed):
        await ws.recv()
    assert ws.close_code == 4001


async def test_bad_frame_keeps_connection_open(gateway: Running) -> None:
    ws = await authed(gateway.ws_url)
    await ws.send('{"type": "subscribe", "id": 42}')
    error = await recv(ws)
    assert (error["code"], error["id"]) == ("bad_request", 42)
    await ws.send(b"\x00binary")
    assert (await recv(ws))["code"] == "bad_request"
    await ws.send(json.dumps({"type": "ping"}))
    assert await recv(ws) == {"type": "pong"}
    await ws.close()


async def test_other_paths_are_404(gateway: Running) -> None:
    with pytest.raises(InvalidStatus) as info:
        await connect(gateway.ws_url.replace("/ws", "/elsewhere"))
    assert info.value.response.status_code == 404


def test_health_endpoints(gateway: Running) -> None:
    assert http_get(gateway.http_url + "/healthz")[0] == 200
    assert http_get(gateway.http_url + "/readyz")[0] == 200
    assert http_get(gateway.http_url + "/nope")[0] == 404


async def test_sigterm_closes_clients_with_1001_and_exits_0(gateway: Running) -> None:
    ws = await authed(gateway.ws_url)
    gateway.service.signal(signal.SIGTERM)
    with pytest.raises(ConnectionClosed):
        await ws.recv()
    assert ws.close_code == 1001
    assert gateway.service.proc is not None
    assert gateway.service.proc.wait(10) == 0


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in metrics")


async def closed_with(ws: ClientConnection) -> int | None:
    """Read until the server closes the socket; its close code."""
    try:
        while True:
            await ws.recv()
    except ConnectionClosed:
        return ws.close_code


@pytest.mark.parametrize("gateway_env", [{"HERALD_MAX_CONNECTIONS_PER_IP": "3"}])
async def test_connections_per_ip_are_capped_and_released(gateway: Running) -> None:
    held = [await connect(gateway.ws_url) for _ in range(3)]
    extra = await connect(gateway.ws_url)
    assert await closed_with(extra) == 4008
    await held[0].close()
    # The slot comes back once the closed connection is gone.
    for _ in range(50):
        again = await connect(gateway.ws_url)
        await again.send(json.dumps({"type": "auth", "token": token()}))
        try:
            if (await recv(again))["type"] == "auth_success":
                break
        except ConnectionClosed:
            continue
    else:
        raise AssertionError("the released slot was never reusable")
    for ws in [*held[1:], again]:
        await ws.close()


@pytest.mark.parametrize("gateway_env", [{"HERALD_MAX_CONNECTIONS_PER_USER": "2"}])
async def test_connections_per_user_are_capped_at_auth(gateway: Running) -> None:
    first = await authed(gateway.ws_url, "alice")
    second = await authed(gateway.ws_url, "alice")
    third = await connect(gateway.ws_url)
    await third.send(json.dumps({"type": "auth", "token": token("alice")}))
    assert (await recv(third))["code"] == "rate_limited"
    assert await closed_with(third) == 4008
    bob = await authed(gateway.ws_url, "bob")
    await first.close()
    for _ in range(50):
        retry = await connect(gateway.ws_url)
        await retry.send(json.dumps({"type": "auth", "token": token("alice")}))
        if (await recv(retry))["type"] == "auth_success":
            break
    else:
        raise AssertionError("alice never got her slot back")
    for ws in (second, bob, retry):
        await ws.close()


@pytest.mark.parametrize("gateway_env", [{"HERALD_CONNECT_RATE_PER_IP": "0.01", "HERALD_CONNECT_BURST_PER_IP": "3"}])
async def test_connection_attempts_over_the_rate_get_429(gateway: Running) -> None:
    opened = [await connect(gateway.ws_url) for _ in range(3)]
    with pytest.raises(InvalidStatus) as info:
        await connect(gateway.ws_url)
    assert info.value.response.status_code == 429
    for ws in opened:
        await ws.close()


@pytest.mark.parametrize(
    "gateway_env",
    [{"HERALD_FRAMES_PER_SECOND": "0.01", "HERALD_FRAMES_BURST": "5", "HERALD_RATE_LIMITED_FRAMES_MAX": "3"}],
)
async def test_frames_over_the_rate_are_refused_then_closed_4008(gateway: Running) -> None:
    ws = await authed(gateway.ws_url)  # the auth frame is the first of the burst
    for _ in range(4):
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}
    for _ in range(3):
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv(ws))["code"] == "rate_limited"
    await ws.send(json.dumps({"type": "ping"}))
    assert (await recv(ws))["code"] == "rate_limited"
    assert await closed_with(ws) == 4008


async def test_no_task_leaks_after_many_connections(gateway: Running) -> None:
    before = metric(http_get(gateway.http_url + "/metrics")[1], "herald_gateway_tasks")
    for i in range(30):
        ws = await connect(gateway.ws_url)
        mode = i % 5
        if mode == 0:
            await ws.close()
            continue
        await ws.send(json.dumps({"type": "auth", "token": token(f"u{i}", topics=["f.**"])}))
        await recv(ws)
        if mode == 1:
            await ws.send("not json")
            await recv(ws)
        elif mode == 2:
            await ws.send(json.dumps({"type": "subscribe", "topic": f"f.{i}"}))
            await recv(ws)
        elif mode == 3:
            await ws.send(json.dumps({"type": "subscribe", "topic": "messages.channel.c1"}))
            await recv(ws)  # no api answers the membership question: an error after a timeout
        await ws.close()
    for _ in range(300):
        text = http_get(gateway.http_url + "/metrics")[1]
        if metric(text, "herald_gateway_connections") == 0 and metric(text, "herald_gateway_tasks") <= before:
            break
        await asyncio.sleep(0.05)
    assert metric(text, "herald_gateway_connections") == 0
    assert metric(text, "herald_gateway_tasks") == before
    assert metric(text, "herald_gateway_subscriptions") == 0


@pytest.mark.parametrize("gateway_env", [{"HERALD_MAX_PENDING_BYTES": "100000", "HERALD_MAX_REPLAY": "100000"}])
async def test_slow_consumer_over_the_byte_bound_is_closed_4009(gateway: Running, js_publish: Any) -> None:
    # max_queue=1: the client stops reading from its socket, so the gateway's queue grows.
    ws = await connect(gateway.ws_url, max_queue=1, max_size=None)
    await ws.send(json.dumps({"type": "auth", "token": token(topics=["big"])}))
    assert (await recv(ws))["type"] == "auth_success"
    await ws.send(json.dumps({"type": "subscribe", "topic": "big"}))
    assert (await recv(ws))["type"] == "subscribed"
    payload = "x" * 50_000
    for _ in range(40):
        for _ in range(10):
            await js_publish("big", {"data": payload})
        if metric(http_get(gateway.http_url + "/metrics")[1], "herald_gateway_slow_consumers_total") >= 1:
            break
    assert await closed_with(ws) == 4009
    text = http_get(gateway.http_url + "/metrics")[1]
    assert metric(text, "herald_gateway_slow_consumers_total") == 1
    assert 'herald_gateway_disconnects_total{code="4009"} 1.0' in text


async def current_epoch(nats_url: str) -> str:
    nc = await connect_nats(nats_url)
    try:
        return epoch_of(await nc.jetstream().stream_info(TOPICS_STREAM))
    finally:
        await nc.close()


async def offsets_until(ws: ClientConnection, last: int) -> list[tuple[int, str, Any]]:
    got: list[tuple[int, str, Any]] = []
    while not got or got[-1][0] < last:
        frame = await asyncio.wait_for(recv(ws), RECV_TIMEOUT)
        assert frame["type"] == "message"
        got.append((frame["offset"], frame["topic"], frame["data"]))
    return got


async def test_since_replays_the_gap_then_goes_live_without_gap_or_duplicate(gateway: Running, js_publish: Any) -> None:
    seqs = [await js_publish(f"r.{'ab'[i % 2]}", {"data": i}) for i in range(10)]
    epoch = await current_epoch(gateway.nats_url)
    ws = await authed(gateway.ws_url, topics=["r.*"])

    async def publish_more() -> list[int]:
        out = []
        for i in range(10, 40):
            out.append(await js_publish(f"r.{'ab'[i % 2]}", {"data": i}))
            await asyncio.sleep(0.002)
        return out

    more = asyncio.create_task(publish_more())
    await asyncio.sleep(0.01)
    since = {"offset": seqs[3], "epoch": epoch}
    await ws.send(json.dumps({"type": "subscribe", "topic": "r.*", "id": "s", "since": since}))
    assert await recv(ws) == {"type": "subscribed", "topic": "r.*", "id": "s", "recovered": True}
    later = await more
    got = await offsets_until(ws, later[-1])
    assert [o for o, _, _ in got] == seqs[4:] + later
    assert [d for _, _, d in got] == list(range(4, 40))
    assert [t for _, t, _ in got] == [f"r.{'ab'[i % 2]}" for i in range(4, 40)]
    await ws.send(json.dumps({"type": "ping"}))
    assert await recv(ws) == {"type": "pong"}  # nothing else was queued
    await ws.close()


async def test_since_with_another_epoch_is_not_recovered(gateway: Running, js_publish: Any) -> None:
    first = await js_publish("e.t", {"data": 1})
    ws = await authed(gateway.ws_url, topics=["e.t"])
    since = {"offset": first, "epoch": "not-this-epoch"}
    await ws.send(json.dumps({"type": "subscribe", "topic": "e.t", "since": since}))
    assert await recv(ws) == {"type": "subscribed", "topic": "e.t", "recovered": False}
    live = await js_publish("e.t", {"data": 2})
    frame = await recv(ws)
    assert (frame["offset"], frame["data"]) == (live, 2)
    await ws.close()


@pytest.mark.parametrize("gateway_env", [{"HERALD_HISTORY_SIZE": "3"}])
async def test_since_beyond_the_history_window_is_not_recovered(gateway: Running, js_publish: Any) -> None:
    seqs = [await js_publish("g.t", {"data": i}) for i in range(10)]
    epoch = await current_epoch(gateway.nats_url)
    ws = await authed(gateway.ws_url, topics=["g.*"])
    await ws.send(json.dumps({"type": "subscribe", "topic": "g.t", "since": {"offset": seqs[3], "epoch": epoch}}))
    assert await recv(ws) == {"type": "subscribed", "topic": "g.t", "recovered": False}
    # Within the window: the last three are still stored.
    await ws.send(json.dumps({"type": "subscribe", "topic": "g.*", "since": {"offset": seqs[7], "epoch": epoch}}))
    assert await recv(ws) == {"type": "subscribed", "topic": "g.*", "recovered": True}
    got = await offsets_until(ws, seqs[9])
    assert [o for o, _, _ in got] == seqs[8:]
    await ws.close()


async def _publish_steadily(url: str, count: int, interval: float, published: list[int], midway: asyncio.Event) -> None:
    """Publish 1..count to ``topics.r.one`` (odd) and ``topics.r.two`` (even), retrying while NATS is away.

    ``Nats-Msg-Id`` makes a retried publish that did get stored a duplicate JetStream drops.
    """
    nc = await connect_nats(url, max_reconnect_attempts=-1, reconnect_time_wait=0.1, connect_timeout=2)
    js = nc.jetstream()
    try:
        for i in range(1, count + 1):
            subject = "topics.r.one" if i % 2 else "topics.r.two"
            body = json.dumps({"data": i}).encode()
            while True:
                try:
                    await js.publish(subject, body, timeout=0.5, headers={"Nats-Msg-Id": f"restart-{i}"})
                    break
                except Exception:
                    await asyncio.sleep(0.05)
            published.append(i)
            if i == count // 4:
                midway.set()
            await asyncio.sleep(interval)
    finally:
        await nc.close()


async def _data_until(ws: ClientConnection, last: int, timeout: float) -> list[tuple[int, int]]:
    """(offset, data) of the message frames received until the one carrying ``last``."""
    got: list[tuple[int, int]] = []
    async with asyncio.timeout(timeout):
        while not got or got[-1][1] != last:
            frame = await recv(ws)
            assert frame["type"] == "message", frame
            got.append((frame["offset"], frame["data"]))
    return got


async def test_clients_get_every_message_once_across_a_nats_restart(
    gateway: Running, nats_server: NatsServer, js_publish: Any
) -> None:
    concrete = await authed(gateway.ws_url, "carol", topics=["r.*"])
    await concrete.send(json.dumps({"type": "subscribe", "topic": "r.one"}))
    assert await recv(concrete) == {"type": "subscribed", "topic": "r.one"}
    wildcard = await authed(gateway.ws_url, "dave", topics=["r.*"])
    await wildcard.send(json.dumps({"type": "subscribe", "topic": "r.*"}))
    assert await recv(wildcard) == {"type": "subscribed", "topic": "r.*"}

    count = 120
    published: list[int] = []
    midway = asyncio.Event()
    publisher = asyncio.create_task(_publish_steadily(gateway.nats_url, count, 0.02, published, midway))
    await asyncio.wait_for(midway.wait(), 20)
    await asyncio.to_thread(nats_server.stop)
    assert http_get(gateway.http_url + "/readyz")[0] == 503
    await asyncio.sleep(3)
    await asyncio.to_thread(nats_server.start)
    await asyncio.to_thread(wait_http_ok, gateway.http_url + "/readyz", 20.0)
    await asyncio.wait_for(publisher, 30)
    assert len(published) == count

    got_concrete = await _data_until(concrete, count - 1, 20)
    got_wildcard = await _data_until(wildcard, count, 20)
    assert [d for _, d in got_concrete] == list(range(1, count + 1, 2))
    assert [d for _, d in got_wildcard] == list(range(1, count + 1))
    for got in (got_concrete, got_wildcard):
        offsets = [o for o, _ in got]
        assert offsets == sorted(set(offsets))

    # Both sockets stayed open all along.
    for ws in (concrete, wildcard):
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}
        await ws.close()
    _, metrics = http_get(gateway.http_url + "/metrics")
    assert "herald_gateway_catchups_total 2.0" in metrics
    # Some messages were stored while the gateway was not subscribed: they came from the stream.
    filled = [line for line in metrics.splitlines() if line.startswith("herald_gateway_gaps_filled_total ")]
    assert filled and float(filled[0].split()[1]) > 0
