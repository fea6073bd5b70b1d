"""The ``presence`` section: members joining one topic on two gateway processes.

Two gateways of their own (``HERALD_PRESENCE_GRACE`` from ``presence_grace``: the default
5 s in a full run, 1 s in a quick one; every other presence setting at its default). First
``presence_watchers`` sockets subscribe to the topic with ``presence: true``, split over
both gateways, with one query socket per gateway; then the rest of ``presence_sockets``
(1,000: the default ``HERALD_PRESENCE_MAX_USERS``, so every user is listed) are members of
distinct users that join it, half on each gateway, ``CONNECT_CONCURRENCY`` at a time.
Measured:

- **join**: from the first connect until every view agrees: a ``presence`` query on each
  gateway counts every user, and every watcher has had a ``join`` for each of them. Also
  the frames and NATS batches the gateways sent, their CPU time and RSS growth per member
  (CPU and RSS include the socket's own connect, auth and subscribe; the idle section gives
  a bare socket's memory, the storm below presence's own CPU share).
- **storm**: every member's socket closed and opened again at once, within the grace: the
  time until all are back, the gateways' CPU, and the join/leave frames (none are due).
  The same storm on a pattern (``bench.presence.*``: tracked by no presence) is the baseline.
- **leave**: every member gone; the time until the views agree again (grace included).

The clients run in this process (``websockets``), not the load processes: a few thousand
sockets that mostly wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect

from herald_bench.procs import cpu_seconds, rss_bytes
from herald_common.tokens import issue_token

if TYPE_CHECKING:
    from herald_bench.runner import Bench

TOPIC = "bench.presence.room"
PATTERN = "bench.presence.*"
CONNECT_CONCURRENCY = 100
POLL = 0.05
AGREE_TIMEOUT = 60.0


@dataclass
class Gw:
    pid: int
    port: int
    metrics_port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0


@dataclass
class Watcher:
    """A ``presence: true`` socket: who it has been told is there (its first query's answer,
    then joins and leaves)."""

    ws: ClientConnection
    joins: set[str] = field(default_factory=set)
    frames: int = 0
    task: asyncio.Task[None] | None = None

    async def read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame["type"] == "join":
                    self.joins.add(frame["userId"])
                    self.frames += 1
                elif frame["type"] == "leave":
                    self.joins.discard(frame["userId"])
                    self.frames += 1
                elif frame["type"] == "presence":
                    # who was there before this watcher subscribed
                    self.joins.update(frame.get("users", ()))


async def _open(url: str, secret: str, user: str, topic: str, presence: bool) -> ClientConnection:
    ws = await connect(url, open_timeout=30, max_queue=None, ping_interval=None)
    await ws.send(json.dumps({"type": "auth", "token": issue_token(secret, user, topics=[PATTERN])}))
    assert json.loads(await ws.recv())["type"] == "auth_success"
    await ws.send(json.dumps({"type": "subscribe", "topic": topic, "presence": presence}))
    while json.loads(await ws.recv())["type"] != "subscribed":
        pass
    return ws


async def _open_all(gws: list[Gw], secret: str, users: list[str], topic: str) -> list[ClientConnection]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(i: int, user: str) -> ClientConnection:
        async with gate:
            return await _open(gws[i % 2].url, secret, user, topic, False)

    return list(await asyncio.gather(*(one(i, u) for i, u in enumerate(users))))


async def _close_all(sockets: list[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def _count(ws: ClientConnection, topic: str) -> int:
    await ws.send(json.dumps({"type": "presence", "topic": topic}))
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] == "presence":
            return int(frame["count"])


async def _agree(queries: list[ClientConnection], watchers: list[Watcher], users: set[str]) -> float:
    """Seconds until both gateways count ``users`` and every watcher has seen exactly their joins."""
    start = time.monotonic()
    while time.monotonic() - start < AGREE_TIMEOUT:
        counts = [await _count(q, TOPIC) for q in queries]
        if all(c == len(users) for c in counts) and all(w.joins == users for w in watchers):
            return time.monotonic() - start
        await asyncio.sleep(POLL)
    seen = sorted(len(w.joins) for w in watchers)
    raise TimeoutError(
        f"presence views did not agree within {AGREE_TIMEOUT:.0f} s: {len(users)} users, gateways count {counts}, "
        f"watchers know {seen[:1]}…{seen[-1:]}"
    )


def _frames(gws: list[Gw]) -> float:
    return sum(g.metric("herald_gateway_presence_frames_total") for g in gws)


def _batches(gws: list[Gw]) -> float:
    return sum(g.metric("herald_gateway_presence_batches_total") for g in gws)


def _cpu(gws: list[Gw]) -> float:
    return sum(cpu_seconds(g.pid) for g in gws)


async def _storm(
    gws: list[Gw], secret: str, sockets: list[ClientConnection], users: list[str], topic: str, settle: float
) -> Any:
    """Drop every socket and open it again at once, wait ``settle`` s for what follows;
    (new sockets, seconds, CPU s, frames)."""
    frames0, cpu0, t0 = _frames(gws), _cpu(gws), time.monotonic()
    for ws in sockets:
        ws.transport.abort()
    fresh = await _open_all(gws, secret, users, topic)
    seconds = time.monotonic() - t0
    await asyncio.sleep(settle)
    return fresh, seconds, _cpu(gws) - cpu0, _frames(gws) - frames0


async def run(bench: Bench) -> dict[str, Any]:
    cfg = bench.cfg
    stack = bench.stack
    grace = cfg.presence_grace
    started = [stack.gateway(extra_env={"HERALD_PRESENCE_GRACE": str(grace)}) for _ in range(2)]
    gws = [Gw(s.pid, port, int(s.env["HERALD_GATEWAY_METRICS_PORT"])) for s, port in started]
    secret = stack.secret
    # Every socket counts: watchers and the two query sockets are on the topic too.
    members = [f"member-{i}" for i in range(cfg.presence_sockets - cfg.presence_watchers - 2)]
    sockets: list[ClientConnection] = []
    watchers: list[Watcher] = []
    queries: list[ClientConnection] = []
    try:
        queries = [await _open(g.url, secret, f"query-{i}", TOPIC, False) for i, g in enumerate(gws)]
        for i in range(cfg.presence_watchers):
            w = Watcher(await _open(gws[i % 2].url, secret, f"watcher-{i}", TOPIC, True))
            w.task = asyncio.create_task(w.read())
            await w.ws.send(json.dumps({"type": "presence", "topic": TOPIC}))
            watchers.append(w)
        base = {f"watcher-{i}" for i in range(cfg.presence_watchers)} | {"query-0", "query-1"}
        await _agree(queries, watchers, base)
        await asyncio.sleep(0.5)
        rss0 = sum(rss_bytes(g.pid) for g in gws)
        frames0, batches0, cpu0 = _frames(gws), _batches(gws), _cpu(gws)

        t0 = time.monotonic()
        sockets = await _open_all(gws, secret, members, TOPIC)
        connected = time.monotonic() - t0
        everyone = base | set(members)
        agreed = await _agree(queries, watchers, everyone)
        join_seconds = time.monotonic() - t0
        await asyncio.sleep(0.5)
        cpu = _cpu(gws) - cpu0
        rss = sum(rss_bytes(g.pid) for g in gws) - rss0
        frames = _frames(gws) - frames0
        n = len(members)
        join = {
            "members": n,
            "watchers": cfg.presence_watchers,
            "connect_seconds": round(connected, 2),
            "agree_seconds": round(join_seconds, 2),
            "agree_after_last_subscribed_seconds": round(agreed, 3),
            "frames": int(frames),
            "frames_expected": n * cfg.presence_watchers,
            "batches": int(_batches(gws) - batches0),
            "gateway_cpu_seconds": round(cpu, 2),
            "cpu_ms_per_member": round(1000 * cpu / n, 3),
            "rss_kib_per_member": round(rss / n / 1024, 2),
            "entries_per_gateway": [int(g.metric("herald_gateway_presence_entries")) for g in gws],
        }
        bench.progress(f"  join: {n} members, views agree after {join_seconds:.2f} s, {int(frames)} frames")

        # Past the grace: a leave the storm caused would have been sent (and its CPU spent).
        sockets, seconds, storm_cpu, storm_frames = await _storm(gws, secret, sockets, members, TOPIC, grace + 1.0)
        await _agree(queries, watchers, everyone)
        storm = {
            "reconnect_seconds": round(seconds, 2),
            "gateway_cpu_seconds": round(storm_cpu, 2),
            "join_leave_frames": int(storm_frames),
        }
        bench.progress(f"  storm with presence: {seconds:.2f} s, {storm_cpu:.2f} CPU s, {int(storm_frames)} frames")

        t0 = time.monotonic()
        await _close_all(sockets)
        sockets = []
        await _agree(queries, watchers, base)
        leave = {"agree_seconds": round(time.monotonic() - t0, 2), "grace": grace}

        plain = await _open_all(gws, secret, members, PATTERN)
        # The same wait, so that both CPU windows are alike.
        sockets, seconds, plain_cpu, _ = await _storm(gws, secret, plain, members, PATTERN, grace + 1.0)
        storm["baseline_pattern_reconnect_seconds"] = round(seconds, 2)
        storm["baseline_pattern_cpu_seconds"] = round(plain_cpu, 2)
        storm["presence_cpu_ms_per_reconnect"] = round(1000 * (storm_cpu - plain_cpu) / n, 3)
        bench.progress(f"  storm on a pattern (no presence): {seconds:.2f} s, {plain_cpu:.2f} CPU s")
        return {"topic": TOPIC, "grace": grace, "join": join, "storm": storm, "leave": leave}
    finally:
        await _close_all(sockets + queries + [w.ws for w in watchers])
        for w in watchers:
            if w.task is not None:
                w.task.cancel()
        for service, _ in started:
            stack.stop(service)


def render(section: dict[str, Any] | None) -> list[str]:
    """The section's lines for the printed report (nothing when it did not run)."""
    if section is None:
        return []
    if "error" in section:
        return [f"Presence: FAILED: {section['error']}", ""]
    j, s, lv = section["join"], section["storm"], section["leave"]
    return [
        f"Presence: {j['members'] + j['watchers'] + 2} sockets on one topic over 2 gateways: {j['members']} members "
        f"joining, {j['watchers']} watchers (presence: true), 2 query sockets; grace {section['grace']:g} s",
        f"  join: connected in {j['connect_seconds']} s; every view agrees {j['agree_seconds']} s after the first "
        f"connect ({j['agree_after_last_subscribed_seconds']} s after the last subscribed); "
        f"{j['frames']} join frames (expected {j['frames_expected']}) in {j['batches']} NATS batches",
        f"  cost: {j['cpu_ms_per_member']} gateway CPU ms and {j['rss_kib_per_member']} KiB RSS per member "
        f"(its socket's connect, auth and subscribe included); entries per gateway {j['entries_per_gateway']}",
        f"  reconnect storm: {s['reconnect_seconds']} s, {s['gateway_cpu_seconds']} gateway CPU s, "
        f"{s['join_leave_frames']} join/leave frames; on a pattern (no presence) "
        f"{s['baseline_pattern_reconnect_seconds']} s, {s['baseline_pattern_cpu_seconds']} CPU s: "
        f"presence costs {s['presence_cpu_ms_per_reconnect']} CPU ms per reconnect",
        f"  leave: views agree {lv['agree_seconds']} s after the closes began (grace {lv['grace']:g} s)",
        "",
    ]
