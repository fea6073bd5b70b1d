"""Paced publishers: message ``k`` is due at ``start + k / rate``; late ones go out at once.

Each publish is stamped with ``time.time_ns()`` just before the call that hands it to the
client library, and runs as its own task (at most ``MAX_IN_FLIGHT`` unanswered), so a
slow acknowledgement delays neither the schedule nor the next stamp.

- :func:`jetstream` — ``js.publish`` to ``topics.<topic>`` (waits for the stream's ack):
  the real Herald path (stored in HERALD_TOPICS, republished to ``live.<topic>``).
- :func:`core` — plain ``nc.publish`` to a subject no stream captures: nothing stored.
- :func:`rest` — ``POST /api/messages`` to the api (run in the load processes, see
  :mod:`herald_bench.httpload`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.js import JetStreamContext

from herald_bench.clients import stamp
from herald_bench.httpload import ConnectionPool, post_json

MAX_IN_FLIGHT = 512
SETTLE_TIMEOUT = 10


@dataclass
class Published:
    sent: int = 0
    failed: int = 0
    start_ns: int = 0
    seconds: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    #: request latencies (µs) when the publish has an answer worth reporting (REST)
    answers_us: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def padding(size: int) -> str:
    """Filler that makes a stamped payload about ``size`` bytes (the stamp is ~24 of them)."""
    return "x" * max(0, size - 24)


async def paced(rate: float, seconds: float, send: Callable[[int], Awaitable[None]]) -> Published:
    """Call ``send(k)`` for ``k`` in ``range(rate * seconds)`` on schedule; count what failed."""
    result = Published()
    total = max(1, round(rate * seconds))
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()

    async def one(k: int) -> None:
        try:
            await send(k)
            result.sent += 1
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
        await gate.acquire()
        task = asyncio.create_task(one(k))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(list(tasks), timeout=SETTLE_TIMEOUT)
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
        await js.publish(subject, body, headers=headers)

    return await paced(rate, seconds, send)


async def core(nc: Client, subject: str, rate: float, seconds: float, size: int) -> Published:
    pad = padding(size).encode()

    async def send(_: int) -> None:
        await nc.publish(subject, stamp(time.time_ns()).encode() + pad)

    result = await paced(rate, seconds, send)
    await nc.flush(timeout=SETTLE_TIMEOUT)
    return result


async def rest(pool: ConnectionPool, token: str, recipient: str, rate: float, seconds: float, size: int) -> Published:
    """``POST /api/messages`` to ``recipient`` over ``pool``; the answers' latencies are kept."""
    pad = padding(size)
    answers: list[int] = []

    async def send(_: int) -> None:
        t0 = time.time_ns()
        body = {"content": stamp(t0) + pad, "recipientId": recipient}
        status, _answer = await pool.request(post_json(pool.host, pool.port, "/api/messages", token, body))
        answers.append((time.time_ns() - t0) // 1000)
        if status != 201:
            raise RuntimeError(f"HTTP {status}")

    result = await paced(rate, seconds, send)
    result.answers_us = answers
    return result
