"""The REST publisher against a tiny server: bodies per kind, accepted ids, failures, the closed window."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from herald_bench.httpload import ConnectionPool
from herald_bench.publishers import RestPlan, rest


async def serve(status: int, delay: float = 0.0) -> tuple[asyncio.Server, list[tuple[str, Any]]]:
    """Answers every POST with ``status`` (a batch with one event id per item); records path and body."""
    seen: list[tuple[str, Any]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = json.loads(await reader.readexactly(length))
                path = head.split(b" ")[1].decode()
                seen.append((path, body))
                await asyncio.sleep(delay)
                if "items" in body:
                    answer = json.dumps({"eventIds": [str(i) for i in range(len(body["items"]))]}).encode()
                else:
                    answer = b'{"eventId":"e"}'
                writer.write(b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n\r\n%s" % (status, len(answer), answer))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen


def plan(kind: str, **changes: Any) -> RestPlan:
    values: dict[str, Any] = {
        "kind": kind,
        "target": "bench.rest",
        "rate": 40.0,
        "seconds": 0.25,
        "size": 60,
        "first": 1000,
        "stride": 2,
    }
    return RestPlan(**(values | changes))


async def run(p: RestPlan, status: int = 202, delay: float = 0.0) -> tuple[Any, list[tuple[str, Any]]]:
    server, seen = await serve(status, delay)
    pool = ConnectionPool("127.0.0.1", server.sockets[0].getsockname()[1], 2)
    try:
        return await rest(pool, "tok", p), seen
    finally:
        pool.close()
        server.close()


async def test_single_publishes_carry_numbered_stamps_and_count_as_accepted() -> None:
    result, seen = await run(plan("publish"))
    assert result.offered == 10 and result.accepted == 10 and result.failed == 0
    assert {path for path, _ in seen} == {"/api/publish"}
    marks = [body["data"]["p"] for _, body in seen]
    assert all(body["topic"] == "bench.rest" for _, body in seen)
    assert sorted(int(m.split("@k=")[1].split(";")[0]) for m in marks) == list(range(1000, 1020, 2))
    assert bytes(result.accepted_local) == b"\x01" * 10
    assert len(result.answers_us) == 10 and result.statuses == {"202": 10}


async def test_a_batch_carries_its_items_and_each_counts() -> None:
    result, seen = await run(plan("batch", rate=400.0, batch=20))
    assert [path for path, _ in seen] == ["/api/publish/batch"] * 5
    assert all(len(body["items"]) == 20 for _, body in seen)
    ids = [int(item["data"]["p"].split("@k=")[1].split(";")[0]) for _, body in seen for item in body["items"]]
    assert sorted(ids) == list(range(1000, 1200, 2))
    assert result.offered == result.accepted == 100


async def test_direct_messages_go_to_the_recipient() -> None:
    result, seen = await run(plan("message", target="bench-recipient"), status=201)
    assert {path for path, _ in seen} == {"/api/messages"}
    assert all(body["recipientId"] == "bench-recipient" and "@k=" in body["content"] for _, body in seen)
    assert result.accepted == 10


async def test_a_missing_endpoint_is_failures_with_the_status() -> None:
    result, _ = await run(plan("batch", rate=400.0, batch=20), status=404)
    assert result.accepted == 0 and result.failed == 100
    assert result.statuses == {"404": 5}
    assert bytes(result.accepted_local) == bytes(100)


async def test_what_cannot_be_written_in_the_window_is_not_sent() -> None:
    # one connection, answers after 0.2 s: a 0.25 s window at 40/s writes 2 of its 10
    server, _ = await serve(202, delay=0.2)
    pool = ConnectionPool("127.0.0.1", server.sockets[0].getsockname()[1], 1)
    try:
        result = await rest(pool, "tok", plan("publish", answer_wait=2.0))
    finally:
        pool.close()
        server.close()
    assert result.accepted + result.unsent == 10
    assert 1 <= result.accepted <= 3 and result.unanswered == 0
