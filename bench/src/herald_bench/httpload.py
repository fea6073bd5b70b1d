"""A lean HTTP/1.1 client for the REST publisher: keep-alive connections, hand-built requests.

The end-to-end section must measure the api, not the client: a general-purpose client
(``httpx``) spends most of a core on 500 POSTs a second. Here a request is one
``bytes`` written to a kept-alive connection and an answer is a status line, headers up
to the blank line, and ``Content-Length`` bytes of body. Nothing else of HTTP is needed:
the api answers every POST with a length-delimited body and keeps the connection open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import cast

HEAD_LIMIT = 65536


class HttpError(Exception):
    """The answer could not be read as an HTTP/1.1 response."""


class NoConnectionError(Exception):
    """No connection came free before the request's deadline."""


class Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time.

    A protocol rather than a stream pair: an answer is parsed straight from the bytes the
    loop hands over, with no reader buffer, waiter or ``drain`` per request in between,
    so the load processes keep their CPU for the sockets they measure.
    """

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        #: (status, body length, head length) of the answer being read, once its head is in
        self._head: tuple[int, int, int] | None = None
        self._close_after = False
        self._lost = False

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        _, conn = await asyncio.get_running_loop().create_connection(cls, host, port)
        return conn

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one complete request; returns the status code and the body."""
        if self._transport is None or self._lost or self._waiter is not None:
            raise ConnectionError("the connection is closed" if self._waiter is None else "a request is in flight")
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self._transport.write(raw)
        try:
            return await waiter
        finally:
            self._waiter = None

    @property
    def closed(self) -> bool:
        """Closed here, or by the server (an idle keep-alive connection it timed out)."""
        return self._lost or self._transport is None or self._transport.is_closing()

    def close(self) -> None:
        if self._transport is not None:
            with contextlib.suppress(Exception):
                self._transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._fail(exc or ConnectionError("the server closed the connection"))

    def eof_received(self) -> bool:
        self._lost = True
        self._fail(ConnectionError("the server closed the connection"))
        return False

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > HEAD_LIMIT:
                    self._fail(HttpError("the answer's head is too long"))
                return
            try:
                self._head = self._parse_head(bytes(buf[:end]), end + 4)
            except HttpError as exc:
                self._fail(exc)
                return
        status, length, start = self._head
        if len(buf) < start + length:
            return
        body = bytes(buf[start : start + length])
        del buf[: start + length]
        self._head = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body))
        if self._close_after:
            self.close()

    def _parse_head(self, head: bytes, size: int) -> tuple[int, int, int]:
        status_line, _, header_block = head.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise HttpError(f"not an HTTP/1.x status line: {status_line[:60]!r}")
        length = 0
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                length = int(value.strip())
            elif key == b"transfer-encoding":
                raise HttpError("chunked answers are not supported by the benchmark client")
            elif key == b"connection" and value.strip().lower() == b"close":
                self._close_after = True
        return int(parts[1]), length, size

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if isinstance(exc, HttpError):
            self.close()


def post_json(host: str, port: int, path: str, token: str, body: object) -> bytes:
    """The bytes of a ``POST`` with a JSON body and a bearer token, keeping the connection open."""
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


class ConnectionPool:
    """Up to ``size`` connections to one server; a request takes a free one or opens one."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host = host
        self.port = port
        self._free: list[Connection] = []
        self._slots = asyncio.Semaphore(size)

    async def request(self, raw: bytes | Callable[[], bytes], deadline: float | None = None) -> tuple[int, bytes]:
        """Send one request on a free connection; ``raw`` may be a function that builds it.

        A function is called once the connection is ready, just before the write, so a
        timestamp it puts in the body excludes the wait for a free connection. With a
        ``deadline`` (``time.monotonic()``), no connection free by then raises
        :class:`NoConnectionError`.
        """
        if deadline is not None and self._slots.locked():
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self._slots.acquire()
            except TimeoutError:
                raise NoConnectionError from None
        else:
            await self._slots.acquire()
        try:
            return await self._on_free_connection(raw)
        finally:
            self._slots.release()

    async def _on_free_connection(self, raw: bytes | Callable[[], bytes]) -> tuple[int, bytes]:
        conn = self._free.pop() if self._free else None
        while conn is not None and conn.closed:  # the server closed it while it was idle
            conn.close()
            conn = self._free.pop() if self._free else None
        if conn is None:
            conn = await Connection.open(self.host, self.port)
        try:
            data = raw if isinstance(raw, bytes) else raw()
        except BaseException:
            self._free.append(conn)  # nothing was written: the connection is still good
            raise
        try:
            answer = await conn.request(data)
        except BaseException:
            conn.close()
            raise
        if not conn.closed:
            self._free.append(conn)
        return answer

    def close(self) -> None:
        for conn in self._free:
            conn.close()
        self._free.clear()
