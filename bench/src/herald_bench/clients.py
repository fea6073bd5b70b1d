"""The two kinds of benchmark client, and the per-process sink of their measurements.

- :class:`HeraldClient` speaks Herald's JSON protocol to a gateway: ``auth``, then
  ``subscribe``; a delivery is a text frame that starts with ``{"type":"message"``.
- :class:`NatsClient` speaks the NATS text protocol over nats-server's own WebSocket
  listener: ``CONNECT``, ``SUB``, ``PING``; a delivery is a ``MSG`` and its payload.

Every benchmark payload carries its publish instant as ``@t=<time.time_ns()>;`` somewhere
in its bytes (inside JSON strings too), so one search finds it whatever the path wrapped
around it. Latency is the receiving process's ``time.time_ns()`` at the read minus that
stamp: publisher and clients run on the same machine and read the same clock.

The REST-fed sections also number their messages: ``@t=<ns>;@k=<id>;``. With a window
set (:meth:`Recorder.reset` with ``base`` and ``size``) each socket keeps which ids it
has seen, so deliveries are counted as distinct messages per socket, a repeat is a
duplicate, and an id outside the window (a late message of an earlier step) is a stray.
"""

from __future__ import annotations

import asyncio
import json
from array import array
from typing import Any

from herald_bench.wsclient import WsProtocol

STAMP = b"@t="
SEQ = b"@k="
HERALD_MESSAGE_PREFIX = b'{"type":"message"'


def stamp(now_ns: int) -> str:
    """The marker a payload carries so that its receiver can compute the latency."""
    return f"@t={now_ns};"


def numbered(now_ns: int, seq: int) -> str:
    """The latency stamp followed by the message's id (see :meth:`Recorder.reset`)."""
    return f"@t={now_ns};@k={seq};"


class Recorder:
    """Deliveries counted and latencies (microseconds) kept, for one load process.

    Without a window every frame counts. With one (ids ``base`` … ``base + size - 1``),
    only a socket's first copy of an id in the window counts (and gives a latency
    sample); ``hits[i]`` is how many of this process's sockets have message ``base + i``.
    """

    def __init__(self) -> None:
        self.samples: array[int] = array("q")
        self.count = 0
        self.unstamped = 0
        self.last_ns = 0
        self.base = 0
        self.size = 0
        self.hits: array[int] = array("I")
        self.duplicates = 0
        self.strays = 0

    def reset(self, base: int = 0, size: int = 0) -> None:
        self.samples = array("q")
        self.count = 0
        self.unstamped = 0
        self.last_ns = 0
        self.base = base
        self.size = size
        self.hits = array("I", bytes(4 * size))
        self.duplicates = 0
        self.strays = 0

    def record(self, payload: bytes, now_ns: int, seen: bytearray | None = None) -> None:
        i = payload.find(STAMP)
        if i < 0:
            self.count += 1
            self.unstamped += 1
            return
        j = payload.find(b";", i)
        try:
            sent = int(payload[i + 3 : j])
        except ValueError:
            self.count += 1
            self.unstamped += 1
            return
        if self.size:
            if payload[j + 1 : j + 4] != SEQ:
                self.strays += 1
                return
            e = payload.find(b";", j + 4)
            try:
                k = int(payload[j + 4 : e]) - self.base
            except ValueError:
                self.strays += 1
                return
            if not 0 <= k < self.size or seen is None or len(seen) != self.size:
                self.strays += 1
                return
            if seen[k]:
                self.duplicates += 1
                return
            seen[k] = 1
            self.hits[k] += 1
        self.count += 1
        self.last_ns = now_ns
        self.samples.append((now_ns - sent) // 1000)


class ProtocolError(Exception):
    """The server answered a request with an error."""


class HeraldClient(WsProtocol):
    def __init__(self, host: str, port: int, path: str, recorder: Recorder) -> None:
        super().__init__(host, port, path)
        self._recorder = recorder
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        #: ids of the current window this socket has received (see :class:`Recorder`)
        self.seen = bytearray()

    def on_message(self, payload: bytes, now_ns: int) -> None:
        if payload.startswith(HERALD_MESSAGE_PREFIX):
            self._recorder.record(payload, now_ns, self.seen)
            return
        try:
            frame = json.loads(payload)
        except ValueError:
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "error":
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(ProtocolError(f"{frame.get('code')}: {frame.get('message')}"))
            self._waiting.clear()
        elif isinstance(kind, str):
            waiter = self._waiting.pop(kind, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"closed with {self.close_code}"))
        self._waiting.clear()
        super().connection_lost(exc)

    async def request(self, frame: dict[str, Any], answer: str) -> dict[str, Any]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[answer] = fut
        self.send_text(json.dumps(frame).encode())
        return await fut

    async def authenticate(self, token: str) -> None:
        await self.opened
        await self.request({"type": "auth", "token": token}, "auth_success")

    async def subscribe(self, topic: str) -> None:
        await self.request({"type": "subscribe", "topic": topic}, "subscribed")


class NatsClient(WsProtocol):
    def __init__(self, host: str, port: int, path: str, recorder: Recorder) -> None:
        super().__init__(host, port, path)
        self._recorder = recorder
        self._stream = bytearray()
        self._pongs: list[asyncio.Future[None]] = []
        self._info: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.errors: list[str] = []
        self.seen = bytearray()

    def on_message(self, payload: bytes, now_ns: int) -> None:
        buf = self._stream
        buf += payload
        pos = 0
        end = len(buf)
        while pos < end:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            if buf.startswith(b"MSG ", pos):
                size = int(buf[buf.rfind(b" ", pos, eol) + 1 : eol])
                body_end = eol + 2 + size
                if body_end + 2 > end:
                    break
                self._recorder.record(bytes(buf[eol + 2 : body_end]), now_ns, self.seen)
                pos = body_end + 2
                continue
            line = bytes(buf[pos:eol])
            pos = eol + 2
            if line == b"PING":
                self.send_binary(b"PONG\r\n")
            elif line == b"PONG":
                if self._pongs:
                    fut = self._pongs.pop(0)
                    if not fut.done():
                        fut.set_result(None)
            elif line.startswith(b"INFO"):
                if not self._info.done():
                    self._info.set_result(None)
            elif line.startswith(b"-ERR"):
                self.errors.append(line.decode(errors="replace"))
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in [*self._pongs, self._info]:
            if not fut.done():
                fut.set_exception(ConnectionError(f"closed with {self.close_code}"))
        self._pongs.clear()
        super().connection_lost(exc)

    async def ping(self) -> None:
        """Round trip: once the PONG is back, everything sent before it was processed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pongs.append(fut)
        self.send_binary(b"PING\r\n")
        await fut

    async def authenticate(self, token: str) -> None:
        """CONNECT (the native listener runs without auth, so ``token`` is not used)."""
        await self.opened
        await self._info
        connect = {"verbose": False, "pedantic": False, "protocol": 1, "headers": False, "name": "herald-bench"}
        self.send_binary(b"CONNECT " + json.dumps(connect).encode() + b"\r\n")
        await self.ping()
        if self.errors:
            raise ProtocolError(self.errors[0])

    async def subscribe(self, subject: str) -> None:
        self.send_binary(f"SUB {subject} 1\r\n".encode())
        await self.ping()
        if self.errors:
            raise ProtocolError(self.errors[0])
