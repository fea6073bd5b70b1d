"""Helpers of the presence tests: members, the presence frames a socket gets, queries, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import nats
import websocket

from herald_common.presence import PRESENCE_STREAM, event_decoder
from tests.support.natsclients import connect_nats
from tests.support.stack import Client, Gateway, Stack, client, token


def fresh(prefix: str = "room") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def grant(topic: str) -> dict[str, Any]:
    return {"topics": [topic]}


@contextlib.contextmanager
def member(gw: Gateway, user: str, topic: str, presence: bool = False) -> Iterator[Client]:
    with client(gw.url, user, **grant(topic)) as c:
        frame = c.subscribe(topic, presence=presence)
        assert frame == {"type": "subscribed", "topic": topic}, frame
        yield c


def presence_frames(c: Client, seconds: float) -> list[dict[str, Any]]:
    """Every join/leave frame that arrives within ``seconds``."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = c.recv(left)
        except websocket.WebSocketTimeoutException:
            break
        if frame["type"] in ("join", "leave"):
            out.append(frame)
    return out


def next_presence(c: Client, timeout: float) -> tuple[dict[str, Any], float]:
    """The next join/leave frame and when it came (monotonic); fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        frame = c.recv(max(0.01, deadline - time.monotonic()))
        if frame["type"] in ("join", "leave"):
            return frame, time.monotonic()


def query(c: Client, topic: str, frame_id: Any = 1) -> dict[str, Any]:
    c.send({"type": "presence", "topic": topic, "id": frame_id})
    while True:
        frame = c.recv(5)
        if frame["type"] in ("presence", "error"):
            return frame


def until(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def rest(stack: Stack, topic: str, sub: str, **claims: Any) -> httpx.Response:
    return httpx.get(
        f"{stack.api_url}/api/topics/{topic}/presence",
        headers={"Authorization": f"Bearer {token(sub, **claims)}"},
        timeout=10,
    )


def metric(gw: Gateway, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{gw.metrics_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match is not None, name
    return float(match.group(1))


async def stored_events(stack: Stack, topic: str, count: int) -> list[Any]:
    """The events of ``topic`` stored on HERALD_PRESENCE (waiting up to 5 s for ``count``)."""
    nc = await connect_nats(stack.nats.url)
    try:
        js = nc.jetstream()
        found: list[Any] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            sub = await js.subscribe(f"presence.*.{topic}", ordered_consumer=True, stream=PRESENCE_STREAM)
            found = []
            with contextlib.suppress(TimeoutError, nats.errors.TimeoutError):
                while True:
                    msg = await sub.next_msg(timeout=0.5)
                    found.append(event_decoder.decode(msg.data))
            await sub.unsubscribe()
            if len(found) >= count:
                break
            await asyncio.sleep(0.2)
        return found
    finally:
        await nc.close()
