"""A flush of Herald's NATS client covers every command sent before it.

The services rely on it: a gateway tells a client ``subscribed`` once the flush after its
``SUB`` returns, and an api asks a queue group right after a responder's flush. What goes
over the wire is recorded by a proxy in front of a real nats-server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from herald_common.natsclient import HeraldNatsClient


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bytearray | None) -> None:
    try:
        while data := await reader.read(65536):
            if record is not None:
                record += data
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def recorded(nats_url: str) -> AsyncIterator[tuple[str, bytearray]]:
    """A loopback proxy to the server and the bytes its clients sent through it."""
    server = urlsplit(nats_url)
    sent = bytearray()
    pipes: set[asyncio.Task[None]] = set()

    async def on_client(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        assert server.hostname is not None and server.port is not None
        server_reader, server_writer = await asyncio.open_connection(server.hostname, server.port)
        for task in (
            asyncio.create_task(_pipe(client_reader, server_writer, sent)),
            asyncio.create_task(_pipe(server_reader, client_writer, None)),
        ):
            pipes.add(task)

    proxy = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    try:
        yield f"nats://127.0.0.1:{port}", sent
    finally:
        proxy.close()
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        await proxy.wait_closed()


async def test_the_ping_of_a_flush_follows_the_subscription_before_it(recorded: tuple[str, bytearray]) -> None:
    url, sent = recorded
    nc = HeraldNatsClient()
    await nc.connect(url, allow_reconnect=False)
    try:
        for n in range(20):
            mark = len(sent)
            await nc.subscribe(f"order.{n}", cb=_ignore)
            await nc.publish(f"order.{n}", b"x")
            await nc.flush(timeout=5)
            wire = bytes(sent[mark:])
            assert wire.index(b"SUB order.%d " % n) < wire.index(b"PUB order.%d " % n) < wire.index(b"PING\r\n"), wire
    finally:
        await nc.close()


async def test_a_flush_still_waits_for_its_pong(recorded: tuple[str, bytearray]) -> None:
    """Each flush returns on a PONG of its own: after twenty, the server has answered twenty
    PINGs and nothing is left waiting."""
    url, sent = recorded
    nc = HeraldNatsClient()
    await nc.connect(url, allow_reconnect=False)
    try:
        mark = len(sent)
        await asyncio.gather(*(nc.flush(timeout=5) for _ in range(20)))
        assert bytes(sent[mark:]).count(b"PING\r\n") == 20
        assert nc._pongs == [] and nc._pongs_received >= 20
    finally:
        await nc.close()


async def _ignore(_msg: object) -> None:
    return None
