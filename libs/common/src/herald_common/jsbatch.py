"""Publishing a run of messages to one JetStream stream in order: one write for many.

A JetStream atomic batch (nats-server 2.12+, stream with ``allow_atomic``) stores every
message of the batch or none of them, in the order sent, for one acknowledgement and one
fsync. That is what lets the relay and the bridge publish many messages at once without
the hazard of plain pipelining, where a refused message can be followed by stored later
ones (a reordering downstream).

The protocol is headers on plain publishes: each message carries ``Nats-Batch-Id`` and
``Nats-Batch-Sequence`` (from 1), the last also ``Nats-Batch-Commit: 1`` and a reply
subject; the answer to the commit is ``{"stream","seq","batch","count"}`` or an error.
One duplicate ``Nats-Msg-Id`` rejects the whole batch (error 10201), which on a retry
means an earlier attempt, or another publisher, stored some of it: :func:`publish_in_order`
then publishes the messages one at a time, which stores the missing ones in order and
has JetStream drop the others as duplicates.

A short run is published one message at a time instead: with file storage nats-server
2.15 answers an atomic commit in about 4.5 ms however small the batch (a plain publish:
about 1 ms; both with every write fsynced), so up to :data:`SMALL_RUN` messages the plain
publishes, one after another's acknowledgement, are sooner. Beyond that the batch wins,
and by far under load, where each of those plain publishes waits for its own fsync.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext

from herald_common.events import random_id

#: Messages in one atomic batch at most (nats-server's ``max_msgs`` default).
MAX_BATCH = 1000
#: Runs of at most this many messages are published one at a time (see above).
SMALL_RUN = 3
#: The error code of a batch that holds a message id the stream has already stored.
DUPLICATE_IN_BATCH = 10201

BATCH_ID = "Nats-Batch-Id"
BATCH_SEQUENCE = "Nats-Batch-Sequence"
BATCH_COMMIT = "Nats-Batch-Commit"
MSG_ID = "Nats-Msg-Id"


class Outgoing(msgspec.Struct, frozen=True, gc=False):
    """One message to publish; ``headers`` should hold its ``Nats-Msg-Id``.

    A msgspec struct, not a dataclass: one is made per published message, and a frozen
    dataclass costs three times as much to make."""

    subject: str
    payload: bytes
    headers: dict[str, str]


class BatchError(Exception):
    """JetStream refused an atomic batch; nothing of it was stored."""

    def __init__(self, err_code: int, description: str) -> None:
        super().__init__(f"{description} ({err_code})")
        self.err_code = err_code
        self.description = description


class _ApiError(msgspec.Struct):
    err_code: int = 0
    description: str = ""


class _BatchAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    count: int = 0
    error: _ApiError | None = None


_ack_decoder = msgspec.json.Decoder(_BatchAck)


async def publish_atomic(nc: Client, messages: Sequence[Outgoing], timeout: float) -> int:
    """Store ``messages`` (at most :data:`MAX_BATCH`, one stream) all or nothing; returns the
    stream sequence of the last one.

    Raises :class:`BatchError` when JetStream refused the batch, and nats-py's errors
    (timeout, no responders, connection closed) when no answer came: then the batch may or
    may not have been stored, and publishing it again is safe (its message ids dedupe).
    """
    if not messages:
        raise ValueError("an atomic batch needs at least one message")
    if len(messages) > MAX_BATCH:
        raise ValueError(f"an atomic batch holds at most {MAX_BATCH} messages")
    batch_id = random_id()
    last = len(messages)
    await _send_all(nc, messages[:-1], batch_id)
    final = messages[-1]
    headers = final.headers | {BATCH_ID: batch_id, BATCH_SEQUENCE: str(last), BATCH_COMMIT: "1"}
    answer = await nc.request(final.subject, final.payload, timeout=timeout, headers=headers)
    try:
        ack = _ack_decoder.decode(answer.data)
    except msgspec.DecodeError:
        raise BatchError(0, f"unreadable batch acknowledgement {answer.data[:80]!r}") from None
    if ack.error is not None:
        raise BatchError(ack.error.err_code, ack.error.description or "batch refused")
    if ack.count != last:
        raise BatchError(0, f"batch acknowledged {ack.count} messages of {last}")
    return ack.seq


#: The start of a header block holding only the message's id.
_ID_HEAD = f"NATS/1.0\r\n{MSG_ID}: ".encode()


def _hpub(subject: str, payload: bytes, headers: dict[str, str], batch_lines: bytes, number: int) -> bytes:
    """The protocol line, headers and payload of one message of a batch (``HPUB``);
    ``batch_lines`` is :func:`_batch_lines` of its batch."""
    if len(headers) == 1 and MSG_ID in headers:  # what Herald's messages carry
        head = b"%s%s\r\n%s%d\r\n\r\n" % (_ID_HEAD, headers[MSG_ID].encode(), batch_lines, number)
    else:
        lines = "".join([f"{key}: {value}\r\n" for key, value in headers.items()]).encode()
        head = b"NATS/1.0\r\n%s%s%d\r\n\r\n" % (lines, batch_lines, number)
    return b"HPUB %s %d %d\r\n%s%s\r\n" % (subject.encode(), len(head), len(head) + len(payload), head, payload)


def _batch_lines(batch_id: str) -> bytes:
    """The header lines every message of a batch shares, up to its sequence number."""
    return f"{BATCH_ID}: {batch_id}\r\n{BATCH_SEQUENCE}: ".encode()


async def _send_all(nc: Client, messages: Sequence[Outgoing], batch_id: str) -> None:
    """Send every message but the commit: numbered 1.. in ``batch_id``, as one write.

    nats-py encodes and queues each ``publish`` on its own (validating every header name
    against a regex, then buffering the command), which for a batch of hundreds costs more
    than the api's whole request handling; here the batch is encoded in one pass and queued
    as one command. The subjects and header values are Herald's own (topic subjects, hex
    ids), never raw client input. While the connection is not up (reconnecting), or a
    payload is over the server's limit, this falls back to ``publish``, which buffers or
    raises as nats-py does.
    """
    if not messages:
        return
    if not nc.is_connected or any(len(m.payload) > nc.max_payload for m in messages):
        for number, message in enumerate(messages, start=1):
            headers = message.headers | {BATCH_ID: batch_id, BATCH_SEQUENCE: str(number)}
            await nc.publish(message.subject, message.payload, headers=headers)
        return
    lines = _batch_lines(batch_id)
    blob = b"".join(
        _hpub(message.subject, message.payload, message.headers, lines, number)
        for number, message in enumerate(messages, start=1)
    )
    # What ``publish`` itself does with an encoded command (nats-py 2.16, pinned).
    await nc._send_command(blob)
    if nc._flush_queue is not None and nc._flush_queue.empty():
        await nc._flush_pending()


async def publish_in_order(
    nc: Client, js: JetStreamContext, messages: Sequence[Outgoing], timeout: float
) -> tuple[int, Exception | None]:
    """Publish ``messages`` in order, each stored at most once; nothing is sent after a failure.

    Runs of up to :data:`MAX_BATCH` go out as atomic batches (short ones, up to
    :data:`SMALL_RUN`, as plain publishes one after another). Returns how many leading
    messages are now stored (or were already, as duplicates) and the error that stopped
    the rest, or None when all are stored.
    """
    done = 0
    while done < len(messages):
        chunk = messages[done : done + MAX_BATCH]
        if len(chunk) > SMALL_RUN:
            try:
                await publish_atomic(nc, chunk, timeout)
            except BatchError as exc:
                if exc.err_code != DUPLICATE_IN_BATCH:
                    return done, exc
            except Exception as exc:  # no answer: stored or not, a retry dedupes
                return done, exc
            else:
                done += len(chunk)
                continue
        # A short run, or a batch holding some already stored message: one at a time, so
        # JetStream drops the duplicates and stores the rest in order.
        for message in chunk:
            try:
                await js.publish(message.subject, message.payload, timeout=timeout, headers=message.headers)
            except Exception as exc:
                return done, exc
            done += 1
    return done, None
