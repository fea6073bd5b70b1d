"""Per-IP limits behind a reverse proxy: a real gateway, raw handshakes with X-Forwarded-For.

This test plays the proxy: its sockets come from 127.0.0.1 and carry the header a proxy
would add. With 127.0.0.1 trusted, each forwarded client has limits of its own; when the
peer is not trusted, the header changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from herald_common.errors import CloseCode
from tests.support.procs import NatsServer, Service, gateway_process
from tests.support.rawws import OP_CLOSE, OP_TEXT, RawClient, frame
from tests.support.stack import SECRET, token

pytestmark = pytest.mark.integration

MAX_PER_IP = 2
BURST_PER_IP = 3
ALICE = "203.0.113.1"
BOB = "203.0.113.2"


@dataclass
class Gateway:
    service: Service
    port: int


@pytest.fixture
def trusted() -> str:
    return "127.0.0.1"


@pytest.fixture
def gateway(nats_server: NatsServer, tmp_path: Path, trusted: str) -> Iterator[Gateway]:
    settings = {
        "HERALD_TRUSTED_PROXIES": trusted,
        "HERALD_MAX_CONNECTIONS_PER_IP": str(MAX_PER_IP),
        # Slow enough that nothing refills during the test.
        "HERALD_CONNECT_RATE_PER_IP": "0.001",
        "HERALD_CONNECT_BURST_PER_IP": str(BURST_PER_IP),
        "HERALD_AUTH_TIMEOUT": "30",
    }
    with gateway_process(nats_server.url, tmp_path, SECRET, **settings) as gw:
        yield Gateway(gw.service, gw.port)


async def handshake(port: int, *forwarded_for: str) -> tuple[int, RawClient]:
    """Open a socket from 127.0.0.1 and send an upgrade carrying these X-Forwarded-For headers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /ws HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"X-Forwarded-For: {value}" for value in forwarded_for),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return int(head.split(b" ", 2)[1]), RawClient(reader, writer)


async def admitted(port: int, *forwarded_for: str) -> RawClient:
    """A socket that got past every per-IP limit: upgraded and answering ``auth``."""
    status, client = await handshake(port, *forwarded_for)
    assert status == 101
    await client.send_raw(frame(OP_TEXT, json.dumps({"type": "auth", "token": token("u")}).encode()))
    opcode, payload = await client.read_frame()
    assert opcode == OP_TEXT and json.loads(payload)["type"] == "auth_success", payload
    return client


async def close_code(client: RawClient) -> int:
    opcode, payload = await client.read_frame()
    assert opcode == OP_CLOSE
    return int(struct.unpack("!H", payload[:2])[0])


async def test_each_forwarded_client_has_its_own_limits(gateway: Gateway) -> None:
    port = gateway.port
    alice = [await admitted(port, ALICE) for _ in range(MAX_PER_IP)]
    # Bob is behind the same proxy (same peer address) and still gets his own slots, and
    # one of his sockets names him in two headers (a proxy chain that split them).
    bob = [await admitted(port, BOB), await admitted(port, "198.51.100.9", f"{BOB}, 127.0.0.1")]

    # Alice's third socket is over her connection limit; a spoofed prefix does not help.
    status, third = await handshake(port, f"{BOB}, {ALICE}")
    assert status == 101
    assert await close_code(third) == int(CloseCode.POLICY_LIMIT)
    # That was her third handshake of a burst of three: the fourth is refused before the upgrade.
    status, fourth = await handshake(port, ALICE)
    assert status == 429
    await fourth.close()

    # The proxy's own sockets (no header) count as 127.0.0.1, apart from its clients.
    status, own = await handshake(port)
    assert status == 101
    await own.close()

    for client in [*alice, *bob, third]:
        await client.close()


@pytest.mark.parametrize("trusted", ["192.0.2.1, 2001:db8::/32"])
async def test_an_untrusted_peer_is_counted_as_itself(gateway: Gateway) -> None:
    port = gateway.port
    held = [await admitted(port, ALICE), await admitted(port, BOB)]
    # A third client name changes nothing: every socket here counts as 127.0.0.1.
    status, third = await handshake(port, "203.0.113.3")
    assert status == 101
    assert await close_code(third) == int(CloseCode.POLICY_LIMIT)
    status, fourth = await handshake(port, "203.0.113.4")
    assert status == 429
    for client in [*held, third, fourth]:
        await client.close()
