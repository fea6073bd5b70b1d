"""Counting every message while the system is broken on purpose, under load.

A load generator offers ``LOSS_TEST_RATE`` requests per second (default 2,000) over a
bounded number of keep-alive clients: direct messages and channel messages
(``POST /api/messages``), raw publishes to ``loss.<user>`` (``POST /api/publish``) and
batches of them (``POST /api/publish/batch``).
Subscribers (one socket per user, spread over the gateways, each on its user topic, its
channel's topic and its ``loss.<user>`` topic granted by a ``topics`` claim) record every
frame. Meanwhile, phase by phase: a gateway is SIGKILLed (its clients reconnect elsewhere
with ``since``) and another started, the bridge is SIGKILLed and restarted, an api is
SIGKILLed and restarted, the nats-server is SIGKILLed and restarted, and NATS is stopped
for 5 s. A second test kills one node of a 3-node JetStream cluster (replicas 3). Both run
on SQLite with one api and on PostgreSQL with two api processes whose outbox relays race
over one outbox table.

Every socket must end with every acknowledged (201/202) message of its topics exactly
once and in order, and with nothing that is not its own. Everything the test tolerates
(failed requests while an api is down, delivered-but-unacknowledged messages, reconnects,
subscribe retries while the api or NATS is unreachable) is counted, bounded and printed.
The throughput is printed per phase, never asserted.

Knobs (environment of the test run): ``LOSS_TEST_RATE`` (offered requests/s),
``LOSS_TEST_PHASE_SECONDS`` (length of each phase, default 2), ``LOSS_TEST_CLIENTS``
(concurrent HTTP clients, default 64). They are not ``HERALD_`` variables: that prefix
belongs to the services' settings, where an unknown name is refused at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websocket

from herald_bench.httpload import Connection, post_json
from herald_common.streams import EVENTS_STREAM, TOPICS_STREAM
from tests.support.natsclients import connect_nats
from tests.support.postgres import fresh_database
from tests.support.procs import NatsCluster, NatsServer, running_nats
from tests.support.stack import Stack, token

pytestmark = pytest.mark.integration

RATE = float(os.environ.get("LOSS_TEST_RATE") or 2000)
PHASE = float(os.environ.get("LOSS_TEST_PHASE_SECONDS") or 2)
CLIENTS = int(os.environ.get("LOSS_TEST_CLIENTS") or 64)
USERS = 16
CHANNEL_SIZE = 4
REQUEST_TIMEOUT = 30.0
KEEPALIVE_IDLE = 3.0  # seconds after which a client opens a new connection rather than reuse its own
# Once the load stops, the backlog (outbox, bridge) drains: a message still missing is only
# called lost when deliveries stopped moving for STALL seconds, or after DRAIN in all.
STALL = 30.0
DRAIN = 150.0
FENCE = 30.0  # seconds the fence messages may take
# An api's failed requests are expected from its SIGKILL until it is ready again, plus the
# time an answer in flight takes to fail.
FAILURE_GRACE = 2.0
MAX_RECONNECTS_PER_SOCKET = 4
MAX_SUBSCRIBE_RETRIES_PER_SOCKET = 60
KINDS = (("direct", 0.4), ("channel", 0.2), ("publish", 0.25), ("batch", 0.15))
BATCH = 5  # items per POST /api/publish/batch

# The settings the proof depends on (docs/delivery.md, "Proof"): every token POSTs far over
# the default per-token rate; all sockets come from one address; a topic's history must
# hold whatever it received while a socket was away (the test asserts `recovered: true`);
# a short bridge lease shortens the takeover after the bridge is killed.
SERVICE_ENV = {
    "HERALD_API_POST_RATE": "0",
    "HERALD_HISTORY_SIZE": "20000",
    "HERALD_BRIDGE_LEASE": "2",
    "HERALD_MAX_CONNECTIONS_PER_IP": "10000",
    "HERALD_CONNECT_RATE_PER_IP": "10000",
    "HERALD_CONNECT_BURST_PER_IP": "10000",
}


def user_topic(user: str) -> str:
    return f"messages.user.{user}"


def loss_topic(user: str) -> str:
    return f"loss.{user}"


@dataclass(frozen=True)
class Attempt:
    """One request the load generator sent; ``key`` travels in the message."""

    key: str
    lane: int
    n: int
    topics: tuple[str, ...]  # the topics it must reach once acknowledged


@dataclass
class PhaseStats:
    name: str
    started: float = 0.0
    ended: float = 0.0
    offered: int = 0
    shed: int = 0  # offered while every client was busy: never sent
    sent: int = 0
    accepted: int = 0
    accepted_messages: int = 0  # a batch carries several
    failed: int = 0

    def line(self) -> str:
        secs = max(self.ended - self.started, 1e-9)
        return (
            f"{self.name:<34} {secs:5.1f}s  offered {self.offered / secs:5.0f} req/s  sent {self.sent / secs:5.0f} "
            f"req/s  accepted {self.accepted / secs:5.0f} req/s = {self.accepted_messages / secs:5.0f} msg/s  "
            f"shed {self.shed:6d}  failed {self.failed:5d}"
        )


@dataclass
class Failure:
    at: float
    phase: int  # the phase it was seen in
    api: int
    reason: str
    keys: tuple[str, ...]


@dataclass
class World:
    """Who reads what: users, channels, tokens, and the readers of every topic."""

    users: list[str]
    channel_of: dict[str, str]  # user -> channel id
    members: dict[str, list[str]]  # channel id -> users
    tokens: dict[str, str]
    publisher_token: str

    def topics_of(self, user: str) -> list[str]:
        return [user_topic(user), f"messages.channel.{self.channel_of[user]}", loss_topic(user)]

    def readers(self, topic: str) -> list[str]:
        if topic.startswith("messages.channel."):
            return self.members[topic.removeprefix("messages.channel.")]
        return [topic.split(".")[-1]]

    def belongs(self, user: str, topic: str, data: Any) -> bool:
        """Whether a frame on ``topic`` with ``data`` may reach ``user``'s socket at all."""
        if topic not in self.topics_of(user) or not isinstance(data, dict):
            return False
        if topic == user_topic(user):
            return user in (data.get("senderId"), data.get("recipientId"))
        if topic == loss_topic(user):
            return data.get("to") == user
        return data.get("channelId") == self.channel_of[user]


def key_of(data: Any) -> str | None:
    if isinstance(data, dict):
        key = data.get("content", data.get("key"))
        return key if isinstance(key, str) else None
    return None


@dataclass
class Frame:
    topic: str
    key: str | None
    offset: int
    epoch: str
    data: Any


@dataclass
class Subscriber:
    """One user's socket on its three topics, reconnecting (with ``since``) to a live gateway.

    Nothing is swallowed silently: reconnects (with their cause), subscribe retries after an
    ``internal`` error (the api's membership check unreachable), unrecovered resumptions,
    other error frames and unexpected frames are all counted for the test to bound.
    """

    user: str
    world: World
    gateways: Callable[[], list[str]]
    frames: list[Frame] = field(default_factory=list)
    positions: dict[str, tuple[int, str]] = field(default_factory=dict)  # topic -> (offset, epoch)
    subscribed: set[str] = field(default_factory=set)
    reconnects: list[str] = field(default_factory=list)  # causes
    subscribe_retries: int = 0
    unrecovered: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)  # error frames and frames nobody asked for
    log: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"sub-{self.user}", daemon=True)
        self.thread.start()

    def _subscribe(self, ws: websocket.WebSocket, topic: str) -> None:
        frame: dict[str, Any] = {"type": "subscribe", "topic": topic, "id": topic}
        if topic in self.positions:
            offset, epoch = self.positions[topic]
            frame["since"] = {"offset": offset, "epoch": epoch}
        ws.send(json.dumps(frame))

    def _session(self, url: str) -> None:
        ws = websocket.create_connection(url, timeout=5)
        self.log.append(f"{time.monotonic():.3f} connect {url} after {len(self.frames)} frames")
        self.subscribed.clear()
        resumed: set[str] = set()
        retry_at: dict[str, float] = {}
        try:
            ws.send(json.dumps({"type": "auth", "token": self.world.tokens[self.user]}))
            first = json.loads(ws.recv())
            if first.get("type") != "auth_success":
                self.violations.append(f"auth answered {first}")
                return
            for topic in self.world.topics_of(self.user):
                if topic in self.positions:
                    resumed.add(topic)
                self._subscribe(ws, topic)
            ws.settimeout(0.2)
            while not self.stop.is_set():
                for topic, at in list(retry_at.items()):
                    if time.monotonic() >= at:
                        del retry_at[topic]
                        self._subscribe(ws, topic)
                try:
                    raw = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                if not raw:
                    self.reconnects.append("closed")
                    return
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "message":
                    self.frames.append(
                        Frame(msg["topic"], key_of(msg["data"]), msg["offset"], msg["epoch"], msg["data"])
                    )
                    self.positions[msg["topic"]] = (msg["offset"], msg["epoch"])
                elif kind == "subscribed":
                    self.subscribed.add(msg["topic"])
                    if msg["topic"] in resumed and msg.get("recovered") is not True:
                        self.unrecovered.append(f"{time.monotonic():.3f} {msg}")
                elif (
                    kind == "error"
                    and msg.get("code") == "internal"
                    and msg.get("id") in self.world.topics_of(self.user)
                ):
                    # The membership check found no api (api down or NATS down): retry.
                    self.subscribe_retries += 1
                    retry_at[msg["id"]] = time.monotonic() + 0.5
                else:
                    self.violations.append(f"{time.monotonic():.3f} {msg}")
            ws.close()
        except (OSError, websocket.WebSocketException) as exc:
            self.reconnects.append(type(exc).__name__)
        finally:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                ws.close()

    def _run(self) -> None:
        turn = 0
        while not self.stop.is_set():
            urls = self.gateways()
            url = urls[(hash(self.user) + turn) % len(urls)]
            try:
                self._session(url)
            except (OSError, websocket.WebSocketException) as exc:  # could not connect at all
                self.reconnects.append(f"connect: {type(exc).__name__}")
            if not self.stop.is_set():
                turn += 1
                time.sleep(0.1)


@dataclass
class LoadResult:
    """What the load generator sent and what came of it."""

    attempts: dict[str, Attempt] = field(default_factory=dict)
    accepted: set[str] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)
    counts: dict[int, PhaseStats] = field(default_factory=dict)  # by phase index


class Load:
    """Offers ``rate`` requests/s over ``clients`` lanes, each lane one request at a time, so
    a lane's acknowledged messages have a defined order. An offer that finds every lane busy
    is shed (counted, never sent): the offered rate stays what was asked.

    It runs in a process of its own (:class:`LoadProcess`): in the test process, its busy
    event loop would hold the GIL against the subscriber threads and slow delivery down.
    """

    def __init__(self, world: World, ports: list[int], rate: float, clients: int, phase: Any, stop: Any) -> None:
        self.world = world
        self.ports = ports
        self.rate = rate
        self.clients = clients
        self.result = LoadResult()
        self.attempts = self.result.attempts
        self.accepted = self.result.accepted
        self.failures = self.result.failures
        self._phase = phase  # a shared int: the index of the current phase, set by the test
        self.stop = stop
        self._rng = random.Random(1)

    def _counts(self, index: int) -> PhaseStats:
        return self.result.counts.setdefault(index, PhaseStats(""))

    def _request(self, lane: int, n: int) -> tuple[list[Attempt], str, str, Any, int]:
        """The next request of ``lane``, its messages numbered from ``n``: attempts, path,
        token, body, expected status."""
        key = f"{lane}:{n}"
        kind = self._rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        users = self.world.users
        if kind == "direct":
            sender, recipient = self._rng.sample(users, 2)
            attempt = Attempt(key, lane, n, (user_topic(sender), user_topic(recipient)))
            body: Any = {"content": key, "recipientId": recipient}
            return [attempt], "/api/messages", self.world.tokens[sender], body, 201
        if kind == "channel":
            sender = self._rng.choice(users)
            channel = self.world.channel_of[sender]
            attempt = Attempt(key, lane, n, (user_topic(sender), f"messages.channel.{channel}"))
            body = {"content": key, "channelId": channel}
            return [attempt], "/api/messages", self.world.tokens[sender], body, 201
        if kind == "publish":
            to = self._rng.choice(users)
            body = {"topic": loss_topic(to), "data": {"key": key, "to": to}}
            return [Attempt(key, lane, n, (loss_topic(to),))], "/api/publish", self.world.publisher_token, body, 202
        # A batch: a few users, sometimes one twice (items of one topic keep their order).
        attempts, items = [], []
        for j in range(BATCH):
            to = self._rng.choice(users[:4] if j % 2 else users)
            attempts.append(Attempt(f"{lane}:{n + j}", lane, n + j, (loss_topic(to),)))
            items.append({"topic": loss_topic(to), "data": {"key": f"{lane}:{n + j}", "to": to}})
        return attempts, "/api/publish/batch", self.world.publisher_token, {"items": items}, 202

    async def _send(
        self, lane: int, n: int, api: int, index: int, conn: Connection | None
    ) -> tuple[Connection | None, int]:
        """One request on ``lane``'s connection (opened again if it is gone); returns the
        connection to reuse (None after an error) and how many messages it carried."""
        attempts, path, tok, body, expect = self._request(lane, n)
        keys = tuple(a.key for a in attempts)
        phase = self._counts(index)
        port = self.ports[api]
        raw = post_json("127.0.0.1", port, path, tok, body)
        for attempt in attempts:
            self.attempts[attempt.key] = attempt
        phase.sent += 1
        try:
            if conn is None or conn.closed:
                if conn is not None:
                    conn.close()
                conn = await asyncio.wait_for(Connection.open("127.0.0.1", port), REQUEST_TIMEOUT)
            status, answer = await asyncio.wait_for(conn.request(raw), REQUEST_TIMEOUT)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            if conn is not None:
                conn.close()
            phase.failed += 1
            self.failures.append(Failure(time.monotonic(), self._phase.value, api, type(exc).__name__, keys))
            return None, len(keys)
        if status == expect:
            self.accepted.update(keys)
            phase.accepted += 1
            phase.accepted_messages += len(keys)
        else:
            phase.failed += 1
            reason = f"HTTP {status} {answer[:120]!r}"
            self.failures.append(Failure(time.monotonic(), self._phase.value, api, reason, keys))
        return conn, len(keys)

    async def _lane(self, lane: int, api: int, inbox: asyncio.Queue[int | None], free: asyncio.Queue[int]) -> None:
        """Lane ``lane`` sends to api ``api`` only, so its connection is never idle for long
        (uvicorn closes a keep-alive connection idle for 5 s, racing a request sent on it)."""
        conn: Connection | None = None
        n = 0
        last = time.monotonic()
        while (index := await inbox.get()) is not None:
            if conn is not None and time.monotonic() - last > KEEPALIVE_IDLE:
                conn.close()  # not sent on: the server may be closing it right now
                conn = None
            conn, carried = await self._send(lane, n, api, index, conn)
            last = time.monotonic()
            n += carried
            free.put_nowait(lane)
        if conn is not None:
            conn.close()

    async def main(self) -> None:
        apis = len(self.ports)
        free: list[asyncio.Queue[int]] = [asyncio.Queue() for _ in range(apis)]
        inboxes: list[asyncio.Queue[int | None]] = [asyncio.Queue() for _ in range(self.clients)]
        lanes = [asyncio.create_task(self._lane(i, i % apis, inboxes[i], free[i % apis])) for i in range(self.clients)]
        for i in range(self.clients):
            free[i % apis].put_nowait(i)
        started = time.monotonic()
        offered = 0
        while not self.stop.is_set():
            index = self._phase.value
            phase = self._counts(index)
            due = int((time.monotonic() - started) * self.rate) - offered
            for _ in range(due):
                offered += 1
                phase.offered += 1
                # Round robin over the apis, by offer: each api is offered its share of the rate.
                pool = free[offered % apis]
                if pool.empty():
                    phase.shed += 1
                    continue
                inboxes[pool.get_nowait()].put_nowait(index)
            await asyncio.sleep(0.002)
        for inbox in inboxes:
            inbox.put_nowait(None)
        await asyncio.gather(*lanes)


def run_load(
    world: World, ports: list[int], rate: float, clients: int, phase: Any, ready: Any, stop: Any, out: Any
) -> None:
    """The load process: offer from ``ready`` until ``stop``, then send the
    :class:`LoadResult` on ``out``."""
    load = Load(world, ports, rate, clients, phase, stop)
    ready.set()
    asyncio.run(load.main())
    out.send(load.result)
    out.close()


class LoadProcess:
    """The test's handle on the load process."""

    def __init__(self, world: World, ports: list[int], rate: float, clients: int) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._phase = ctx.RawValue("i", 0)
        self._ready = ctx.Event()
        self._stop = ctx.Event()
        self._results, out = ctx.Pipe(duplex=False)
        args = (world, ports, rate, clients, self._phase, self._ready, self._stop, out)
        self._proc = ctx.Process(target=run_load, args=args, daemon=True)

    def start(self, timeout: float = 60) -> None:
        """Start the process; returns once it offers requests."""
        self._proc.start()
        assert self._ready.wait(timeout), "the load process did not start"

    def set_phase(self, index: int) -> None:
        self._phase.value = index

    def finish(self, timeout: float) -> LoadResult:
        self._stop.set()
        assert self._results.poll(timeout), "the load process did not finish its requests"
        result: LoadResult = self._results.recv()
        self._proc.join(10)
        return result

    def kill(self) -> None:
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(10)


@dataclass
class Fault:
    name: str
    action: Callable[[], None]  # runs at the start of the phase; the phase lasts at least as long
    seconds: float = PHASE


@dataclass
class Outage:
    """When api ``api`` could not answer: from its SIGKILL until it was ready again."""

    api: int
    start: float
    end: float = float("inf")


def account(world: World, subscribers: list[Subscriber], load: LoadResult) -> dict[str, Any]:
    """Compare what each socket holds with what it must hold, and with what it may hold."""
    expected: set[tuple[str, str, str]] = set()
    for key in load.accepted:
        for topic in load.attempts[key].topics:
            expected.update((user, topic, key) for user in world.readers(topic))
    totals: Counter[str] = Counter(expected=len(expected))
    delivered: set[tuple[str, str, str]] = set()
    unacknowledged: set[str] = set()
    problems: list[str] = []
    for sub in subscribers:
        last: dict[str, tuple[int, str]] = {}  # topic -> (offset, epoch)
        lane_last: dict[tuple[str, int], int] = {}  # (topic, lane) -> n
        for i, frame in enumerate(sub.frames):
            if frame.key is not None and frame.key.startswith("fence:"):
                if not world.belongs(sub.user, frame.topic, frame.data):
                    totals["misdelivered"] += 1
                    problems.append(f"{sub.user} #{i}: fence not its own: {frame}")
                continue
            totals["delivered"] += 1
            attempt = load.attempts.get(frame.key) if frame.key is not None else None
            if (
                attempt is None
                or frame.topic not in attempt.topics
                or not world.belongs(sub.user, frame.topic, frame.data)
            ):
                totals["misdelivered"] += 1
                problems.append(f"{sub.user} #{i}: not its own: {frame}")
                continue
            item = (sub.user, frame.topic, attempt.key)
            if item in delivered:
                totals["duplicates"] += 1
                problems.append(f"{sub.user} #{i}: duplicate {frame}")
            delivered.add(item)
            if attempt.key not in load.accepted:
                unacknowledged.add(attempt.key)
            previous = last.get(frame.topic)
            if previous is not None and previous[1] == frame.epoch and frame.offset <= previous[0]:
                totals["reordered"] += 1
                problems.append(f"{sub.user} #{i}: offset {frame.offset} after {previous[0]} on {frame.topic}")
            if previous is not None and previous[1] != frame.epoch:
                totals["epoch_changes"] += 1
            last[frame.topic] = (frame.offset, frame.epoch)
            before = lane_last.get((frame.topic, attempt.lane), -1)
            if attempt.n < before:
                totals["reordered"] += 1
                problems.append(f"{sub.user} #{i}: lane {attempt.lane} #{attempt.n} after #{before} on {frame.topic}")
            lane_last[(frame.topic, attempt.lane)] = max(before, attempt.n)
    totals["lost"] = len(expected - delivered)
    totals["unacknowledged"] = len(unacknowledged)
    failed = {key: f.reason for f in load.failures for key in f.keys}
    refused = [k for k in unacknowledged if k not in failed or failed[k].startswith("HTTP 4")]
    totals["unacknowledged_not_failed"] = len(refused)
    problems.extend(f"delivered, but never sent or refused: {k} ({failed.get(k)})" for k in refused[:20])
    return {"totals": totals, "problems": problems, "missing": sorted(expected - delivered)[:20]}


def stored(nats_url: str) -> str:
    """How many messages the events and topics streams hold now (for the drain's progress)."""

    async def ask() -> str:
        nc = await connect_nats(nats_url.split(","), connect_timeout=2, max_reconnect_attempts=0)
        try:
            js = nc.jetstream()
            events = (await js.stream_info(EVENTS_STREAM)).state.messages
            topics = (await js.stream_info(TOPICS_STREAM)).state.messages
            return f"{events} events, {topics} topic messages stored"
        finally:
            await nc.close()

    try:
        return asyncio.run(ask())
    except Exception as exc:  # diagnostics only: NATS may be restarting
        return f"streams: {type(exc).__name__}"


def setup_world(stack: Stack) -> World:
    """Users in channels of CHANNEL_SIZE, created over REST; tokens for all of them."""
    run = os.urandom(3).hex()
    users = [f"u{i}-{run}" for i in range(USERS)]
    tokens = {u: token(u, topics=[loss_topic(u)]) for u in users}
    channel_of: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for start in range(0, USERS, CHANNEL_SIZE):
        group = users[start : start + CHANNEL_SIZE]
        made = stack.post("/api/channels", {"name": f"loss-{run}-{start}"}, tokens[group[0]])
        assert made.status_code == 201, made.text
        channel = made.json()["id"]
        for member in group[1:]:
            added = httpx.put(
                f"{stack.api_url}/api/channels/{channel}/members/{member}",
                headers={"Authorization": f"Bearer {tokens[group[0]]}"},
                timeout=10,
            )
            assert added.status_code == 204, added.text
        members[channel] = group
        channel_of.update(dict.fromkeys(group, channel))
    return World(users, channel_of, members, tokens, token(f"loss-publisher-{run}", "publisher"))


def send_fences(stack: Stack, world: World) -> None:
    """One message after everything else on every topic of every socket: once a socket has
    its fences, anything stored before them has been delivered to it, or never will be."""
    for i, user in enumerate(world.users):
        peer = world.users[(i + 1) % len(world.users)]
        sent = stack.post("/api/messages", {"content": f"fence:{user}", "recipientId": peer}, world.tokens[user])
        assert sent.status_code == 201, sent.text
        body = {"topic": loss_topic(user), "data": {"key": f"fence:{user}", "to": user}}
        published = stack.post("/api/publish", body, world.publisher_token)
        assert published.status_code == 202, published.text
    for channel, group in world.members.items():
        sent = stack.post(
            "/api/messages", {"content": f"fence:{channel}", "channelId": channel}, world.tokens[group[0]]
        )
        assert sent.status_code == 201, sent.text


def fenced(sub: Subscriber) -> bool:
    seen = {f.topic for f in sub.frames if f.key is not None and f.key.startswith("fence:")}
    return seen >= set(sub.world.topics_of(sub.user))


def scenario_timeout(fault_seconds: list[float]) -> float:
    """What a run may take: start-up, the steady phase, every fault phase (a restart may
    stretch one by up to ~20 s), the longest drain and the fences, with a margin."""
    return 60 + PHASE + sum(s + 20 for s in fault_seconds) + DRAIN + FENCE + 60


def run_scenario(stack: Stack, faults: list[Fault], outages: list[Outage]) -> None:
    """Subscribers, load and faults on ``stack``; fails on any loss, duplicate, reordering or
    foreign frame, and on any tolerated event beyond its bound."""
    world = setup_world(stack)

    def gateway_urls() -> list[str]:
        alive = [g.url for g in stack.gateways if g.service.alive]
        return alive or [stack.gateways[-1].url]

    subscribers = [Subscriber(u, world, gateway_urls) for u in world.users]
    runner = LoadProcess(world, [a.port for a in stack.apis], RATE, CLIENTS)
    try:
        _scenario(stack, world, subscribers, runner, faults, outages)
    finally:  # nothing of a failed run may linger into the next test
        for s in subscribers:
            s.stop.set()
        runner.kill()


def _scenario(
    stack: Stack,
    world: World,
    subscribers: list[Subscriber],
    runner: LoadProcess,
    faults: list[Fault],
    outages: list[Outage],
) -> None:
    for s in subscribers:
        s.start()
    deadline = time.monotonic() + 30
    while any(len(s.subscribed) < 3 for s in subscribers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(len(s.subscribed) == 3 for s in subscribers), [(s.user, s.subscribed, s.violations) for s in subscribers]

    plan = [Fault("steady", lambda: None), *faults]
    phases: list[PhaseStats] = []
    runner.start()
    for i, fault in enumerate(plan):
        phase = PhaseStats(fault.name, started=time.monotonic())
        runner.set_phase(i)
        if phases:
            phases[-1].ended = phase.started
        phases.append(phase)
        fault.action()
        time.sleep(max(0.0, phase.started + fault.seconds - time.monotonic()))
    phases[-1].ended = time.monotonic()
    load = runner.finish(REQUEST_TIMEOUT + 10)
    load_ended = time.monotonic()
    for i, phase in enumerate(phases):
        counts = load.counts.get(i, PhaseStats(""))
        phase.offered, phase.shed, phase.sent = counts.offered, counts.shed, counts.sent
        phase.accepted, phase.accepted_messages, phase.failed = counts.accepted, counts.accepted_messages, counts.failed

    deadline = time.monotonic() + DRAIN
    result = account(world, subscribers, load)
    moved, delivered = time.monotonic(), result["totals"]["delivered"]
    progress: list[str] = []
    while result["totals"]["lost"] and time.monotonic() < min(deadline, moved + STALL):
        time.sleep(0.5)
        result = account(world, subscribers, load)
        if result["totals"]["delivered"] > delivered:
            moved, delivered = time.monotonic(), result["totals"]["delivered"]
        if len(progress) < (time.monotonic() - load_ended) // 5:
            progress.append(
                f"+{time.monotonic() - load_ended:.0f}s: {result['totals']['lost']} to go, {stored(stack.nats.url)}"
            )
    drained = time.monotonic() - load_ended
    send_fences(stack, world)
    deadline = time.monotonic() + FENCE
    while not all(fenced(s) for s in subscribers) and time.monotonic() < deadline:
        time.sleep(0.1)
    for s in subscribers:
        s.stop.set()
    for s in subscribers:
        assert s.thread is not None
        s.thread.join(10)
    result = account(world, subscribers, load)
    totals = result["totals"]

    reasons = Counter(f"api {f.api} in '{phases[f.phase].name}': {f.reason.split(' b')[0]}" for f in load.failures)
    unexplained = [
        f
        for f in load.failures
        if not any(o.api == f.api and o.start <= f.at <= o.end + FAILURE_GRACE for o in outages)
    ]
    reconnects = Counter(c for s in subscribers for c in s.reconnects)
    print(f"\nrate offered {RATE:.0f}/s over {CLIENTS} clients to {len(stack.apis)} api(s)")
    print("\n".join(p.line() for p in phases))
    print(
        f"requests sent {sum(p.sent for p in phases)}, messages acknowledged {len(load.accepted)}, "
        f"failed {len(load.failures)} {dict(reasons)}; drained {drained:.1f}s after the load {progress}\n"
        f"expected deliveries {totals['expected']}, delivered {totals['delivered']}, lost {totals['lost']}, "
        f"duplicates {totals['duplicates']}, reordered {totals['reordered']}, not its own {totals['misdelivered']}, "
        f"delivered-but-unacknowledged {totals['unacknowledged']}, epoch changes {totals['epoch_changes']}\n"
        f"reconnects {sum(reconnects.values())} {dict(reconnects)}, "
        f"subscribe retries {sum(s.subscribe_retries for s in subscribers)}, "
        f"unrecovered {sum(len(s.unrecovered) for s in subscribers)}, "
        f"error or unexpected frames {sum(len(s.violations) for s in subscribers)}"
    )
    problems = result["problems"][:20]
    assert all(fenced(s) for s in subscribers), [s.user for s in subscribers if not fenced(s)]
    assert load.accepted, "nothing was acknowledged"
    assert totals["misdelivered"] == 0, problems
    assert totals["lost"] == 0, (result["missing"], stack.logs()[-6000:])
    assert totals["duplicates"] == 0, problems
    assert totals["reordered"] == 0, problems
    assert totals["epoch_changes"] == 0, problems
    assert totals["unacknowledged_not_failed"] == 0, problems
    assert totals["unacknowledged"] <= sum(len(f.keys) for f in load.failures)
    assert not unexplained, f"{len(unexplained)} requests failed while every api was up: {unexplained[:10]}"
    assert [v for s in subscribers for v in s.violations] == []
    assert [u for s in subscribers for u in s.unrecovered] == []
    assert max(len(s.reconnects) for s in subscribers) <= MAX_RECONNECTS_PER_SOCKET, [s.log for s in subscribers]
    assert max(s.subscribe_retries for s in subscribers) <= MAX_SUBSCRIBE_RETRIES_PER_SOCKET


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, int]:
    """The database URL and how many api processes share it: SQLite with one api, or a
    fresh PostgreSQL database with two (two outbox relays racing over one outbox)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'herald.db'}", 1
    return fresh_database(request.getfixturevalue("postgres_url")), 2


@contextlib.contextmanager
def running_stack(nats: NatsServer | NatsCluster, root: Path, apis: int, env: dict[str, str]) -> Iterator[Stack]:
    stack = Stack(nats=nats, root=root)
    try:
        for i in range(apis):
            stack.start_api_process(i, env)
        stack.start_bridge(**env)
        stack.start_gateway(**env)
        stack.start_gateway(**env)
        yield stack
    finally:
        stack.stop()


def sigkill_and_restart_api(stack: Stack, index: int, env: dict[str, str], outages: list[Outage]) -> None:
    outage = Outage(index, time.monotonic())
    outages.append(outage)
    stack.apis[index].service.kill()
    stack.start_api_process(index, env)
    outage.end = time.monotonic()


STOPPED = 5.0  # seconds NATS stays stopped
MAIN_FAULT_SECONDS = [PHASE, PHASE, PHASE, PHASE, PHASE + STOPPED]
NODE_FAULT_SECONDS = 2 * PHASE


@pytest.mark.timeout(scenario_timeout(MAIN_FAULT_SECONDS))
def test_no_acknowledged_message_is_lost_through_failures(tmp_path: Path, database: tuple[str, int]) -> None:
    url, apis = database
    env = {**SERVICE_ENV, "HERALD_DATABASE_URL": url}
    outages: list[Outage] = []
    with running_nats() as nats, running_stack(nats, tmp_path, apis, env) as stack:

        def kill_gateway() -> None:
            stack.gateways[0].service.kill()
            time.sleep(1)
            stack.start_gateway(**env)

        def kill_bridge() -> None:
            assert stack.bridge is not None
            stack.bridge.kill()
            stack.start_bridge(**env)

        def kill_nats() -> None:
            nats.kill()
            nats.start()

        def stop_nats() -> None:
            nats.stop()
            time.sleep(STOPPED)
            nats.start()

        actions = [
            ("SIGKILL gateway 0, start gateway 2", kill_gateway),
            ("SIGKILL + restart bridge", kill_bridge),
            ("SIGKILL + restart api 0", lambda: sigkill_and_restart_api(stack, 0, env, outages)),
            ("SIGKILL + restart nats-server", kill_nats),
            (f"NATS stopped {STOPPED:.0f} s", stop_nats),
        ]
        faults = [Fault(name, act, secs) for (name, act), secs in zip(actions, MAIN_FAULT_SECONDS, strict=True)]
        run_scenario(stack, faults, outages)


@pytest.mark.timeout(scenario_timeout([NODE_FAULT_SECONDS]))
def test_no_loss_when_a_cluster_node_dies(tmp_path: Path, database: tuple[str, int]) -> None:
    url, apis = database
    env = {**SERVICE_ENV, "HERALD_DATABASE_URL": url, "HERALD_NATS_REPLICAS": "3"}
    cluster = NatsCluster()
    cluster.start()
    try:
        with running_stack(cluster, tmp_path, apis, env) as stack:
            run_scenario(stack, [Fault("SIGKILL NATS node 0", lambda: cluster.kill_node(0), NODE_FAULT_SECONDS)], [])
    finally:
        cluster.cleanup()
