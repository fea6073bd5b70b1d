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
from collections.abc import Callable

HEAD_LIMIT = 65536


class HttpError(Exception):
    """The answer could not be read as an HTTP/1.1 response."""


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=HEAD_LIMIT)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one complete request; returns the status code and the body."""
        self._writer.write(raw)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise HttpError(f"not an HTTP/1.x status line: {status_line[:60]!r}")
        length = 0
        close = False
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                length = int(value.strip())
            elif key == b"transfer-encoding":
                raise HttpError("chunked answers are not supported by the benchmark client")
            elif key == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await self._reader.readexactly(length) if length else b""
        if close:
            self.close()
        return int(parts[1]), body

    @property
    def closed(self) -> bool:
        """Closed here, or by the server (an idle keep-alive connection it timed out)."""
        return self._writer.is_closing() or self._reader.at_eof()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()


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

    async def request(self, raw: bytes | Callable[[], bytes]) -> tuple[int, bytes]:
        """Send one request on a free connection; ``raw`` may be a function that builds it.

        A function is called once the connection is ready, just before the write, so a
        timestamp it puts in the body excludes the wait for a free connection.
        """
        async with self._slots:
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
