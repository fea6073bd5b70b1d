"""One keepalive task for all connections: pings on schedule, unanswered ones failed with 1011."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from collections.abc import Awaitable
from pathlib import Path

import pytest
import websockets

from herald_gateway.keepalive import Keepalive, Schedule
from tests.support.procs import NatsServer, gateway_process
from tests.support.rawws import OP_CLOSE, OP_PING, OP_TEXT, RawClient, frame
from tests.support.stack import SECRET, token


class FakeConn:
    def __init__(self, name: str) -> None:
        self.name = name
        self.open = True
        self.pings: list[asyncio.Future[float]] = []
        self.failed: list[tuple[int, str]] = []

    async def ping(self) -> Awaitable[float]:
        pong: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.pings.append(pong)
        return pong

    async def fail(self, code: int, reason: str) -> None:
        self.failed.append((code, reason))
        self.open = False

    def __repr__(self) -> str:
        return self.name


async def test_schedule_pings_one_interval_after_open_and_after_each_ping() -> None:
    loop = asyncio.get_running_loop()
    a, b = FakeConn("a"), FakeConn("b")
    schedule: Schedule[FakeConn] = Schedule(interval=10.0, timeout=5.0)
    schedule.add(a, now=0.0)
    schedule.add(b, now=3.0)
    assert schedule.due(9.9) == []
    assert schedule.due(10.0) == [a]
    pong: asyncio.Future[float] = loop.create_future()
    schedule.sent(a, 10.0, pong)
    pong.set_result(0.001)
    schedule.answered()
    assert schedule.due(13.0) == [b]
    assert schedule.due(19.9) == []
    assert schedule.due(20.0) == [a]  # one interval after its last ping


async def test_schedule_reports_a_missing_pong_at_its_deadline_only() -> None:
    loop = asyncio.get_running_loop()
    a = FakeConn("a")
    schedule: Schedule[FakeConn] = Schedule(interval=10.0, timeout=5.0)
    silent: asyncio.Future[float] = loop.create_future()
    schedule.sent(a, 10.0, silent)
    assert schedule.expired(14.9) == []
    assert schedule.expired(15.0) == [a]
    assert silent.cancelled()
    assert len(schedule) == 0  # not scheduled again


def test_the_schedule_does_not_keep_connections_alive() -> None:
    schedule: Schedule[FakeConn] = Schedule(interval=10.0, timeout=5.0)
    kept, dropped = FakeConn("kept"), FakeConn("dropped")
    schedule.add(dropped, now=0.0)
    schedule.add(kept, now=0.0)
    ref = weakref.ref(dropped)
    del dropped
    gc.collect()
    assert ref() is None  # nothing but the schedule referred to it
    assert schedule.due(10.0) == [kept]


async def test_a_connection_that_closed_is_forgotten() -> None:
    keepalive = Keepalive(interval=1.0, timeout=1.0)
    conn = FakeConn("gone")
    keepalive.add(conn)
    conn.open = False
    await keepalive.tick(asyncio.get_running_loop().time() + 1.0)
    assert conn.pings == [] and len(keepalive.schedule) == 0


async def settle() -> None:
    for _ in range(3):  # the ping and failing tasks a tick started run
        await asyncio.sleep(0)


class StalledConn(FakeConn):
    """A client that stopped reading: sending it a ping waits for its socket to drain."""

    async def ping(self) -> Awaitable[float]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_tick_pings_due_connections_and_fails_the_silent_ones() -> None:
    keepalive = Keepalive(interval=1.0, timeout=0.5)
    stalled, answers, silent = StalledConn("stalled"), FakeConn("answers"), FakeConn("silent")
    for conn in (stalled, answers, silent):
        keepalive.add(conn)
    t0 = asyncio.get_running_loop().time()
    await keepalive.tick(t0 + 1.0)
    await settle()
    assert len(answers.pings) == 1 and len(silent.pings) == 1  # not held up by the stalled one
    answers.pings[0].set_result(0.001)
    await keepalive.tick(t0 + 1.5)
    await settle()
    assert silent.failed == [(1011, "keepalive ping timeout")] and answers.failed == []
    assert keepalive.timeouts == 1
    await keepalive.tick(t0 + 2.0)
    await settle()
    assert len(answers.pings) == 2 and len(silent.pings) == 1
    await keepalive.close()  # also ends the stalled ping


@pytest.mark.integration
@pytest.mark.timeout(60)
async def test_a_real_gateway_keeps_answering_clients_and_fails_a_silent_one(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    with gateway_process(nats_server.url, tmp_path, SECRET, HERALD_PING_INTERVAL="0.5") as gw:
        silent = await RawClient.connect("127.0.0.1", gw.port)  # reads, but never answers a ping
        await silent.send_raw(frame(OP_TEXT, json.dumps({"type": "auth", "token": token("silent")}).encode()))
        async with websockets.connect(gw.ws_url) as polite:  # answers pings by itself
            await polite.send(json.dumps({"type": "auth", "token": token("polite", topics=["a.**"])}))
            assert json.loads(await polite.recv())["type"] == "auth_success"
            opcodes: list[int] = []
            code = None
            try:
                while True:
                    opcode, data = await silent.read_frame(timeout=10)
                    opcodes.append(opcode)
                    if opcode == OP_CLOSE:
                        code = int.from_bytes(data[:2], "big")
                        break
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            assert OP_PING in opcodes
            assert code == 1011
            await asyncio.sleep(1.5)  # three more intervals: the polite client is still served
            await polite.send(json.dumps({"type": "subscribe", "topic": "a.b"}))
            assert json.loads(await polite.recv())["type"] == "subscribed"
        await silent.close()
