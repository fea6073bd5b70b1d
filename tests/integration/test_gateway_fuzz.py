"""Socket-level fuzzing of a live gateway.

At least 10,000 random and mutated frames — invalid UTF-8, binary frames, fragments,
oversized and payload-carrying control frames, reserved bits, unmasked frames, unknown
opcodes, truncated frames, half-closed sockets, JSON nested far too deeply and absurd
numbers (in frames and in correctly signed tokens) — from many connections, while a
well-behaved client on the same gateway keeps receiving. Afterwards the gateway is alive,
the good client got every message in order, and connections, subscriptions and NATS
subscriptions are back where they were (nothing leaked).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import re
import time
import urllib.request
from pathlib import Path

import pytest

from herald_common.config import load_settings
from herald_common.streams import ensure_streams
from tests.support.natsclients import connect_nats
from tests.support.procs import NatsServer
from tests.support.rawws import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawClient, frame
from tests.support.stack import SECRET, Stack, client, token

pytestmark = pytest.mark.integration

FRAMES = 10_000
CONCURRENCY = 8


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^(herald_\w+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def good_frames(rng: random.Random, tok: str) -> list[bytes]:
    choices = [
        {"type": "auth", "token": tok},
        {"type": "ping"},
        {"type": "subscribe", "topic": f"fuzz.{rng.randint(0, 3)}", "id": rng.random()},
        {"type": "unsubscribe", "topic": f"fuzz.{rng.randint(0, 3)}"},
        {"type": "subscribe", "topic": "messages.user.someone-else"},
        {"type": "subscribe", "topic": "a..b"},
        {"type": "message", "topic": "fuzz.x", "data": {"n": rng.random()}},
    ]
    return [json.dumps(rng.choice(choices)).encode() for _ in range(3)]


HUGE = "1" + "0" * 400  # 10**400: no float holds it


def hostile_frames(rng: random.Random) -> list[bytes]:
    """Well-formed frames carrying what decoders and timers trip over: deep nesting, huge numbers."""
    depth = rng.choice([65, 100, 1_000, 20_000])
    deep = "[" * depth + "]" * depth
    deep_object = '{"a":' * depth + "1" + "}" * depth
    number = rng.choice([HUGE, "-" + HUGE, "1e400", "-1e400", "1e-400", "9" * 4400])
    now = int(time.time())
    claims = rng.choice([f'"exp":{number}', f'"exp":{now + 600},"iat":{number}', f'"exp":{now + 600},"nbf":{number}'])
    return [
        f'{{"type":"message","topic":"fuzz.x","data":{deep}}}'.encode(),
        f'{{"type":"subscribe","topic":"fuzz.1","id":{deep_object}}}'.encode(),
        deep.encode(),
        f'{{"type":"message","topic":"fuzz.x","data":{number},"id":{number}}}'.encode(),
        f'{{"type":"subscribe","topic":"fuzz.2","since":{{"offset":{number},"epoch":"e"}}}}'.encode(),
        json.dumps({"type": "auth", "token": signed_token(f'{{"sub":"fuzzer",{claims}}}')}).encode(),
        f'{{"type":"auth","token":"{deep}"}}'.encode(),
    ]


def signed_token(payload_json: str) -> str:
    """A correctly signed HS256 token around exactly this payload JSON (the stack's secret)."""

    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(payload_json.encode())
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + part(mac)


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randint(0, 3)
        pos = rng.randint(0, max(0, len(b) - 1))
        if op == 0 and b:
            b[pos] = rng.randint(0, 255)
        elif op == 1:
            b[pos:pos] = os.urandom(rng.randint(1, 8))
        elif op == 2 and b:
            del b[pos : pos + rng.randint(1, 4)]
        else:
            b = b[: rng.randint(0, len(b))]
    return bytes(b)


def random_frame(rng: random.Random, tok: str) -> bytes:
    """One wire frame, usually broken in some way."""
    kind = rng.randint(0, 13)
    payload = rng.choice(good_frames(rng, tok))
    if kind >= 12:
        hostile = rng.choice(hostile_frames(rng))
        if len(hostile) > 60_000:  # stay under the frame limit: nesting is the point, not size
            hostile = hostile[:60_000]
        return frame(OP_TEXT, hostile if kind == 12 else mutate(rng, hostile))
    if kind == 0:
        return frame(OP_TEXT, payload)
    if kind == 1:
        return frame(OP_TEXT, mutate(rng, payload))
    if kind == 2:
        return frame(OP_TEXT, os.urandom(rng.randint(0, 64)))  # mostly invalid UTF-8
    if kind == 3:
        return frame(OP_BINARY, rng.choice([payload, os.urandom(rng.randint(0, 64))]))
    if kind == 4:
        cut = rng.randint(0, len(payload))
        return frame(OP_TEXT, payload[:cut], fin=False) + frame(OP_CONT, payload[cut:])
    if kind == 5:
        return frame(OP_CONT, payload)  # continuation with nothing to continue
    if kind == 6:
        return frame(OP_PING, os.urandom(rng.randint(0, 125)))
    if kind == 7:
        return frame(rng.choice([OP_PING, OP_PONG, OP_CLOSE]), os.urandom(rng.randint(126, 300)))  # too long
    if kind == 8:
        return frame(OP_TEXT, payload, rsv=rng.randint(1, 7))
    if kind == 9:
        return frame(OP_TEXT, payload, mask=False)
    if kind == 10:
        return frame(rng.choice([3, 4, 5, 6, 7, 0xB, 0xC, 0xF]), payload)
    full = frame(OP_TEXT, payload)
    return full[: rng.randint(1, len(full) - 1)]  # truncated


async def fuzz_connection(port: int, rng: random.Random, tok: str, budget: list[int]) -> None:
    while budget[0] > 0:
        try:
            c = await RawClient.connect("127.0.0.1", port)
        except (ConnectionError, OSError, TimeoutError):
            await asyncio.sleep(0.05)
            continue
        reader = asyncio.create_task(c.drain_frames())
        try:
            if rng.random() < 0.7:
                await c.send_raw(frame(OP_TEXT, json.dumps({"type": "auth", "token": tok}).encode()))
            for _ in range(rng.randint(1, 40)):
                if budget[0] <= 0 or reader.done():
                    break
                await c.send_raw(random_frame(rng, tok))
                budget[0] -= 1
            ending = rng.randint(0, 3)
            if ending == 0:
                c.half_close()
            elif ending == 1:
                c.abort()
            elif ending == 2:
                await c.send_raw(frame(OP_CLOSE, (1000).to_bytes(2, "big")))
        except (ConnectionError, OSError):
            pass
        try:
            await asyncio.wait_for(asyncio.shield(reader), 3)
        except TimeoutError:
            reader.cancel()
        await c.close()


async def publish_steadily(nats_url: str, count: int, stop: asyncio.Event) -> int:
    nc = await connect_nats(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, load_settings({}))
    sent = 0
    try:
        while sent < count and not stop.is_set():
            await js.publish("topics.steady.feed", json.dumps({"data": sent}).encode())
            sent += 1
            await asyncio.sleep(0.01)
    finally:
        await nc.close()
    return sent


def test_gateway_survives_socket_fuzzing(nats_server: NatsServer, tmp_path: Path) -> None:
    stack = Stack(nats=nats_server, root=tmp_path)
    try:
        gw = stack.start_gateway()
        tok = token("fuzzer", topics=["fuzz.**"], publish=["fuzz.**"])
        with client(gw.url, "watcher", topics=["steady.**"]) as good:
            assert good.subscribe("steady.feed")["type"] == "subscribed"
            baseline = metrics(gw.metrics_port)

            async def scenario() -> tuple[int, int]:
                stop = asyncio.Event()
                publisher = asyncio.create_task(publish_steadily(nats_server.url, 10_000, stop))
                budget = [FRAMES]
                started = time.monotonic()
                await asyncio.gather(
                    *(fuzz_connection(gw.port, random.Random(seed), tok, budget) for seed in range(CONCURRENCY))
                )
                stop.set()
                sent = await publisher
                print(f"fuzzed {FRAMES - budget[0]} frames in {time.monotonic() - started:.1f}s; published {sent}")
                return FRAMES - budget[0], sent

            fuzzed, sent = asyncio.run(scenario())
            assert fuzzed >= FRAMES
            assert sent > 0
            received = [m["data"] for m in good.messages(sent, timeout=30)]
            assert received == list(range(sent)), "the good client lost or reordered messages"
            assert gw.service.proc is not None
            assert gw.service.proc.poll() is None, gw.service.logs()[-3000:]
            # No frame may reach an unhandled exception (websockets closes those with 1011).
            assert "connection handler failed" not in gw.service.logs(), gw.service.logs()[-3000:]

            deadline = time.monotonic() + 15
            while True:
                now = metrics(gw.metrics_port)
                keys = [
                    k
                    for k in baseline
                    if re.match(r"herald_gateway_(connections|subscriptions|nats_subscriptions|tasks)\b", k)
                ]
                if all(now.get(k) == baseline[k] for k in keys) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert keys, f"gateway exposes no gauges to check leaks with: {sorted(baseline)}"
            for k in keys:
                assert now.get(k) == baseline[k], (k, baseline[k], now.get(k))
    finally:
        stack.stop()
