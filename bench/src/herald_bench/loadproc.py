"""One load-generator process: a share of the clients, driven by commands over a pipe.

The parent (:mod:`herald_bench.pool`) sends a command dict; the process answers with one
dict. Commands:

``open``       connect and authenticate ``count`` clients (``CONNECT`` + ``PING`` for
               nats), at most ``concurrency`` at a time; answers how many and how long.
``subscribe``  subscribe every open client; answers how many and how long.
``reset``      forget deliveries and latencies, start a CPU-time window; with ``base`` and
               ``size``, count distinct message ids ``base`` … per socket from now on.
``count``      deliveries so far (the parent polls it while draining).
``collect``    the latencies (raw ``array('q')`` bytes), deliveries, and the CPU time
               this process used since ``reset`` (user + system); with a window also
               duplicates, strays and how many sockets got each id (``hits``).
``top_up``     replace the clients the server closed since ``open`` (and subscribe them).
``post``       a :class:`~herald_bench.publishers.RestPlan` (``plan``) over ``connections``
               keep-alive connections; answers :meth:`~herald_bench.publishers.RestResult.wire`.
``close``      close every client (closing handshake, then abort after a timeout).
``quit``       exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from herald_bench import publishers
from herald_bench.clients import HeraldClient, NatsClient, Recorder
from herald_bench.httpload import ConnectionPool
from herald_bench.procs import raise_open_files
from herald_common.tokens import issue_token

OPEN_TIMEOUT = 15.0
CLOSE_TIMEOUT = 5.0
#: user ids of replacement clients start here, far from the ids of the first ones
REPLACEMENT_IDS = 10_000_000

Client = HeraldClient | NatsClient


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class LoadProcess:
    def __init__(self, index: int) -> None:
        self.index = index
        self.recorder = Recorder()
        self.clients: list[Client] = []
        self.topic = ""
        self._spec: dict[str, Any] = {}
        self._replacements = 0
        self._cpu0 = _cpu()
        self._wall0 = time.monotonic()

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["op"]
        if op == "open":
            return await self.open(cmd)
        if op == "top_up":
            return await self.top_up()
        if op == "subscribe":
            return await self.subscribe(int(cmd.get("concurrency", 200)))
        if op == "reset":
            size = int(cmd.get("size", 0))
            self.recorder.reset(int(cmd.get("base", 0)), size)
            for client in self.clients:
                client.seen = bytearray(size)
            self._cpu0 = _cpu()
            self._wall0 = time.monotonic()
            return {"open": self.open_count()}
        if op == "count":
            return {"count": self.recorder.count}
        if op == "collect":
            return self.collect()
        if op == "post":
            return await self.post(cmd)
        if op == "close":
            return await self.close()
        raise ValueError(f"unknown command {op!r}")

    def open_count(self) -> int:
        return sum(1 for c in self.clients if not c.closed.done())

    async def open(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self._spec = cmd
        self.topic = cmd["topic"]
        first: int = cmd["first"]
        return await self._open_many(range(first, first + int(cmd["count"])))

    async def top_up(self) -> dict[str, Any]:
        """Replace the clients the server closed (slow consumers) with new, subscribed ones."""
        self.clients = [c for c in self.clients if not c.closed.done()]
        missing = int(self._spec.get("count", 0)) - len(self.clients)
        if missing <= 0:
            return {"opened": 0, "failed": 0, "seconds": 0.0, "errors": {}}
        known = len(self.clients)
        first = REPLACEMENT_IDS + self._replacements
        self._replacements += missing
        opened = await self._open_many(range(first, first + missing))
        await self._subscribe_all(self.clients[known:], 200)
        return opened

    async def _open_many(self, ids: range) -> dict[str, Any]:
        spec = self._spec
        kind: str = spec["kind"]
        endpoints: list[tuple[str, int, str]] = [tuple(e) for e in spec["endpoints"]]
        secret: str = spec.get("secret", "")
        grants: list[str] = spec.get("grants", [])
        gate = asyncio.Semaphore(int(spec.get("concurrency", 100)))
        errors: Counter[str] = Counter()
        loop = asyncio.get_running_loop()
        factory: type[Client] = HeraldClient if kind == "herald" else NatsClient
        # Signed before the clock starts: the connect rate is about the server, not about
        # how fast this process signs tokens.
        tokens = {
            n: issue_token(secret, f"bench-{n}", ttl=3600, topics=grants) if kind == "herald" else "" for n in ids
        }

        async def one(n: int) -> None:
            host, port, path = endpoints[n % len(endpoints)]
            async with gate:
                client: Client | None = None
                try:
                    async with asyncio.timeout(OPEN_TIMEOUT):
                        _, client = await loop.create_connection(
                            lambda: factory(host, port, path, self.recorder), host, port
                        )
                        await client.authenticate(tokens[n])
                    self.clients.append(client)
                except Exception as exc:
                    errors[f"{type(exc).__name__}: {exc}"[:160]] += 1
                    if client is not None:
                        client.abort()

        start = time.monotonic()
        await asyncio.gather(*(one(n) for n in ids))
        seconds = time.monotonic() - start
        failed = sum(errors.values())
        return {
            "opened": len(ids) - failed,
            "failed": failed,
            "seconds": seconds,
            "errors": dict(errors.most_common(3)),
        }

    async def subscribe(self, concurrency: int) -> dict[str, Any]:
        live = [c for c in self.clients if not c.closed.done()]
        return await self._subscribe_all(live, concurrency)

    async def _subscribe_all(self, clients: list[Client], concurrency: int) -> dict[str, Any]:
        gate = asyncio.Semaphore(concurrency)
        errors: Counter[str] = Counter()

        async def one(client: Client) -> None:
            async with gate:
                try:
                    async with asyncio.timeout(OPEN_TIMEOUT):
                        await client.subscribe(self.topic)
                except Exception as exc:
                    errors[f"{type(exc).__name__}: {exc}"[:160]] += 1

        start = time.monotonic()
        await asyncio.gather(*(one(c) for c in clients))
        failed = sum(errors.values())
        seconds = time.monotonic() - start
        return {
            "subscribed": len(clients) - failed,
            "failed": failed,
            "seconds": seconds,
            "errors": dict(errors.most_common(3)),
        }

    def collect(self) -> dict[str, Any]:
        closes = Counter(str(c.close_code) for c in self.clients if c.closed.done())
        return {
            "count": self.recorder.count,
            "unstamped": self.recorder.unstamped,
            "last_ns": self.recorder.last_ns,
            "samples": self.recorder.samples.tobytes(),
            "cpu_seconds": _cpu() - self._cpu0,
            "wall_seconds": time.monotonic() - self._wall0,
            "open": self.open_count(),
            "closed": dict(closes),
            "duplicates": self.recorder.duplicates,
            "strays": self.recorder.strays,
            "hits": self.recorder.hits.tobytes(),
        }

    async def post(self, cmd: dict[str, Any]) -> dict[str, Any]:
        pool = ConnectionPool(cmd["host"], int(cmd["port"]), int(cmd["connections"]))
        try:
            result = await publishers.rest(pool, cmd["token"], publishers.RestPlan(**cmd["plan"]))
        finally:
            pool.close()
        return result.wire()

    async def close(self) -> dict[str, Any]:
        for client in self.clients:
            client.close()
        pending = [c.closed for c in self.clients if not c.closed.done()]
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)
        aborted = 0
        for client in self.clients:
            if not client.closed.done():
                client.abort()
                aborted += 1
        self.clients = []
        await asyncio.sleep(0)
        return {"aborted": aborted}


async def _serve(conn: Connection, index: int) -> None:
    proc = LoadProcess(index)
    loop = asyncio.get_running_loop()
    while True:
        cmd: dict[str, Any] = await loop.run_in_executor(None, conn.recv)
        if cmd["op"] == "quit":
            await proc.close()
            conn.send({"ok": True})
            return
        try:
            reply = await proc.handle(cmd)
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        await loop.run_in_executor(None, conn.send, reply)


def main(conn: Connection, index: int) -> None:
    """Entry point of a load process (run through ``multiprocessing``)."""
    raise_open_files()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve(conn, index))
