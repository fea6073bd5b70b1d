"""A rolling restart of two gateways sharing one port (SO_REUSEPORT) under 500 msg/s,
with 200 SDK clients: every client gets every message of its topic once, in order."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from herald_client import Client, ClientState
from tests.clients.support import Collector, account, publish_load, start_gateway, wait_for
from tests.support.procs import Service, free_port
from tests.support.stack import Stack, token

pytestmark = pytest.mark.integration

CLIENTS = 200
TOPICS = 50
RATE = 500.0
SECONDS = 12.0


def restart(stack: Stack, old: Service, port: int, metrics: int) -> Service:
    """SIGTERM (clients get 1001 and move to the other gateway), then start it again on the port."""
    old.signal(signal.SIGTERM)
    assert old.proc is not None
    old.proc.wait(15)
    return start_gateway(stack, port, metrics, HERALD_GATEWAY_REUSE_PORT="true")


async def test_rolling_restart_of_two_gateways_on_one_port_loses_nothing(stack: Stack) -> None:
    port = free_port()
    metrics = [free_port(), free_port()]
    gateways = [start_gateway(stack, port, m, HERALD_GATEWAY_REUSE_PORT="true") for m in metrics]
    topics = [f"roll.t{i}" for i in range(TOPICS)]
    clients = [
        Client(
            f"ws://127.0.0.1:{port}/ws",
            token=token(f"roller{k}", topics=["roll.**"]),
            reconnect_min=0.2,
            reconnect_max=2.0,
            connect_timeout=30,
        )
        for k in range(CLIENTS)
    ]
    collectors: list[Collector] = []
    try:
        for chunk in range(0, CLIENTS, 50):
            await asyncio.gather(*(c.connect() for c in clients[chunk : chunk + 50]))
        subs = await asyncio.gather(*(c.subscribe(topics[k % TOPICS]) for k, c in enumerate(clients)))
        collectors = [Collector(s).start() for s in subs]
        started = time.monotonic()
        load = asyncio.create_task(publish_load(stack, topics, rate=RATE, seconds=SECONDS))
        await asyncio.sleep(2.0)
        gateways[0] = await asyncio.to_thread(restart, stack, gateways[0], port, metrics[0])
        await asyncio.sleep(1.0)
        gateways[1] = await asyncio.to_thread(restart, stack, gateways[1], port, metrics[1])
        expected = await load
        offered = sum(map(len, expected.values())) / (time.monotonic() - started)
        wanted = [{topics[k % TOPICS]: expected[topics[k % TOPICS]]} for k in range(CLIENTS)]
        await wait_for(collectors, wanted, timeout=30)
        totals = {"lost": 0, "duplicated": 0, "reordered": 0, "foreign": 0}
        for collector, want in zip(collectors, wanted, strict=True):
            for key, value in account(collector.got, want).items():
                totals[key] += value
        print(f"published {sum(map(len, expected.values()))} messages at {offered:.0f} msg/s; {totals}")
        assert totals == {"lost": 0, "duplicated": 0, "reordered": 0, "foreign": 0}
        assert all(dict(c.got) == w for c, w in zip(collectors, wanted, strict=True))
        assert sum(map(len, expected.values())) >= RATE * SECONDS * 0.8
        # Both gateways went away once: every client was closed with 1001 at least once and came back.
        assert all(1001 in c.close_codes for c in clients), [
            c.close_codes for c in clients if 1001 not in c.close_codes
        ]
        assert all(c.connections >= 2 and c.state is ClientState.CONNECTED for c in clients)
        assert all(c.sub.recovered is True and not c.sub.gaps for c in collectors)
    except BaseException:
        for g in gateways:
            print(g.logs()[-2000:])
        raise
    finally:
        for c in collectors:
            c.stop()
        await asyncio.gather(*(c.close() for c in clients))
        for g in gateways:
            g.stop()
