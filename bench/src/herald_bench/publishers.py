"""Paced publishers: message ``k`` is due at ``start + k / rate``; late ones go out at once.

Each publish is stamped with ``time.time_ns()`` just before the call that hands it to the
client library, and runs as its own task (at most ``MAX_IN_FLIGHT`` unanswered), so a
slow acknowledgement delays neither the schedule nor the next stamp.

- :func:`jetstream` — ``js.publish`` to ``topics.<topic>`` (waits for the stream's ack):
  the real Herald path (stored in HERALD_TOPICS, republished to ``live.<topic>``).
- :func:`core` — plain ``nc.publish`` to a subject no stream captures: nothing stored.
- :func:`numbered_core` — the same with numbered payloads (the REST-fed rows' anchor).
- :func:`rest` — ``POST /api/publish``, ``/api/publish/batch`` or ``/api/messages`` to
  the api with numbered payloads (run in the load processes, see :mod:`herald_bench.httpload`).
  Its schedule is bounded: what could not be written by the end of the window is
  counted as not sent, and answers still missing a while later as unanswered.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from herald_bench.clients import numbered, stamp
from herald_bench.httpload import ConnectionPool, NoConnectionError, post_json

MAX_IN_FLIGHT = 512
SETTLE_TIMEOUT = 10
#: seconds a JetStream publish waits for its ack
ACK_TIMEOUT = 5.0


@dataclass
class Published:
    sent: int = 0
    failed: int = 0
    start_ns: int = 0
    seconds: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    #: request latencies (µs) when the publish has an answer worth reporting (REST)
    answers_us: list[int] = field(default_factory=list)
    #: not handed over before the window closed / no answer in time (bounded schedules)
    unsent: int = 0
    unanswered: int = 0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def padding(size: int) -> str:
    """Filler that makes a stamped payload about ``size`` bytes (the stamp is ~24 of them)."""
    return "x" * max(0, size - 24)


class WindowClosedError(Exception):
    """The window closed before the message could be handed over (no free connection)."""


async def paced(
    rate: float,
    seconds: float,
    send: Callable[[int], Awaitable[None]],
    *,
    cutoff: float | None = None,
    settle: float = SETTLE_TIMEOUT,
) -> Published:
    """Call ``send(k)`` for ``k`` in ``range(rate * seconds)`` on schedule; count what failed.

    With ``cutoff`` (seconds after the start) nothing more is started after it: the rest
    counts as not sent, as does a ``send`` that raises :class:`WindowClosedError`; sends still
    running ``settle`` seconds after the schedule ends are cancelled and counted as
    unanswered. Without it every send is started however late, and waited for up to
    ``settle`` seconds.
    """
    result = Published()
    total = max(1, round(rate * seconds))
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()

    async def one(k: int) -> None:
        try:
            await send(k)
            result.sent += 1
        except WindowClosedError:
            result.unsent += 1
        except Exception as exc:
            result.failed += 1
            result.errors[f"{type(exc).__name__}: {exc}"[:100]] += 1
        finally:
            gate.release()

    result.start_ns = time.time_ns()
    start = time.monotonic()
    for k in range(total):
        delay = start + k / rate - time.monotonic()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        if cutoff is None:
            await gate.acquire()
        else:
            left = start + cutoff - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                if gate.locked():  # only then is a timed wait needed (wait_for costs a task)
                    await asyncio.wait_for(gate.acquire(), left)
                else:
                    await gate.acquire()
            except TimeoutError:
                result.unsent += total - k
                break
        task = asyncio.create_task(one(k))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        _, pending = await asyncio.wait(list(tasks), timeout=settle)
        if cutoff is not None and pending:
            result.unanswered = len(pending)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    result.seconds = time.monotonic() - start
    return result


async def jetstream(js: JetStreamContext, subject: str, rate: float, seconds: float, size: int) -> Published:
    pad = padding(size)
    # TRACEPARENT (the W3C context carried in the environment) goes out with every message,
    # so gateways with tracing on do their full per-message tracing work in the benchmark.
    traceparent = os.environ.get("TRACEPARENT")
    headers = {"traceparent": traceparent} if traceparent else None

    async def send(_: int) -> None:
        body = f'{{"data":{{"p":"{stamp(time.time_ns())}{pad}"}}}}'.encode()
        # the ack waits for an fsync (sync_interval: always): allow it longer than nats-py's 0.5 s
        await js.publish(subject, body, timeout=ACK_TIMEOUT, headers=headers)

    return await paced(rate, seconds, send)


async def core(nc: Client, subject: str, rate: float, seconds: float, size: int) -> Published:
    pad = padding(size).encode()

    async def send(_: int) -> None:
        await nc.publish(subject, stamp(time.time_ns()).encode() + pad)

    result = await paced(rate, seconds, send)
    await nc.flush(timeout=SETTLE_TIMEOUT)
    return result


async def numbered_core(
    nc: Client, subject: str, rate: float, seconds: float, size: int, first: int
) -> tuple[Published, bytes]:
    """:func:`core` with ids ``first`` … in the payloads; also returns which ids went out (one byte each)."""
    pad = padding(size).encode()
    sent = bytearray(max(1, round(rate * seconds)))

    async def send(k: int) -> None:
        await nc.publish(subject, numbered(time.time_ns(), first + k).encode() + pad)
        sent[k] = 1

    result = await paced(rate, seconds, send)
    try:
        await nc.flush(timeout=SETTLE_TIMEOUT)
    except (TimeoutError, nats.errors.Error) as exc:
        # nats-server did not answer the PING in time: the figures still say what arrived
        result.errors[f"flush after the window: {type(exc).__name__}"] += 1
    return result, bytes(sent)


#: the REST-fed kinds: path, the status of success, and whether a request carries many messages
REST_KINDS: dict[str, tuple[str, int]] = {
    "publish": ("/api/publish", 202),
    "batch": ("/api/publish/batch", 202),
    "message": ("/api/messages", 201),
}


@dataclass
class RestPlan:
    """What one load process POSTs: message ``m`` of this process has id ``first + m * stride``."""

    kind: str
    #: the topic of publish/batch, the recipient of message
    target: str
    #: messages per second (a batch request carries ``batch`` of them)
    rate: float
    seconds: float
    size: int
    first: int
    stride: int
    batch: int = 1
    #: seconds after the window that unanswered requests are waited for
    answer_wait: float = 5.0

    @property
    def requests(self) -> int:
        return max(1, math.ceil(self.rate * self.seconds / self.batch))


@dataclass
class RestResult:
    """Counts in messages (not requests), except ``statuses`` and ``answers_us`` (per request)."""

    offered: int = 0
    accepted: int = 0
    failed: int = 0
    unsent: int = 0
    unanswered: int = 0
    start_ns: int = 0
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    answers_us: list[int] = field(default_factory=list)
    #: one byte per local message: 1 when its request was accepted
    accepted_local: bytearray = field(default_factory=bytearray)

    def wire(self) -> dict[str, Any]:
        return {
            "offered": self.offered,
            "accepted": self.accepted,
            "failed": self.failed,
            "unsent": self.unsent,
            "unanswered": self.unanswered,
            "start_ns": self.start_ns,
            "seconds": self.seconds,
            "statuses": dict(self.statuses),
            "errors": dict(self.errors.most_common(3)),
            "answers_us": array("q", self.answers_us).tobytes(),
            "accepted_local": bytes(self.accepted_local),
        }


def _item(plan: RestPlan, seq: int, now_ns: int, pad: str) -> dict[str, Any]:
    mark = numbered(now_ns, seq) + pad
    if plan.kind == "message":
        return {"content": mark, "recipientId": plan.target}
    return {"topic": plan.target, "data": {"p": mark}}


async def rest(pool: ConnectionPool, token: str, plan: RestPlan) -> RestResult:
    """POST ``plan`` over ``pool`` on schedule, for at most the window plus ``answer_wait``."""
    path, ok = REST_KINDS[plan.kind]
    pad = padding(plan.size)
    batch = plan.batch if plan.kind == "batch" else 1
    out = RestResult(offered=plan.requests * batch, accepted_local=bytearray(plan.requests * batch))
    deadline = 0.0

    async def send(r: int) -> None:
        t0 = 0

        def build() -> bytes:
            nonlocal t0
            if time.monotonic() > deadline:
                raise WindowClosedError
            t0 = time.time_ns()
            seqs = [plan.first + (r * batch + j) * plan.stride for j in range(batch)]
            if plan.kind == "batch":
                body: object = {"items": [_item(plan, seq, t0, pad) for seq in seqs]}
            else:
                body = _item(plan, seqs[0], t0, pad)
            return post_json(pool.host, pool.port, path, token, body)

        try:
            status, answer = await pool.request(build, deadline)
        except NoConnectionError:
            raise WindowClosedError from None
        out.answers_us.append((time.time_ns() - t0) // 1000)
        out.statuses[str(status)] += 1
        if status != ok:
            out.failed += batch
            raise RuntimeError(f"HTTP {status}: {answer[:80].decode(errors='replace')}")
        if plan.kind == "batch":
            ids = json.loads(answer).get("eventIds", [])
            if len(ids) != batch:
                out.failed += batch
                raise RuntimeError(f"{len(ids)} eventIds for {batch} items")
        out.accepted += batch
        out.accepted_local[r * batch : (r + 1) * batch] = b"\x01" * batch

    deadline = time.monotonic() + plan.seconds
    pub = await paced(plan.requests / plan.seconds, plan.seconds, send, cutoff=plan.seconds, settle=plan.answer_wait)
    out.unsent = pub.unsent * batch
    out.unanswered = pub.unanswered * batch
    out.errors = pub.errors
    out.start_ns = pub.start_ns
    out.seconds = pub.seconds
    return out
