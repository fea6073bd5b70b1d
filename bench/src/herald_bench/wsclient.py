"""A minimal WebSocket client (RFC 6455) as an :class:`asyncio.Protocol`.

Only what the benchmark needs: the opening handshake, masked text frames out, unmasked
frames in (fragmented or not), ping → pong, and the closing handshake. No extensions,
no TLS, no validation of UTF-8: the load generator must spend its CPU on receiving, and
a full library spends most of it on checks a benchmark does not need.

What a frame means is left to a subclass (:meth:`WsProtocol.on_message`).
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from typing import cast

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_MAX_HANDSHAKE = 16384


class HandshakeError(Exception):
    """The server did not answer the upgrade with 101."""


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    mask = os.urandom(4)
    if not length:
        return header + mask
    key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")
    return header + mask + masked


class WsProtocol(asyncio.Protocol):
    """Drives one WebSocket connection; ``opened`` resolves after the 101, ``closed`` at the end."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[int | None] = loop.create_future()
        self.close_code: int | None = None
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._upgraded = False
        self._fragments: list[bytes] = []
        self._fragment_op = 0

    # subclass hooks

    def on_message(self, payload: bytes, now_ns: int) -> None:
        """A complete text or binary message arrived at ``now_ns`` (time.time_ns of the read)."""

    # sending

    def send_text(self, text: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(OP_TEXT, text))

    def send_binary(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(OP_BINARY, data))

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake; the transport closes when the server answers (or drops)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(OP_CLOSE, struct.pack("!H", code)))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if not self._upgraded and not self._handshake():
            return
        now = time.time_ns()
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if b1 & 0x80:  # servers must not mask, but unmasking costs nothing to support
                if end - pos < head + 4 + length:
                    break
                mask = bytes(buf[pos + head : pos + head + 4])
                head += 4
                raw = bytes(buf[pos + head : pos + head + length])
                key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
                payload = (int.from_bytes(raw, "big") ^ key).to_bytes(length, "big") if length else b""
            else:
                if end - pos < head + length:
                    break
                payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            self._frame(b0 & 0x80, b0 & 0x0F, payload, now)
        if pos:
            del buf[:pos]

    # internals

    def _handshake(self) -> bool:
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HANDSHAKE:
                self._fail(HandshakeError("oversized handshake answer"))
            return False
        status = bytes(buf[: buf.find(b"\r\n")])
        del buf[: end + 4]
        if b" 101 " not in status + b" ":
            self._fail(HandshakeError(status.decode(errors="replace")))
            return False
        self._upgraded = True
        if not self.opened.done():
            self.opened.set_result(None)
        return True

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        self.abort()

    def _frame(self, fin: int, opcode: int, payload: bytes, now: int) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            if fin:
                self.on_message(payload, now)
            else:
                self._fragment_op = opcode
                self._fragments = [payload]
        elif opcode == OP_CONTINUATION:
            self._fragments.append(payload)
            if fin:
                message = b"".join(self._fragments)
                self._fragments = []
                self.on_message(message, now)
        elif opcode == OP_PING:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(encode_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(encode_frame(OP_CLOSE, payload[:2]))
                self.transport.close()
