"""Counting every message while the system is being broken on purpose.

Producers POST at a steady rate; subscribers (one per user topic, spread over gateways)
record every frame. Meanwhile, in turn: a gateway is SIGKILLed (its clients reconnect to
another one with `since`), the bridge is SIGKILLed and restarted, the api is restarted,
and NATS is stopped for 5 s and started again. A separate test kills one node of a 3-node
JetStream cluster (replicas 3). Every subscriber must end with every acknowledged message
of its topic exactly once and in order.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websocket

from tests.support.procs import NatsCluster, NatsServer
from tests.support.stack import Stack, token

pytestmark = pytest.mark.integration

MESSAGES = int(os.environ.get("LOSS_TEST_MESSAGES") or 10_000)
USERS = 16
PRODUCERS = 4
RATE = 250.0  # POST/s, all producers together

SERVICE_ENV = {
    "HERALD_API_POST_RATE": "0",
    "HERALD_HISTORY_SIZE": "20000",
    "HERALD_BRIDGE_LEASE": "2",
    "HERALD_MAX_CONNECTIONS_PER_IP": "10000",
    "HERALD_CONNECT_RATE_PER_IP": "10000",
    "HERALD_CONNECT_BURST_PER_IP": "10000",
}


@dataclass
class Subscriber:
    """One user's socket, reconnecting (with `since`) to whichever gateway is up."""

    user: str
    gateways: Callable[[], list[str]]
    received: list[tuple[str, int]] = field(default_factory=list)  # (message id, offset)
    times: list[float] = field(default_factory=list)  # when each message arrived
    log: list[str] = field(default_factory=list)  # what happened to this socket, for diagnosis
    offset: int | None = None
    epoch: str | None = None
    reconnects: int = 0
    unrecovered: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"sub-{self.user}", daemon=True)
        self.thread.start()

    def _session(self, url: str) -> None:
        ws = websocket.create_connection(url, timeout=5)
        self.log.append(f"{time.monotonic():.3f} connect {url} after #{len(self.received)} offset {self.offset}")
        try:
            ws.send(json.dumps({"type": "auth", "token": token(self.user)}))
            assert json.loads(ws.recv())["type"] == "auth_success"
            frame: dict[str, Any] = {"type": "subscribe", "topic": f"messages.user.{self.user}"}
            if self.offset is not None and self.epoch is not None:
                frame["since"] = {"offset": self.offset, "epoch": self.epoch}
            ws.send(json.dumps(frame))
            ws.settimeout(1)
            while not self.stop.is_set():
                try:
                    raw = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                if not raw:
                    return
                msg = json.loads(raw)
                if msg["type"] == "subscribed":
                    self.log.append(f"{time.monotonic():.3f} {msg}")
                    if "since" in frame and msg.get("recovered") is not True:
                        self.unrecovered += 1
                elif msg["type"] == "message":
                    self.received.append((msg["data"]["id"], msg["offset"]))
                    self.times.append(time.monotonic())
                    self.offset, self.epoch = msg["offset"], msg["epoch"]
                elif msg["type"] == "error":
                    raise ConnectionError(f"error frame: {msg}")
                else:
                    self.log.append(f"{time.monotonic():.3f} {msg}")
        finally:
            ws.close()

    def _run(self) -> None:
        turn = 0
        while not self.stop.is_set():
            urls = self.gateways()
            url = urls[(hash(self.user) + turn) % len(urls)]
            with contextlib.suppress(
                OSError, websocket.WebSocketException, ConnectionError, AssertionError, ValueError
            ):
                self._session(url)
            if not self.stop.is_set():
                self.reconnects += 1
                turn += 1
                time.sleep(0.1)


@dataclass
class Ledger:
    attempts: int = 0
    acknowledged: list[tuple[int, int, str, str, str]] = field(default_factory=list)  # (producer, n, id, from, to)
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def produce(stack: Stack, users: list[str], producer: int, count: int, ledger: Ledger) -> None:
    rng = random.Random(producer)
    interval = PRODUCERS / RATE
    next_at = time.monotonic()
    with httpx.Client(timeout=5) as http:
        n = 0
        while n < count:
            sender, recipient = rng.sample(users, 2)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with ledger.lock:
                ledger.attempts += 1
            try:
                resp = http.post(
                    f"{stack.api_url}/api/messages",
                    json={"content": f"p{producer}:{n}", "recipientId": recipient},
                    headers={"Authorization": f"Bearer {token(sender)}"},
                )
            except httpx.HTTPError:
                resp = None
            if resp is None or resp.status_code != 201:
                with ledger.lock:
                    ledger.failures += 1
                time.sleep(0.05)
                continue  # not acknowledged: the next attempt is a new message
            with ledger.lock:
                ledger.acknowledged.append((producer, n, resp.json()["id"], sender, recipient))
            n += 1


def anomalies(subscribers: list[Subscriber]) -> list[str]:
    """Where duplicates or reorderings happened, with each socket's history, for diagnosis."""
    out = []
    for sub in subscribers:
        seen: dict[str, int] = {}
        for i, (mid, off) in enumerate(sub.received):
            earlier = seen.get(mid)
            if earlier is not None or (i and off <= sub.received[i - 1][1]):
                out.append(
                    f"{sub.user}: #{i} {mid} offset {off} (previous #{i - 1} offset {sub.received[i - 1][1]}, "
                    f"first seen #{earlier} at {sub.times[earlier] if earlier is not None else '-'}, "
                    f"now at {sub.times[i]:.3f}); socket log: {sub.log}"
                )
            seen.setdefault(mid, i)
    return out


def account(subscribers: list[Subscriber], ledger: Ledger) -> dict[str, int]:
    """Compare what each subscriber holds with what it must hold."""
    position = {mid: (p, n) for p, n, mid, _, _ in ledger.acknowledged}
    totals = {"delivered": 0, "duplicates": 0, "lost": 0, "reordered": 0, "unacknowledged": 0, "expected": 0}
    for sub in subscribers:
        expected = {mid for _, _, mid, s, r in ledger.acknowledged if sub.user in (s, r)}
        ids = [mid for mid, _ in sub.received]
        totals["expected"] += len(expected)
        totals["delivered"] += len(ids)
        totals["duplicates"] += len(ids) - len(set(ids))
        totals["lost"] += len(expected - set(ids))
        totals["unacknowledged"] += len(set(ids) - expected)
        offsets = [off for _, off in sub.received]
        last_n: dict[int, int] = {}
        for i, mid in enumerate(ids):
            if i and offsets[i] <= offsets[i - 1]:
                totals["reordered"] += 1
            if mid in position:
                p, n = position[mid]
                if n < last_n.get(p, -1):
                    totals["reordered"] += 1
                last_n[p] = max(n, last_n.get(p, -1))
    return totals


def run_scenario(stack: Stack, chaos: list[tuple[float, str, Callable[[], None]]], messages: int) -> None:
    users = [f"u{i}-{os.getpid()}" for i in range(USERS)]

    def gateway_urls() -> list[str]:
        alive = [g.url for g in stack.gateways if g.service.proc is not None and g.service.proc.poll() is None]
        return alive or [stack.gateways[-1].url]

    subscribers = [Subscriber(u, gateway_urls) for u in users]
    for s in subscribers:
        s.start()
    time.sleep(1.5)  # let every socket subscribe before the first POST
    ledger = Ledger()
    producers = [
        threading.Thread(target=produce, args=(stack, users, p, messages // PRODUCERS, ledger), daemon=True)
        for p in range(PRODUCERS)
    ]
    started = time.monotonic()
    for t in producers:
        t.start()
    events: list[str] = []
    for at, name, action in chaos:
        time.sleep(max(0.0, started + at - time.monotonic()))
        action()
        events.append(f"{time.monotonic() - started:5.1f}s {name}")
    for t in producers:
        t.join(timeout=300)
    sent_for = time.monotonic() - started

    deadline = time.monotonic() + 90
    totals = account(subscribers, ledger)
    while totals["lost"] and time.monotonic() < deadline:
        time.sleep(1)
        totals = account(subscribers, ledger)
    time.sleep(1)  # anything late would be a duplicate: give it a chance to show
    for s in subscribers:
        s.stop.set()
    totals = account(subscribers, ledger)
    print("\nchaos:\n  " + "\n  ".join(events))
    print(
        f"sent {ledger.attempts} (failed {ledger.failures}), acknowledged {len(ledger.acknowledged)} "
        f"in {sent_for:.1f}s; expected deliveries {totals['expected']}, delivered {totals['delivered']}, "
        f"duplicates {totals['duplicates']}, lost {totals['lost']}, reordered {totals['reordered']}, "
        f"unacknowledged-but-delivered {totals['unacknowledged']}; "
        f"reconnects {sum(s.reconnects for s in subscribers)}, "
        f"unrecovered {sum(s.unrecovered for s in subscribers)}"
    )
    assert messages >= PRODUCERS
    assert len(ledger.acknowledged) == messages // PRODUCERS * PRODUCERS
    assert totals["expected"] == 2 * len(ledger.acknowledged)
    assert totals["lost"] == 0, stack.logs()[-6000:]
    assert totals["duplicates"] == 0, anomalies(subscribers)
    assert totals["reordered"] == 0, anomalies(subscribers)
    assert sum(s.unrecovered for s in subscribers) == 0


def test_no_acknowledged_message_is_lost_through_failures(nats_server: NatsServer, tmp_path: Path) -> None:
    stack = Stack(nats=nats_server, root=tmp_path)
    try:
        stack.start_api(**SERVICE_ENV)
        stack.start_bridge(**SERVICE_ENV)
        stack.start_gateway(**SERVICE_ENV)
        stack.start_gateway(**SERVICE_ENV)

        def kill_gateway() -> None:
            stack.gateways[0].service.signal(signal.SIGKILL)

        def replace_gateway() -> None:
            stack.start_gateway(**SERVICE_ENV)

        def kill_bridge() -> None:
            assert stack.bridge is not None
            stack.bridge.signal(signal.SIGKILL)
            assert stack.bridge.proc is not None
            stack.bridge.proc.wait(5)
            stack.start_bridge(**SERVICE_ENV)

        def restart_api() -> None:
            assert stack.api is not None
            assert stack.api.stop() == 0
            stack.start_api(**SERVICE_ENV)

        duration = MESSAGES / RATE
        chaos = [
            (duration * 0.10, "SIGKILL gateway 0", kill_gateway),
            (duration * 0.18, "start gateway 2", replace_gateway),
            (duration * 0.30, "SIGKILL + restart bridge", kill_bridge),
            (duration * 0.45, "restart api (SIGTERM)", restart_api),
            (duration * 0.60, "stop NATS", nats_server.stop),
            (duration * 0.60 + 5, "start NATS", nats_server.start),
        ]
        run_scenario(stack, chaos, MESSAGES)
    finally:
        stack.stop()


def test_no_loss_when_a_cluster_node_dies(tmp_path: Path) -> None:
    cluster = NatsCluster()
    cluster.start()
    stack = Stack(nats=cluster, root=tmp_path)
    env = {**SERVICE_ENV, "HERALD_NATS_REPLICAS": "3"}
    try:
        stack.start_api(**env)
        stack.start_bridge(**env)
        stack.start_gateway(**env)
        stack.start_gateway(**env)
        messages = MESSAGES // 4
        chaos = [(messages / RATE * 0.4, "SIGKILL NATS node 0", lambda: cluster.kill_node(0))]
        run_scenario(stack, chaos, messages)
    finally:
        stack.stop()
        cluster.cleanup()
