"""The Node load processes count what the Python ones count, over real sockets.

Both pools are driven with the same commands against the same scripted servers (a
WebSocket server speaking just enough of Herald's protocol, an HTTP server answering the
producer routes), and their answers must agree: deliveries, duplicates, strays,
unstamped frames, which ids every socket got, the POSTs' statuses and accepted messages,
and the bodies the server received.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import struct
from array import array
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

from herald_bench.clients import numbered, stamp
from herald_bench.nodepool import NodePool
from herald_bench.pool import LoadPool, Pool

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

BASE = 1000
SIZE = 6
MARK = re.compile(rb"@t=(\d+);@k=(\d+);")


def server_frame(payload: bytes) -> bytes:
    size = len(payload)
    head = bytes((0x81, size)) if size < 126 else struct.pack("!BBH", 0x81, 126, size)
    return head + payload


def delivery(seq: int | None) -> bytes:
    mark = numbered(1_700_000_000_000_000_000, seq) if seq is not None else stamp(1_700_000_000_000_000_000)
    return server_frame(b'{"type":"message","topic":"bench.t","data":{"p":"' + mark.encode() + b'xxxx"}}')


#: what each socket is sent: ids of the window, a repeat, ids outside it, an unnumbered frame
SCRIPT = [delivery(s) for s in (1000, 1001, 1002, 1001, 999, 1006, 1005)] + [delivery(None)]


async def read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    length = b1 & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4)
    raw = await reader.readexactly(length)
    return b0 & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(raw))


class ScriptedGateway:
    """Answers ``auth`` and ``subscribe``; on :meth:`play` sends every socket :data:`SCRIPT`."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.tokens: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        try:
            while True:
                opcode, payload = await read_client_frame(reader)
                if opcode == 0x8:
                    writer.write(bytes((0x88, 2)) + payload[:2])
                    break
                frame = json.loads(payload)
                if frame["type"] == "auth":
                    self.tokens.append(frame["token"])
                    writer.write(server_frame(b'{"type":"auth_success"}'))
                elif frame["type"] == "subscribe":
                    self.writers.append(writer)
                    writer.write(server_frame(b'{"type":"subscribed","topic":"bench.t"}'))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def play(self) -> None:
        for writer in self.writers:
            data = b"".join(SCRIPT)
            writer.write(data[:37])  # a frame split over two reads
            writer.write(data[37:])


class ProducerApi:
    """Answers POSTs like the api's producer routes; every 5th message request gets a 503."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.heads: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
                body = json.loads(await reader.readexactly(length))
                self.heads.append(head)
                self.bodies.append(body)
                if head.startswith(b"POST /api/publish/batch "):
                    answer, status = json.dumps({"eventIds": [str(i) for i in range(len(body["items"]))]}), 202
                elif head.startswith(b"POST /api/messages ") and len(self.bodies) % 5 == 0:
                    answer, status = '{"error":{"code":"unavailable"}}', 503
                else:
                    answer, status = '{"eventId":"e"}', 201 if head.startswith(b"POST /api/messages ") else 202
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(answer)}\r\n\r\n{answer}".encode()
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@asynccontextmanager
async def serving(handler: Callable[..., Any]) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@contextmanager
def started(kind: type[Pool]) -> Iterator[Pool]:
    pool = kind(1)  # type: ignore[call-arg]
    try:
        yield pool
    finally:
        pool.shutdown()


async def socket_tally(kind: type[Pool]) -> tuple[dict[str, Any], list[str]]:
    gateway = ScriptedGateway()
    async with serving(gateway.handle) as port:
        with started(kind) as pool:
            opened = await pool.open("herald", [("127.0.0.1", port, "/ws")], 2, "bench.t", "s3cret")
            assert opened[0]["opened"] == 2, opened
            assert (await pool.broadcast({"op": "subscribe"}))[0]["subscribed"] == 2
            assert (await pool.broadcast({"op": "reset", "base": BASE, "size": SIZE}))[0]["open"] == 2
            gateway.play()
            for _ in range(100):
                if (await pool.broadcast({"op": "count"}))[0]["count"] >= 8:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)
            collected = (await pool.broadcast({"op": "collect"}))[0]
            await pool.broadcast({"op": "close"})
    return collected, gateway.tokens


@pytest.mark.parametrize("kind", [LoadPool, NodePool])
async def test_sockets_count_distinct_ids_per_socket(kind: type[Pool]) -> None:
    collected, tokens = await socket_tally(kind)
    # per socket: 1000, 1001, 1002 and 1005 count (a latency each); 1001 again is a duplicate;
    # 999 and 1006 are outside the window and the unnumbered frame has no id: strays
    assert collected["count"] == 8
    assert collected["duplicates"] == 2
    assert collected["strays"] == 6
    assert collected["unstamped"] == 0
    assert list(array("I", collected["hits"])) == [2, 2, 2, 0, 0, 2]
    samples = array("q", collected["samples"])
    assert len(samples) == 8 and all(s > 0 for s in samples)  # stamped in 2023: long ago
    assert collected["open"] == 2 and collected["cpu_seconds"] >= 0
    # the tokens name distinct users and grant the topic
    subs = {json.loads(_b64url(token.split(".")[1]))["sub"] for token in tokens}
    assert subs == {"bench-0", "bench-1"}
    assert all(json.loads(_b64url(t.split(".")[1]))["topics"] == ["bench.t"] for t in tokens)


async def test_both_runtimes_tally_the_same() -> None:
    python, _ = await socket_tally(LoadPool)
    node, _ = await socket_tally(NodePool)
    for key in ("count", "duplicates", "strays", "unstamped", "hits", "open", "closed"):
        assert python[key] == node[key], key


def _b64url(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


async def post_plan(kind: type[Pool], plan: dict[str, Any]) -> tuple[dict[str, Any], ProducerApi]:
    api = ProducerApi()
    async with serving(api.handle) as port:
        with started(kind) as pool:
            cmd = {"op": "post", "host": "127.0.0.1", "port": port, "token": "tok", "connections": 3, "plan": plan}
            answer = (await pool.call([cmd], timeout=30))[0]
    return answer, api


def plan_of(kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "target": "bob" if kind == "message" else "bench.t",
        "rate": 200.0,
        "seconds": 0.5,
        "size": 60,
        "first": 7,
        "stride": 2,
        "batch": 1,
        "answer_wait": 2.0,
    } | extra


@pytest.mark.parametrize("kind", [LoadPool, NodePool])
async def test_posts_are_paced_stamped_and_counted(kind: type[Pool]) -> None:
    answer, api = await post_plan(kind, plan_of("message"))
    assert answer["offered"] == 100
    assert answer["statuses"] == {"201": 80, "503": 20}
    assert answer["accepted"] == 80 and answer["failed"] == 20
    assert answer["unsent"] == 0 and answer["unanswered"] == 0
    assert sum(answer["accepted_local"]) == 80 and len(answer["accepted_local"]) == 100
    assert len(array("q", answer["answers_us"])) == 100
    assert 0.4 < answer["seconds"] < 3.0
    ids = sorted(int(MARK.search(b["content"].encode()).group(2)) for b in api.bodies)  # type: ignore[union-attr]
    assert ids == [7 + 2 * m for m in range(100)]
    assert all(b["recipientId"] == "bob" and len(b["content"]) >= 55 for b in api.bodies)
    assert all(b"Authorization: Bearer tok\r\n" in head for head in api.heads)


@pytest.mark.parametrize("kind", [LoadPool, NodePool])
async def test_a_batch_carries_its_ids_in_order(kind: type[Pool]) -> None:
    answer, api = await post_plan(kind, plan_of("batch", rate=400.0, batch=10))
    assert answer["offered"] == 200 and answer["accepted"] == 200
    assert answer["statuses"] == {"202": 20}
    assert len(array("q", answer["answers_us"])) == 20
    seqs = [
        [int(MARK.search(item["data"]["p"].encode()).group(2)) for item in body["items"]]  # type: ignore[union-attr]
        for body in api.bodies
    ]
    assert sorted(seqs) == [[7 + 2 * (r * 10 + j) for j in range(10)] for r in range(20)]
    assert all(item["topic"] == "bench.t" for body in api.bodies for item in body["items"])


@pytest.mark.parametrize("kind", [LoadPool, NodePool])
async def test_what_no_connection_could_take_in_the_window_is_not_sent(kind: type[Pool]) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers
        writer.close()

    async with serving(stall) as port:
        with started(kind) as pool:
            plan = plan_of("publish", rate=100.0, seconds=0.5, answer_wait=0.5)
            cmd = {"op": "post", "host": "127.0.0.1", "port": port, "token": "tok", "connections": 2, "plan": plan}
            answer = (await pool.call([cmd], timeout=30))[0]
    # two requests were written and never answered; the other 48 found no free connection
    assert answer["offered"] == 50
    assert answer["unanswered"] == 2
    assert answer["unsent"] == 48
    assert answer["accepted"] == 0
