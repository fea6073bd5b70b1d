"""Hostile sockets against a real gateway process and a real nats-server.

Control-frame floods that never read, tokens with absurd numbers, frames nested too
deeply, forged direct messages, and large recoveries over loopback.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from herald_common.config import load_settings
from herald_common.streams import ensure_streams
from herald_common.tokens import issue_token
from tests.support.natsclients import connect_nats
from tests.support.procs import GatewayProcess, NatsServer, gateway_process
from tests.support.rawws import OP_CLOSE, OP_PING, OP_TEXT, RawClient, frame

pytestmark = pytest.mark.integration

SECRET = "hostile-socket-test-secret-of-32-bytes!"
RECV_TIMEOUT = 10.0


@pytest.fixture
def gateway_env() -> dict[str, str]:
    return {}


@pytest.fixture
def gateway(nats_server: NatsServer, tmp_path: Path, gateway_env: dict[str, str]) -> Iterator[GatewayProcess]:
    with gateway_process(nats_server.url, tmp_path, SECRET, **gateway_env) as gw:
        yield gw


def token(sub: str = "alice", **kwargs: Any) -> str:
    return issue_token(SECRET, sub, **kwargs)


def signed(payload_json: str) -> str:
    """A correctly signed HS256 token around exactly this payload JSON."""

    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = part(b'{"alg":"HS256","typ":"JWT"}')
    signing_input = f"{header}.{part(payload_json.encode())}"
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(mac)}"


async def recv(ws: ClientConnection) -> dict[str, Any]:
    out = json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT))
    assert isinstance(out, dict)
    return out


async def authed(url: str, sub: str = "alice", **kwargs: Any) -> ClientConnection:
    ws = await connect(url, open_timeout=RECV_TIMEOUT, max_size=None)
    await ws.send(json.dumps({"type": "auth", "token": token(sub, **kwargs)}))
    assert await recv(ws) == {"type": "auth_success", "userId": sub}
    return ws


def metrics(gw: GatewayProcess) -> str:
    with urllib.request.urlopen(f"{gw.http_url}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def disconnects(gw: GatewayProcess, code: int) -> float:
    prefix = f'herald_gateway_disconnects_total{{code="{code}"}} '
    return sum(float(line.split()[-1]) for line in metrics(gw).splitlines() if line.startswith(prefix))


def all_disconnects(gw: GatewayProcess) -> str:
    """Every disconnect counter line (what a failed expectation reports)."""
    return "; ".join(line for line in metrics(gw).splitlines() if line.startswith("herald_gateway_disconnects_total"))


async def disconnected(gw: GatewayProcess, code: int, timeout: float = 10.0) -> float:
    """The disconnects counted under ``code``, once there is at least one (or the timeout passed)."""
    for _ in range(int(timeout / 0.2)):
        if disconnects(gw, code) >= 1:
            break
        await asyncio.sleep(0.2)
    return disconnects(gw, code)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# control frames


async def flood_pings(gw: GatewayProcess, authenticate: bool, seconds: float) -> tuple[int, int, bool]:
    """Send pings (125-byte payloads) as fast as possible without reading a byte.

    Returns the gateway's RSS growth (KiB), the pings sent, and whether the gateway ended
    the connection while the flood went on.
    """
    assert gw.service.proc is not None
    pid = gw.service.proc.pid
    client = await RawClient.connect("127.0.0.1", gw.port, rcvbuf=4096)
    if authenticate:
        await client.send_raw(frame(OP_TEXT, json.dumps({"type": "auth", "token": token()}).encode()))
    await asyncio.sleep(0.3)
    before = peak = rss_kib(pid)
    batch = frame(OP_PING, b"p" * 125) * 4000  # one masked frame repeated: a legal, cheap flood
    sent, cut = 0, False
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            await client.send_raw(batch)
            sent += 4000
            peak = max(peak, rss_kib(pid))
    except (ConnectionError, OSError):
        cut = True
    await asyncio.sleep(0.5)
    peak = max(peak, rss_kib(pid))
    client.abort()
    return peak - before, sent, cut


@pytest.mark.parametrize("authenticate", [True, False], ids=["authenticated", "before-auth"])
async def test_a_ping_flood_that_never_reads_is_closed_4008_and_memory_stays_bounded(
    gateway: GatewayProcess, authenticate: bool
) -> None:
    growth, sent, cut = await flood_pings(gateway, authenticate, seconds=4.0)
    print(f"\n{sent} pings; gateway RSS +{growth} KiB; cut during the flood: {cut}")
    assert growth < 8 * 1024
    assert await disconnected(gateway, 4008) == 1
    assert 'herald_gateway_refused_frames_total{reason="rate_limited"}' in metrics(gateway)


@pytest.mark.parametrize(
    "gateway_env",
    [
        {
            "HERALD_FRAMES_PER_SECOND": "1000000000",
            "HERALD_FRAMES_BURST": "1000000000",
            "HERALD_MAX_PENDING_BYTES": "262144",
        }
    ],
)
async def test_pongs_count_against_the_byte_bound_when_the_rate_allows_the_flood(gateway: GatewayProcess) -> None:
    growth, sent, cut = await flood_pings(gateway, True, seconds=4.0)
    print(f"\n{sent} pings; gateway RSS +{growth} KiB; cut during the flood: {cut}")
    assert growth < 8 * 1024
    assert await disconnected(gateway, 4009) == 1, all_disconnects(gateway)
    assert "herald_gateway_slow_consumers_total 1.0" in metrics(gateway)


async def test_a_client_that_reads_its_pongs_is_not_cut(gateway: GatewayProcess) -> None:
    ws = await authed(gateway.ws_url)
    for _ in range(20):
        pong = await ws.ping(b"x")
        await asyncio.wait_for(pong, RECV_TIMEOUT)
    await ws.send(json.dumps({"type": "ping"}))
    assert await recv(ws) == {"type": "pong"}
    await ws.close()


# absurd numbers and deep nesting


@pytest.mark.parametrize("claims", ['"exp":1' + "0" * 400, '"exp":1e300', '"exp":9999999999,"nbf":-1' + "0" * 400])
async def test_a_token_with_absurd_numbers_closes_4001(gateway: GatewayProcess, claims: str) -> None:
    ws = await connect(gateway.ws_url, open_timeout=RECV_TIMEOUT)
    await ws.send(json.dumps({"type": "auth", "token": signed(f'{{"sub":"alice",{claims}}}')}))
    error = await recv(ws)
    assert (error["type"], error["code"]) == ("error", "unauthorized")
    with pytest.raises(ConnectionClosed):
        await recv(ws)
    assert ws.close_code == 4001


async def test_a_frame_nested_too_deeply_is_bad_request_and_the_socket_stays(gateway: GatewayProcess) -> None:
    ws = await authed(gateway.ws_url, publish=["deep.**"])
    deep = "[" * 100 + "]" * 100
    await ws.send(f'{{"type":"message","topic":"deep.x","data":{deep},"id":"d"}}')
    error = await recv(ws)
    assert (error["code"], error["id"]) == ("bad_request", "d")
    await ws.send("[" * 30_000 + "]" * 30_000)
    assert (await recv(ws))["code"] == "bad_request"
    await ws.send(json.dumps({"type": "ping"}))
    assert await recv(ws) == {"type": "pong"}
    await ws.close()


async def test_absurd_numbers_in_frames_do_not_break_the_socket(gateway: GatewayProcess) -> None:
    ws = await authed(gateway.ws_url, publish=["num.**"])
    huge = "1" + "0" * 400
    await ws.send(f'{{"type":"subscribe","topic":"num.a","since":{{"offset":{huge},"epoch":"e"}},"id":1}}')
    assert (await recv(ws))["code"] == "bad_request"
    await ws.send(f'{{"type":"subscribe","topic":"num.a","id":{huge}}}')
    assert (await recv(ws))["type"] in ("subscribed", "error")
    await ws.send(f'{{"type":"message","topic":"num.a","data":{huge},"id":2}}')
    published = await recv(ws)
    assert (published["type"], published["id"]) == ("published", 2)
    await ws.send(json.dumps({"type": "ping"}))
    assert await recv(ws) == {"type": "pong"}
    await ws.close()


# socket publishes


async def test_a_socket_publish_is_answered_published_and_carries_its_publisher(gateway: GatewayProcess) -> None:
    reader = await authed(gateway.ws_url, "reader", topics=["chat.**"])
    await reader.send(json.dumps({"type": "subscribe", "topic": "chat.room"}))
    assert (await recv(reader))["type"] == "subscribed"
    writer = await authed(gateway.ws_url, "writer", publish=["chat.**"])
    offsets = []
    for i in range(3):
        await writer.send(json.dumps({"type": "message", "topic": "chat.room", "data": {"n": i}, "id": f"m{i}"}))
        reply = await recv(writer)
        assert reply == {"type": "published", "topic": "chat.room", "offset": reply["offset"], "id": f"m{i}"}
        offsets.append(reply["offset"])
    assert offsets == sorted(offsets) and len(set(offsets)) == 3
    got = [await recv(reader) for _ in range(3)]
    assert [(m["offset"], m["data"], m["publisher"]) for m in got] == [
        (offsets[i], {"n": i}, "writer") for i in range(3)
    ]
    await writer.send(json.dumps({"type": "message", "topic": "chat.room", "data": 1}))
    assert set(await recv(writer)) == {"type", "topic", "offset"}
    await reader.close()
    await writer.close()


@pytest.mark.parametrize("grant", ["**", "messages.**"])
async def test_forged_direct_messages_are_forbidden_whatever_the_grant(gateway: GatewayProcess, grant: str) -> None:
    victim = await authed(gateway.ws_url, "victim")
    await victim.send(json.dumps({"type": "subscribe", "topic": "messages.user.victim"}))
    assert (await recv(victim))["type"] == "subscribed"
    forger = await authed(gateway.ws_url, "forger", publish=[grant], roles=["admin"])
    for topic in ("messages", "messages.user.victim", "messages.channel.c1"):
        await forger.send(json.dumps({"type": "message", "topic": topic, "data": {"content": "hi"}, "id": topic}))
        error = await recv(forger)
        assert (error["type"], error["code"], error["id"]) == ("error", "forbidden", topic)
    await victim.send(json.dumps({"type": "ping"}))
    assert await recv(victim) == {"type": "pong"}  # and nothing was delivered before it
    await victim.close()
    await forger.close()


async def read_close(client: RawClient) -> int | None:
    """Read until a close frame (its code) or the end of the connection (None)."""
    try:
        while True:
            opcode, data = await client.read_frame(timeout=RECV_TIMEOUT)
            if opcode == OP_CLOSE:
                return int.from_bytes(data[:2], "big")
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
        return None


# large recoveries


BIG = 16 * 1024
BACKLOG = 100


async def missed_backlog(gw: GatewayProcess, nats_url: str, count: int = BACKLOG) -> tuple[int, str]:
    """One message seen live, then ``count`` x 16 KiB missed; the (offset, epoch) seen."""
    ws = await authed(gw.ws_url, "seer", topics=["big.**"])
    await ws.send(json.dumps({"type": "subscribe", "topic": "big.feed"}))
    assert (await recv(ws))["type"] == "subscribed"
    nc = await connect_nats(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, load_settings({}))
    await js.publish("topics.big.feed", json.dumps({"data": {"n": -1}}).encode())
    seen = await recv(ws)
    await ws.close()
    pad = "x" * BIG
    for n in range(count):
        await js.publish("topics.big.feed", json.dumps({"data": {"n": n, "pad": pad}}).encode())
    await nc.close()
    return int(seen["offset"]), str(seen["epoch"])


async def test_a_large_backlog_is_recovered_by_a_client_that_keeps_reading(
    gateway: GatewayProcess, nats_server: NatsServer
) -> None:
    offset, epoch = await missed_backlog(gateway, nats_server.url)
    for _ in range(3):
        ws = await authed(gateway.ws_url, "reader", topics=["big.**"])
        since = {"offset": offset, "epoch": epoch}
        await ws.send(json.dumps({"type": "subscribe", "topic": "big.feed", "since": since}))
        assert await recv(ws) == {"type": "subscribed", "topic": "big.feed", "recovered": True}
        got = [(await recv(ws))["data"]["n"] for _ in range(BACKLOG)]
        assert got == list(range(BACKLOG))
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}
        await ws.close()
    assert disconnects(gateway, 4009) == 0


async def test_a_stalled_reader_of_a_large_backlog_is_still_closed_4009(
    gateway: GatewayProcess, nats_server: NatsServer
) -> None:
    # More than the kernel's socket buffers take, so the gateway must hold the rest.
    offset, epoch = await missed_backlog(gateway, nats_server.url, count=600)
    stalled = await RawClient.connect("127.0.0.1", gateway.port, rcvbuf=4096)
    auth = {"type": "auth", "token": token("stalled", topics=["big.**"])}
    since = {"offset": offset, "epoch": epoch}
    await stalled.send_raw(frame(OP_TEXT, json.dumps(auth).encode()))
    subscribe = {"type": "subscribe", "topic": "big.feed", "since": since}
    await stalled.send_raw(frame(OP_TEXT, json.dumps(subscribe).encode()))
    assert await disconnected(gateway, 4009, timeout=20) == 1
    stalled.abort()
