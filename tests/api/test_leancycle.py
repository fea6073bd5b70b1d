"""The producer routes answered inside uvicorn's protocol (herald_api.leancycle), over real sockets.

The api is served as ``herald api`` serves it (:func:`herald_api.server.serve`, uvicorn with
Herald's protocol) in this event loop, against a real nats-server; requests are raw bytes
on TCP connections so that keep-alive, pipelining, ``Expect: 100-continue`` and bodies cut
in pieces are what the test says they are. Each test also checks that the requests it
meant for the producer routes were answered by a :class:`ProducerCycle`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from herald_api.leancycle import ProducerCycle
from herald_api.server import serve
from herald_common.tokens import issue_token
from tests.api.conftest import SECRET, make_settings
from tests.support.procs import free_port

pytestmark = pytest.mark.integration

TOKEN = issue_token(SECRET, "producer", roles=["publisher"])


@dataclass
class Api:
    port: int
    answered: list[int]

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@pytest.fixture
async def api(tmp_path: Path, nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    port = free_port()
    settings = make_settings(
        tmp_path, f"sqlite:///{tmp_path / 'herald.db'}", nats_url, api_port=port, max_body_bytes=4096
    )
    answered: list[int] = []
    run_asgi = ProducerCycle.run_asgi

    async def counting(self: ProducerCycle, app: object) -> None:
        answered.append(1)
        await run_asgi(self, app)

    monkeypatch.setattr(ProducerCycle, "run_asgi", counting)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    api = Api(port, answered)
    for _ in range(200):
        try:
            status, _, _ = await _one(api, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            if status == 200:
                break
        except OSError:
            pass
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the api did not become ready")
    answered.clear()
    try:
        yield api
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def _post(path: str, body: object, *, token: str | None = TOKEN, extra: str = "", version: str = "1.1") -> bytes:
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = f"POST {path} HTTP/{version}\r\nHost: x\r\n{auth}Content-Type: application/json\r\n{extra}"
    return f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
    return status, headers, body


async def _one(api: Api, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await api.connect()
    try:
        writer.write(request)
        return await _read_answer(reader)
    finally:
        writer.close()


async def test_answers_carry_the_status_body_and_headers_of_every_api_answer(api: Api) -> None:
    status, headers, body = await _one(api, _post("/api/publish", {"topic": "lean.a", "data": {"n": 1}}))
    assert status == 202, body
    assert len(json.loads(body)["eventId"]) == 32
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "date" in headers
    assert "connection" not in headers  # kept alive

    cases: list[tuple[bytes, int, str]] = [
        (_post("/api/publish", {"topic": "lean.a", "data": 1}, token=None), 401, "unauthorized"),
        (_post("/api/publish", b"{not json"), 400, "bad_request"),
        (_post("/api/publish", {"topic": "bad topic!", "data": 1}), 400, "invalid_topic"),
        (_post("/api/publish", {"topic": "messages.user.x", "data": 1}), 403, "forbidden"),
        (_post("/api/publish", {"topic": "lean.a", "data": "x" * 5000}), 413, "too_large"),
    ]
    for request, want_status, want_code in cases:
        status, headers, body = await _one(api, request)
        assert (status, json.loads(body)["code"]) == (want_status, want_code), body
        assert headers["x-content-type-options"] == "nosniff"

    status, _, body = await _one(
        api, _post("/api/publish/batch", {"items": [{"topic": "lean.b", "data": i} for i in range(3)]})
    )
    assert status == 202 and len(json.loads(body)["eventIds"]) == 3, body
    assert len(api.answered) == 7


async def test_pipelined_requests_are_answered_in_order_then_litestar_takes_the_next(api: Api) -> None:
    reader, writer = await api.connect()
    try:
        writer.write(
            _post("/api/publish", {"topic": "lean.p", "data": 1})
            + _post("/api/publish", {"topic": "bad topic", "data": 2})
            + _post("/api/publish", {"topic": "lean.p", "data": 3})
            + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        statuses = [(await _read_answer(reader))[0] for _ in range(4)]
    finally:
        writer.close()
    assert statuses == [202, 400, 202, 200]
    assert len(api.answered) == 3


async def test_http_1_0_and_connection_close_end_the_connection_after_the_answer(api: Api) -> None:
    for request in (
        _post("/api/publish", {"topic": "lean.c", "data": 1}, version="1.0"),
        _post("/api/publish", {"topic": "lean.c", "data": 1}, extra="Connection: close\r\n"),
    ):
        reader, writer = await api.connect()
        writer.write(request)
        status, headers, _ = await _read_answer(reader)
        assert status == 202
        assert headers["connection"] == "close"
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the api
        writer.close()
    assert len(api.answered) == 2


async def test_a_body_in_pieces_chunked_or_after_100_continue_is_read_whole(api: Api) -> None:
    body = json.dumps({"topic": "lean.d", "data": {"text": "y" * 300}}).encode()
    reader, writer = await api.connect()
    try:
        head = f"POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        writer.write(f"{head}Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) == b"HTTP/1.1 100 Continue\r\n\r\n"
        for start in range(0, len(body), 50):
            writer.write(body[start : start + 50])
            await writer.drain()
            await asyncio.sleep(0.005)
        assert (await _read_answer(reader))[0] == 202

        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 100]), body[i : i + 100]) for i in range(0, len(body), 100)
        )
        writer.write(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + chunks + b"0\r\n\r\n")
        status, _, answer = await _read_answer(reader)
        assert status == 202, answer
    finally:
        writer.close()
    assert len(api.answered) == 2


async def test_a_body_past_the_limit_is_413_and_the_connection_serves_the_next_request(api: Api) -> None:
    reader, writer = await api.connect()
    try:
        writer.write(_post("/api/publish", {"topic": "lean.e", "data": "z" * 20000}))
        status, _, body = await _read_answer(reader)
        assert (status, json.loads(body)["code"]) == (413, "too_large")
        writer.write(_post("/api/publish", {"topic": "lean.e", "data": 1}))
        assert (await _read_answer(reader))[0] == 202
    finally:
        writer.close()


async def test_a_client_that_leaves_before_its_answer_does_not_disturb_the_next(api: Api) -> None:
    for _ in range(5):
        _, writer = await api.connect()
        writer.write(_post("/api/publish", {"topic": "lean.f", "data": 1})[:-3])  # the body never completes
        await writer.drain()
        writer.close()
        _, writer = await api.connect()
        writer.write(_post("/api/publish", {"topic": "lean.f", "data": 2}))
        writer.close()  # the answer is never read
    status, _, _ = await _one(api, _post("/api/publish", {"topic": "lean.f", "data": 3}))
    assert status == 202


@pytest.mark.parametrize(
    "request_of",
    [
        lambda: _post("/api/publish?x=1", {"topic": "lean.g", "data": 1}),
        lambda: _post("/api/%70ublish", {"topic": "lean.g", "data": 1}),
    ],
    ids=["query-string", "percent-encoded"],
)
async def test_other_spellings_of_a_producer_route_are_answered_the_same_by_litestar(
    api: Api, request_of: Callable[[], bytes]
) -> None:
    status, headers, body = await _one(api, request_of())
    assert status == 202, body
    assert headers["x-content-type-options"] == "nosniff"
    assert api.answered == []
