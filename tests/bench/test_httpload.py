"""The benchmark's HTTP/1.1 client against a real (tiny) server: keep-alive, answers, reconnects."""

from __future__ import annotations

import asyncio

import pytest

from herald_bench.httpload import ConnectionPool, HttpError, post_json


async def serve(answers: list[bytes], close_after: int | None = None) -> tuple[asyncio.Server, list[bytes], list[int]]:
    """A server answering each request with the next of ``answers``; records requests and connections."""
    requests: list[bytes] = []
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                requests.append(head + await reader.readexactly(length))
                writer.write(answers[min(len(requests), len(answers)) - 1])
                await writer.drain()
                served += 1
                if close_after is not None and served >= close_after:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, requests, connections


CREATED = b'HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"id":"m1"}'


async def test_requests_reuse_a_kept_alive_connection_and_read_status_and_body() -> None:
    server, requests, connections = await serve([CREATED])
    port = server.sockets[0].getsockname()[1]
    pool = ConnectionPool("127.0.0.1", port, size=4)
    try:
        for _ in range(3):
            assert await pool.request(post_json("127.0.0.1", port, "/api/messages", "tok", {"a": 1})) == (
                201,
                b'{"id":"m1"}',
            )
        assert len(connections) == 1
        assert requests[0].startswith(b"POST /api/messages HTTP/1.1\r\n")
        assert b"Authorization: Bearer tok\r\n" in requests[0] and requests[0].endswith(b'{"a":1}')
    finally:
        pool.close()
        server.close()


async def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    server, requests, connections = await serve([CREATED], close_after=1)
    port = server.sockets[0].getsockname()[1]
    pool = ConnectionPool("127.0.0.1", port, size=1)
    try:
        raw = post_json("127.0.0.1", port, "/x", "tok", {})
        assert (await pool.request(raw))[0] == 201
        await asyncio.sleep(0.1)  # the server's close (a keep-alive timeout) arrives
        assert (await pool.request(raw))[0] == 201
        assert len(connections) == 2 and len(requests) == 2
    finally:
        pool.close()
        server.close()


async def test_an_answer_that_is_not_http_is_an_error() -> None:
    server, _, _ = await serve([b"SSH-2.0-nope\r\n\r\n"])
    port = server.sockets[0].getsockname()[1]
    pool = ConnectionPool("127.0.0.1", port, size=1)
    try:
        with pytest.raises(HttpError, match=r"not an HTTP/1\.x status line"):
            await pool.request(post_json("127.0.0.1", port, "/x", "tok", {}))
    finally:
        pool.close()
        server.close()
