"""Real processes for the client tests: a stack without gateways, gateways on chosen ports,
a REST publisher that numbers its messages, and exact accounting of what arrived."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from herald_client import Message, Subscription
from tests.support.procs import Service, wait_for_port, wait_http_ok
from tests.support.stack import Stack, token

#: Every test socket comes from 127.0.0.1: lift the per-IP limits; publish without a per-token rate.
SERVICE_ENV = {
    "HERALD_API_POST_RATE": "0",
    "HERALD_MAX_CONNECTIONS_PER_IP": "10000",
    "HERALD_CONNECT_RATE_PER_IP": "10000",
    "HERALD_CONNECT_BURST_PER_IP": "10000",
}

_names = itertools.count()


def start_gateway(stack: Stack, port: int, metrics_port: int, **extra: str) -> Service:
    """``herald gateway`` on ``port`` (again, after one was stopped there), waited for until ready."""
    env = stack.env(
        "gateway",
        HERALD_GATEWAY_PORT=str(port),
        HERALD_GATEWAY_METRICS_PORT=str(metrics_port),
        **SERVICE_ENV,
        **extra,
    )
    service = Service("gateway", env, stack.root / f"gateway-{port}-{next(_names)}.log")
    service.start()
    try:
        wait_http_ok(f"http://127.0.0.1:{metrics_port}/readyz", proc=service.proc)
        wait_for_port(port, proc=service.proc)
    except BaseException:
        print(service.logs())
        service.stop()
        raise
    return service


async def publish_load(
    stack: Stack, topics: Sequence[str], rate: float, seconds: float, stop: asyncio.Event | None = None
) -> dict[str, list[int]]:
    """Publish ``rate`` messages per second over REST for ``seconds`` (or until ``stop``),
    as batches holding one message per topic, one request at a time; ``data`` is
    ``{"i": n}`` with ``n`` counting per topic. Returns the accepted numbers per topic."""
    accepted: dict[str, list[int]] = {t: [] for t in topics}
    publisher = token("sdk-publisher", "publisher")
    interval = len(topics) / rate
    loop = asyncio.get_running_loop()
    start = loop.time()
    n = 0
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as http:
        while loop.time() - start < seconds and not (stop is not None and stop.is_set()):
            items = [{"topic": t, "data": {"i": n}} for t in topics]
            resp = await http.post(
                "/api/publish/batch", json={"items": items}, headers={"Authorization": f"Bearer {publisher}"}
            )
            assert resp.status_code == 202, resp.text
            for t in topics:
                accepted[t].append(n)
            n += 1
            await asyncio.sleep(max(0.0, start + n * interval - loop.time()))
    return accepted


@dataclass
class Collector:
    """Everything one subscription hands over, by topic, in the order handed."""

    sub: Subscription
    got: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    messages: list[Message] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> Collector:
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        async for message in self.sub:
            self.messages.append(message)
            self.got[message.topic].append(message.data["i"])

    def has(self, expected: dict[str, list[int]]) -> bool:
        return all(len(self.got.get(t, [])) >= len(ids) for t, ids in expected.items())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


def account(got: dict[str, list[int]], expected: dict[str, list[int]]) -> dict[str, int]:
    """Lost, duplicated and reordered messages (by the numbers in their data), over every topic."""
    lost = duplicated = reordered = 0
    for topic, ids in expected.items():
        seen = got.get(topic, [])
        lost += len(set(ids) - set(seen))
        duplicated += len(seen) - len(set(seen))
        reordered += sum(1 for a, b in itertools.pairwise(seen) if b < a)
    extra = sum(len(v) for t, v in got.items() if t not in expected)
    return {"lost": lost, "duplicated": duplicated, "reordered": reordered, "foreign": extra}


async def wait_for(collectors: Sequence[Collector], expected: Sequence[dict[str, list[int]]], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not all(c.has(e) for c, e in zip(collectors, expected, strict=True)):
        if asyncio.get_running_loop().time() > deadline:
            return  # the accounting says what is missing
        await asyncio.sleep(0.05)
