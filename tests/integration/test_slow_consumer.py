"""A client that stops reading is cut off (4009) without slowing anyone else or growing memory."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import urllib.request
from pathlib import Path

import pytest
import websockets

from herald_common.config import load_settings
from herald_common.streams import ensure_streams
from tests.support.natsclients import connect_nats
from tests.support.procs import NatsServer
from tests.support.rawws import OP_CLOSE, OP_TEXT, RawClient, frame
from tests.support.stack import Stack, token

pytestmark = pytest.mark.integration

READERS = 20
PAYLOAD = 16 * 1024
RATE = 300  # messages/s
SECONDS = 8
# The well-behaved readers share this one Python process: at RATE x PAYLOAD, 1 MiB lets a
# reader stall ~200 ms (which a loaded machine does) before it would count as slow. 256 KiB
# (~50 ms) cut good readers now and then.
MAX_PENDING = 1024 * 1024


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def reader(url: str, user: str, latencies: list[float], subscribed: asyncio.Event) -> int:
    """Counts the messages (their latencies land in ``latencies``) until the end marker,
    published after all of them."""
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token(user, topics=["slow.**"])}))
        assert json.loads(await ws.recv())["type"] == "auth_success"
        await ws.send(json.dumps({"type": "subscribe", "topic": "slow.feed"}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        subscribed.set()
        last: int | None = None
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == "message" and msg["data"].get("end"):
                return len(latencies)
            if msg["type"] == "message":
                latencies.append(time.time() - msg["data"]["t"])
                assert last is None or msg["offset"] == last + 1, f"{user}: {msg['offset']} after {last}"
                last = msg["offset"]


async def scenario(stack: Stack, nats_url: str) -> None:
    gw = stack.gateways[0]
    assert gw.service.proc is not None
    pid = gw.service.proc.pid
    latencies: list[list[float]] = [[] for _ in range(READERS)]
    ready = [asyncio.Event() for _ in range(READERS)]
    readers = [asyncio.create_task(reader(gw.url, f"r{i}", latencies[i], ready[i])) for i in range(READERS)]

    slow = await RawClient.connect("127.0.0.1", gw.port, rcvbuf=4096)
    await slow.send_raw(
        frame(OP_TEXT, json.dumps({"type": "auth", "token": token("slowpoke", topics=["slow.**"])}).encode())
    )
    await slow.send_raw(frame(OP_TEXT, json.dumps({"type": "subscribe", "topic": "slow.feed"}).encode()))
    answers: list[str] = []
    while len(answers) < 2:  # auth_success, then subscribed
        opcode, data = await slow.read_frame(timeout=10)
        assert opcode == OP_TEXT, (opcode, data)
        answers.append(json.loads(data)["type"])
    assert answers == ["auth_success", "subscribed"], answers
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 30)
    # Everyone is subscribed; from now on the slow client reads nothing.
    rss_before = rss_kib(pid)

    nc = await connect_nats(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, load_settings({}))
    pad = "x" * PAYLOAD
    rss_peak = rss_before
    sent = 0
    started = time.monotonic()
    while time.monotonic() - started < SECONDS:
        body = json.dumps({"data": {"t": time.time(), "pad": pad}}).encode()
        await js.publish("topics.slow.feed", body)
        sent += 1
        if sent % 50 == 0:
            rss_peak = max(rss_peak, rss_kib(pid))
        await asyncio.sleep(max(0.0, started + sent / RATE - time.monotonic()))
    # A fence rather than a pause: once a reader has the end marker it has had everything
    # published before it, or never will.
    await js.publish("topics.slow.feed", json.dumps({"data": {"end": True}}).encode())
    await nc.close()
    counts = await asyncio.wait_for(asyncio.gather(*readers), 60)

    # Now the slow client reads what the kernel held for it: the connection must end. A close
    # frame (4009) gets through only if it fits behind the data the client never read;
    # otherwise the gateway aborts the connection. Either way the gateway counted it as 4009.
    code = None
    ended = False
    try:
        while True:
            opcode, data = await slow.read_frame(timeout=10)
            if opcode == OP_CLOSE:
                code = int.from_bytes(data[:2], "big")
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        ended = True
    await slow.close()

    all_lat = sorted(x for lat in latencies for x in lat)
    p50 = statistics.median(all_lat)
    p99 = all_lat[int(len(all_lat) * 0.99) - 1]
    growth = rss_peak - rss_before
    print(
        f"\nsent {sent} x {PAYLOAD // 1024} KiB; readers got {min(counts)}..{max(counts)}; "
        f"latency p50 {p50 * 1000:.1f} ms p99 {p99 * 1000:.1f} ms; gateway RSS {rss_before} KiB, "
        f"peak +{growth} KiB; slow client closed with {code}"
    )
    assert code == 4009 or (code is None and ended)
    assert all(c == sent for c in counts), "a well-behaved reader lost messages"
    # Generous bounds: the failure modes are seconds of stall and memory growing with the
    # ~40 MB pushed at the slow client, not milliseconds (and the machine may be shared).
    assert p99 < 2.0
    assert growth < 32 * 1024


@pytest.mark.parametrize("parallel", ["0", "2"], ids=["loop-writes", "parallel-writes"])
def test_slow_consumer_is_cut_off_without_hurting_others(
    nats_server: NatsServer, tmp_path: Path, parallel: str
) -> None:
    """Also with every flush written from two threads (raw writes, the rest through the transport)."""
    stack = Stack(nats=nats_server, root=tmp_path)
    try:
        stack.start_gateway(
            HERALD_MAX_PENDING_BYTES=str(MAX_PENDING),
            HERALD_MAX_FRAME_BYTES="65536",
            HERALD_GATEWAY_PARALLEL_WRITES=parallel,
        )
        asyncio.run(scenario(stack, nats_server.url))
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.gateways[0].metrics_port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert "herald_gateway_slow_consumers_total 1.0" in metrics
        codes = [line for line in metrics.splitlines() if line.startswith("herald_gateway_disconnects_total{")]
        print(codes)
        assert any('code="4009"' in line and not line.endswith(" 0.0") for line in codes), codes
    finally:
        stack.stop()
