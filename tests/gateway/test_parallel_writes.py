"""Large flushes written from two threads with raw writes: same bytes, same order, nothing lost.

Real socket pairs stand in for the clients' sockets; the transport is a recorder that
also hands out its socket, as uvloop's and asyncio's TCP transports do.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from herald_gateway.connection import ClientConnection, raw_fd
from herald_gateway.fanout import Outbox, ParallelWriter, fan_out, text_frame, write_raw
from tests.gateway.fakes import FakeProtocol, FakeTransport
from tests.gateway.helpers import T0, authed, text

PAYLOAD = b'{"type":"message","topic":"news.a","data":1,"offset":7,"epoch":"e"}'

Pairs = list[tuple[socket.socket, socket.socket]]


@dataclass
class SocketTransport(FakeTransport):
    """Records ``write`` like the fake, and exposes a real socket for raw writes."""

    sock: socket.socket | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self.sock
        return self.extra.get(name, default)


@dataclass
class SocketWebSocket:
    transport: SocketTransport
    protocol: FakeProtocol = field(default_factory=FakeProtocol)
    close_timeout: float = 0.01


@pytest.fixture
def pairs() -> Iterator[Pairs]:
    made: Pairs = []
    yield made
    for a, b in made:
        a.close()
        b.close()


def pair(
    made: list[tuple[socket.socket, socket.socket]], sndbuf: int | None = None
) -> tuple[socket.socket, socket.socket]:
    server, client = socket.socketpair()
    if sndbuf is not None:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    server.setblocking(False)
    client.setblocking(False)
    made.append((server, client))
    return server, client


def received(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def connection(sock: socket.socket, outbox: Outbox, user: str = "alice") -> tuple[ClientConnection, SocketTransport]:
    session = authed(user, topics=["news.**"])
    session.on_text(text({"type": "subscribe", "topic": "news.*"}), T0)
    transport = SocketTransport(sock=sock)
    conn = ClientConnection(cast(Any, SocketWebSocket(transport)), session, 1 << 24, outbox)
    return conn, transport


def manual(writer: ParallelWriter) -> Outbox:
    return Outbox(schedule=lambda flush: None, writer=writer)


@pytest.fixture
def writer() -> Iterator[ParallelWriter]:
    w = ParallelWriter(min_batch=4)
    yield w
    w.close()


def test_write_raw_reports_sent_full_and_failed(pairs: Pairs) -> None:
    ok, ok_peer = pair(pairs)
    full, _ = pair(pairs, sndbuf=4096)
    while True:  # fill the socket until the kernel takes nothing more
        try:
            full.send(b"x" * 65536)
        except BlockingIOError:
            break
    gone, gone_peer = pair(pairs)
    gone_peer.close()
    sent = write_raw([(ok.fileno(), b"hello"), (full.fileno(), b"more"), (gone.fileno(), b"lost")])
    assert sent == [5, 0, -1]
    assert received(ok_peer) == b"hello"


def test_a_large_flush_reaches_every_socket_in_order_without_the_transport(
    pairs: Pairs, writer: ParallelWriter
) -> None:
    outbox = manual(writer)
    conns = [(*connection(pair(pairs)[0], outbox, f"u{i}"), pairs[-1][1]) for i in range(9)]
    frames = [text_frame(PAYLOAD.replace(b"7", str(n).encode())) for n in range(3)]
    for n in range(3):
        assert fan_out([c for c, _, _ in conns], "news.*", "news.a", n, PAYLOAD.replace(b"7", str(n).encode())) == (
            9,
            [],
        )
    outbox.flush()
    for conn, transport, peer in conns:
        assert received(peer) == b"".join(frames)
        assert transport.written == []  # all of it went out as raw writes
        assert conn.pending_bytes == 0


def test_a_small_flush_goes_through_the_transports(pairs: Pairs, writer: ParallelWriter) -> None:
    outbox = manual(writer)
    conns = [connection(pair(pairs)[0], outbox, f"u{i}") for i in range(3)]  # under min_batch
    fan_out([c for c, _ in conns], "news.*", "news.a", 7, PAYLOAD)
    outbox.flush()
    assert all(t.written == [text_frame(PAYLOAD)] for _, t in conns)
    assert all(received(peer) == b"" for _, peer in pairs)


def test_a_transport_holding_bytes_keeps_its_frames_behind_them(pairs: Pairs, writer: ParallelWriter) -> None:
    outbox = manual(writer)
    conns = [connection(pair(pairs)[0], outbox, f"u{i}") for i in range(5)]
    backlogged = conns[2][1]
    backlogged.buffered = 10  # bytes the transport has not handed to the kernel yet
    fan_out([c for c, _ in conns], "news.*", "news.a", 7, PAYLOAD)
    outbox.flush()
    assert backlogged.written == [text_frame(PAYLOAD)]
    assert received(pairs[2][1]) == b""  # nothing overtook the transport's bytes
    for index in (0, 1, 3, 4):
        assert conns[index][1].written == []
        assert received(pairs[index][1]) == text_frame(PAYLOAD)


def test_what_a_full_socket_did_not_take_goes_to_its_transport(pairs: Pairs, writer: ParallelWriter) -> None:
    outbox = manual(writer)
    conns = [connection(pair(pairs, sndbuf=4096)[0], outbox, f"u{i}") for i in range(4)]
    big = b'{"type":"message","data":"' + b"y" * 300_000 + b'"}'
    assert fan_out([c for c, _ in conns], "news.*", "news.a", 1, big)[0] == 4
    outbox.flush()
    frame = text_frame(big)
    for (_, transport), (_, peer) in zip(conns, pairs, strict=True):
        got = received(peer)
        assert 0 < len(got) < len(frame)
        assert transport.written == [frame[len(got) :]]  # the rest, in order, after the raw part


def test_a_failed_raw_write_is_repeated_through_the_transport(pairs: Pairs, writer: ParallelWriter) -> None:
    outbox = manual(writer)
    conns = [connection(pair(pairs)[0], outbox, f"u{i}") for i in range(4)]
    pairs[1][1].close()  # this client went away: the raw write fails with EPIPE/ECONNRESET
    fan_out([c for c, _ in conns], "news.*", "news.a", 7, PAYLOAD)
    outbox.flush()
    assert conns[1][1].written == [text_frame(PAYLOAD)]  # the transport sees the error itself
    assert [t.written for i, (_, t) in enumerate(conns) if i != 1] == [[], [], []]


def test_closing_or_tls_transports_are_never_written_raw(pairs: Pairs) -> None:
    sock, _ = pair(pairs)
    assert raw_fd(SocketTransport(sock=sock)) == sock.fileno()
    assert raw_fd(SocketTransport(sock=sock, extra={"sslcontext": object()})) == -1
    assert raw_fd(SocketTransport(sock=None)) == -1
    assert raw_fd(FakeTransport()) == -1  # no get_extra_info at all

    outbox = Outbox(schedule=lambda flush: None, writer=None)
    conn, transport = connection(sock, outbox)
    fan_out([conn], "news.*", "news.a", 7, PAYLOAD)
    transport.aborted.set()
    assert conn.take_raw() is None
    assert transport.written == [] and conn.pending_bytes == 0
