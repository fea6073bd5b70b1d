"""Encode once, fan out: one message's WebSocket frame written to every recipient.

Server frames are never masked and the gateway runs without compression, so the bytes
of a ``message`` frame (WebSocket header + JSON payload) are the same for every
recipient. :func:`text_frame` builds them once per message and :func:`fan_out` hands
that one ``bytes`` object to each recipient; the per-recipient work is a filter check,
a buffer-size check and a list append.

Writes are coalesced per event-loop iteration (:class:`Outbox`): a connection's frames
from one iteration reach its transport in one ``write`` at the end of it, so when
messages arrive faster than sockets can be written, several share a system call
instead of each paying one. A lone frame is written as the very object fan-out built.

Backpressure is the transport's own write buffer plus what waits in the outbox: a
recipient that would pass its byte bound gets nothing and is returned as slow, for the
caller to close with 4009.

A large flush can be written from two threads at once (:class:`ParallelWriter`): the
time goes into the ``send`` system calls, and uvloop makes them holding the GIL, one
after the other on one core. Written with ``os.write`` on the sockets' descriptors
instead, the calls release the GIL and two threads keep two cores sending.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from herald_gateway.recovery import Recovery, RecoveryState

log = logging.getLogger("herald.gateway")

_OP_TEXT_FIN = 0x81
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")


def text_frame(payload: bytes) -> bytes:
    """A complete final, unmasked, uncompressed WebSocket text frame carrying ``payload``."""
    size = len(payload)
    if size < 126:
        return bytes((_OP_TEXT_FIN, size)) + payload
    if size < 65536:
        return _HEADER_16.pack(_OP_TEXT_FIN, 126, size) + payload
    return _HEADER_64.pack(_OP_TEXT_FIN, 127, size) + payload


class Flushable(Protocol):
    def flush(self) -> None: ...

    def take_raw(self) -> tuple[int, bytes] | None:
        """The waiting frames and the descriptor to write them to, if a raw write keeps order."""
        ...

    def write_rest(self, data: bytes, sent: int) -> None:
        """Hand what a raw write did not send (``sent`` bytes went; -1: it failed) to the transport."""
        ...


def write_raw(jobs: Sequence[tuple[int, bytes]]) -> list[int]:
    """``os.write`` each job's bytes to its non-blocking descriptor: bytes sent, 0 if full, -1 on error."""
    sent: list[int] = []
    write = os.write
    for fd, data in jobs:
        try:
            sent.append(write(fd, data))
        except BlockingIOError:
            sent.append(0)
        except OSError:  # the transport finds the same error on its own write and closes
            sent.append(-1)
    return sent


class ParallelWriter:
    """Writes the raw jobs of a large flush half in the calling thread, half in a helper thread.

    The caller blocks until both halves are done, so no other code touches a socket in
    between; the system calls release the GIL and run on two cores at once.
    """

    def __init__(self, min_batch: int) -> None:
        #: flushes with fewer connections than this are written the usual way
        self.min_batch = max(2, min_batch)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="herald-write")

    def write(self, jobs: Sequence[tuple[int, bytes]]) -> list[int]:
        half = len(jobs) // 2
        other = self._executor.submit(write_raw, jobs[half:])
        try:
            mine = write_raw(jobs[:half])
        finally:
            theirs = other.result()
        return mine + theirs

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class Outbox:
    """Connections with frames waiting; all flushed once at the end of the loop iteration."""

    __slots__ = ("_dirty", "_schedule", "_scheduled", "_writer")

    def __init__(
        self, schedule: Callable[[Callable[[], None]], object] | None = None, writer: ParallelWriter | None = None
    ) -> None:
        #: how to run :meth:`flush` soon; the running loop's ``call_soon`` by default
        self._schedule = schedule
        self._writer = writer
        self._dirty: list[Flushable] = []
        self._scheduled = False

    def mark(self, conn: Flushable) -> None:
        """``conn`` has frames waiting (call once, when its first one arrives)."""
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            schedule = self._schedule or asyncio.get_running_loop().call_soon
            schedule(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        writer = self._writer
        if writer is not None and len(dirty) >= writer.min_batch:
            self._flush_parallel(dirty, writer)
            return
        for conn in dirty:
            try:
                conn.flush()
            except Exception:  # one broken socket must not cost the others their frames
                log.warning("writing to a client failed", exc_info=True)

    @staticmethod
    def _flush_parallel(dirty: list[Flushable], writer: ParallelWriter) -> None:
        owners: list[Flushable] = []
        jobs: list[tuple[int, bytes]] = []
        for conn in dirty:
            try:
                job = conn.take_raw()
            except Exception:
                log.warning("writing to a client failed", exc_info=True)
                continue
            if job is not None:
                owners.append(conn)
                jobs.append(job)
        if not jobs:
            return
        sent = writer.write(jobs)
        for conn, (_, data), count in zip(owners, jobs, sent, strict=True):
            if count != len(data):
                try:
                    conn.write_rest(data, count)
                except Exception:
                    log.warning("writing to a client failed", exc_info=True)


class Transport(Protocol):
    """The part of :class:`asyncio.Transport` that fan-out uses."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...


class Filter(Protocol):
    def wants(self, pattern: str, topic: str) -> bool: ...


class Recipient(Protocol):
    """What :func:`fan_out` needs from a connection."""

    @property
    def session(self) -> Filter: ...

    @property
    def recovering(self) -> dict[str, Recovery]: ...

    def deliver(self, frame: bytes) -> bool: ...


R = TypeVar("R", bound=Recipient)


def fan_out(recipients: Iterable[R], pattern: str, topic: str, offset: int, payload: bytes) -> tuple[int, list[R]]:
    """Write one live message to every recipient of ``pattern`` that wants ``topic``.

    Returns how many were written to, and the recipients over their bound (nothing was
    written to them).

    ``payload`` is the encoded ``message`` frame; its WebSocket frame is built once.
    A recipient still replaying missed messages for ``pattern`` gets ``payload`` parked
    instead (and is slow if its parking space is full).
    """
    frame = text_frame(payload)
    delivered = 0
    slow: list[R] = []
    for conn in recipients:
        if not conn.session.wants(pattern, topic):
            continue
        recovering = conn.recovering
        if recovering:
            recovery = recovering.get(pattern)
            if recovery is not None:
                if recovery.state is RecoveryState.RECOVERING and not recovery.park(offset, payload):
                    slow.append(conn)
                continue
        if conn.deliver(frame):
            delivered += 1
        else:
            slow.append(conn)
    return delivered, slow
