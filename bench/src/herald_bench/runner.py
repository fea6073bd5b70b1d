"""The benchmark's sections, run in order against processes started for the run.

The headline is fed over REST, the path users use (:mod:`herald_bench.restfed`; api +
outbox relay + bridge + gateway, each row compared with nats-server's own listener):

1. ``rest``: single ``POST /api/publish``, ``POST /api/publish/batch``, ``POST /api/messages``
   at offered rates, and the latency at a low rate;
2. ``fanout-rest``: many sockets on one topic fed by single POSTs;
3. ``producer``: single POSTs at rising offered rates, what each stage did.

Then the breakdowns, which publish straight into JetStream (the gateway only, bypassing
the api, its outbox, the relay and the bridge):

4. ``fanout``: through one gateway process: connect C clients, a fixed-rate measurement, a
   saturation search; the same against nats-server's native WebSocket listener and
   through one gateway of several processes on one port (SO_REUSEPORT);
5. ``latency``: at 50,000 deliveries/s, the three targets in turns, several rounds;
6. ``idle``: RSS per connection and connect rate, for a fresh gateway and for nats-server;
7. ``presence``: members joining one topic on two gateways (:mod:`herald_bench.presence`).

A section that fails is recorded with its error and the run goes on; nothing is filled in
for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import resource
import secrets
import subprocess
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from statistics import median
from typing import Any

import nats
from nats.aio.client import Client

from herald_bench import presence, publishers, targets
from herald_bench.config import REST_SECTIONS, Config
from herald_bench.nodepool import NodePool
from herald_bench.pool import LoadPool, Pool
from herald_bench.procs import BIN, Stack, cpu_seconds, gateway_pids, rss_bytes
from herald_bench.restfed import RestFed
from herald_bench.stats import latency_ms, merge_samples
from herald_bench.targets import Target

POLL_INTERVAL = 0.1
SETTLE = 0.5
IDLE_SETTLE = 2.0
WARM_UP_RATE = 10.0
WARM_UP_SECONDS = 0.5


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        mem_gib = round(int(mem.split()[1]) / 1024 / 1024, 1)
    except (OSError, StopIteration):
        mem_gib = 0.0
    try:
        version = subprocess.run(
            [str(BIN / "nats-server"), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except OSError:
        version = "unknown"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": mem_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nats_server": version,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def start_pool(runtime: str, processes: int) -> Pool:
    """The load processes, in Node (the default) or in Python (``--load-runtime``)."""
    return NodePool(processes) if runtime == "node" else LoadPool(processes)


class Bench:
    def __init__(self, config: Config) -> None:
        self.cfg = config
        self.secret = secrets.token_hex(32)
        self.stack = Stack(self.secret, dict(config.gateway_env), dict(config.api_env))
        self.pool: Pool | None = None
        self.nc: Client | None = None
        self.nats_pid = 0
        self.progress: Callable[[str], None] = lambda _: None

    async def run(self) -> dict[str, Any]:
        cfg = self.cfg
        results: dict[str, Any] = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(),
            # the load processes and connections as resolved for the runtime (0 means its default)
            "config": asdict(cfg) | {"processes": cfg.load_processes, "post_connections": cfg.connections_per_process},
            "paths": {"herald": targets.HERALD_PATH, "nats-native": targets.NATIVE_PATH, "rest": targets.REST_PATH},
            "settings": self.stack.settings(),
            "sections": {},
        }
        sections: dict[str, Any] = results["sections"]
        started = time.monotonic()
        try:
            self.pool = start_pool(cfg.load_runtime, cfg.load_processes)
            self.stack.start_nats()
            self.nc = await nats.connect(self.stack.nats.url, max_reconnect_attempts=0, error_cb=self._nats_error)
            js = self.nc.jetstream()
            nats_pid = self.nats_pid = self._pid(self.stack.nats.proc)

            want = set(cfg.sections)
            if want & REST_SECTIONS:
                await self._rest_fed(want, sections)
            native = targets.native(self.stack.nats.ws_port, self.nc, cfg.payload, {"nats-server": nats_pid})
            if want & {"fanout", "latency"}:
                gw, port = self.stack.gateway()
                one = targets.herald("herald", [port], js, cfg.payload, {"gateway": gw.pid, "nats-server": nats_pid})
                multi, multi_port = self.stack.gateway(workers=cfg.gateway_workers)
                workers = {f"gateway-{i}": pid for i, pid in enumerate(gateway_pids(multi))}
                many = targets.herald(
                    f"herald-{cfg.gateway_workers}proc",
                    [multi_port],
                    js,
                    cfg.payload,
                    workers | {"nats-server": nats_pid},
                )
                if "fanout" in want:
                    sections["fanout_herald"] = await self._section("fan-out, 1 gateway process", self._fanout(one))
                    sections["fanout_native"] = await self._section(
                        "fan-out, nats-server WebSocket", self._fanout(native)
                    )
                    sections["fanout_herald_multi"] = await self._section(
                        f"fan-out, {cfg.gateway_workers} gateway processes on one port", self._fanout(many)
                    )
                if "latency" in want:
                    sections["latency"] = await self._section(
                        f"latency at {cfg.latency_rate:g} msg/s", self._latency([one, native, many])
                    )
                self.stack.stop(gw)
                self.stack.stop(multi)
            if "idle" in want:
                sections["idle_herald"] = await self._section("idle connections, gateway", self._idle_gateway(js))
                sections["idle_native"] = await self._section(
                    "idle connections, nats-server", self._idle(native, nats_pid, baseline_wait=0.0)
                )
            if "presence" in want:
                sections["presence"] = await self._section("presence, 2 gateways", presence.run(self))
        finally:
            if self.pool is not None:
                self.pool.shutdown()
            if self.nc is not None and not self.nc.is_closed:
                await self.nc.close()
            self.stack.close()
        results["seconds"] = round(time.monotonic() - started, 1)
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        return results

    async def _nats_error(self, exc: Exception) -> None:
        # one line instead of nats-py's traceback (e.g. a PONG after a flush gave up waiting)
        self.progress(f"  publisher's NATS connection: {type(exc).__name__}: {exc}")

    @staticmethod
    def _pid(proc: subprocess.Popen[bytes] | None) -> int:
        assert proc is not None
        return proc.pid

    async def _section(self, title: str, work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        self.progress(f"{title} …")
        t0 = time.monotonic()
        try:
            result = await work
        except Exception as exc:
            self.progress(f"{title}: FAILED: {type(exc).__name__}: {exc}")
            return {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=5)}
        finally:
            if self.pool is not None:
                try:
                    await self.pool.broadcast({"op": "close"}, timeout=30)
                except Exception as exc:
                    self.progress(f"{title}: closing the clients failed: {exc}")
        result["seconds"] = round(time.monotonic() - t0, 1)
        self.progress(f"{title}: done in {result['seconds']} s")
        return result

    async def _rest_fed(self, want: set[str], sections: dict[str, Any]) -> None:
        """The headline: api, bridge and a gateway of their own, stopped when done."""
        cfg = self.cfg
        rest = RestFed(self)
        before = [id(s) for s in self.stack.services]
        try:
            await rest.start()
            if "rest" in want:
                sections["rest_publish"] = await self._section(
                    f"REST publish, {cfg.publish_clients} sockets", rest.publish_row()
                )
                sections["rest_batch"] = await self._section(
                    f"REST publish batch of {cfg.batch_size}, {cfg.batch_clients} sockets", rest.batch_row()
                )
                sections["rest_messages"] = await self._section(
                    f"REST direct messages, {cfg.message_clients} sockets", rest.message_row()
                )
                sections["rest_latency"] = await self._section(
                    f"REST publish latency at {cfg.rest_latency_rate:g} msg/s", rest.latency_row()
                )
            if "fanout-rest" in want:
                sections["fanout_rest"] = await self._section(
                    f"REST-fed fan-out, {cfg.fanout_rest_clients} sockets", rest.fanout_row()
                )
            if "producer" in want:
                sections["producer"] = await self._section("producer sweep", rest.producer())
        finally:
            await rest.close()
            for service in self.stack.services:
                if id(service) not in before:
                    self.stack.stop(service)

    # connecting

    @contextlib.asynccontextmanager
    async def own_pool(self, processes: int) -> AsyncIterator[None]:
        """Measure with ``processes`` fresh load processes of their own meanwhile (the shared
        ones stay idle), then go back to the shared ones."""
        shared = self.pool
        pool = await asyncio.to_thread(start_pool, self.cfg.load_runtime, processes)
        self.pool = pool
        try:
            yield
        finally:
            self.pool = shared
            await asyncio.to_thread(pool.shutdown)

    async def connect(self, target: Target, count: int, first: int = 0) -> dict[str, Any]:
        """Open, authenticate and subscribe ``count`` clients; the rates count successes only."""
        assert self.pool is not None
        opened = await self.pool.open(target.kind, target.endpoints, count, target.topic, self.secret, first)
        ok = sum(a["opened"] for a in opened)
        seconds = max(a["seconds"] for a in opened)
        subscribed = await self.pool.broadcast({"op": "subscribe"})
        sub_ok = sum(a["subscribed"] for a in subscribed)
        sub_seconds = max(a["seconds"] for a in subscribed)
        errors: Counter[str] = Counter()
        for answer in [*opened, *subscribed]:
            errors.update(answer["errors"])
        if ok == 0:
            raise RuntimeError(f"no client could connect: {dict(errors)}")
        return {
            "requested": count,
            "connected": ok,
            "subscribed": sub_ok,
            "connect_seconds": round(seconds, 3),
            "connects_per_s": round(ok / seconds, 1) if seconds > 0 else None,
            "subscribe_seconds": round(sub_seconds, 3),
            "subscribes_per_s": round(sub_ok / sub_seconds, 1) if sub_seconds > 0 else None,
            "errors": dict(errors.most_common(5)),
        }

    # measuring

    async def _measure(
        self,
        target: Target,
        rate: float,
        seconds: float,
        publish: Callable[[float, float], Awaitable[Any]],
        drain: float | None = None,
    ) -> dict[str, Any]:
        """Publish at ``rate`` for ``seconds``, wait for the deliveries (at most ``drain``), summarise.

        Deliveries per second are counted over the longer of the publishing window
        (messages / rate) and first publish → last receipt, so a run that falls behind
        is charged for its backlog.
        """
        assert self.pool is not None
        resets = await self.pool.broadcast({"op": "reset"})
        clients = sum(a["open"] for a in resets)
        servers0 = {name: cpu_seconds(pid) for name, pid in target.servers.items()}
        own0 = _own_cpu()
        t0 = time.monotonic()
        pub: publishers.Published = await publish(rate, seconds)
        expected = pub.sent * clients
        deadline = time.monotonic() + (self.cfg.drain if drain is None else drain)
        while time.monotonic() < deadline:
            counts = await self.pool.broadcast({"op": "count"})
            if sum(a["count"] for a in counts) >= expected:
                break
            await asyncio.sleep(POLL_INTERVAL)
        answers = await self.pool.broadcast({"op": "collect"})
        wall = time.monotonic() - t0
        servers = {
            name: round(100 * (cpu_seconds(pid) - servers0[name]) / wall, 1) for name, pid in target.servers.items()
        }
        delivered = sum(a["count"] for a in answers)
        last_ns = max(a["last_ns"] for a in answers)
        span = max((last_ns - pub.start_ns) / 1e9, (pub.sent + pub.failed) / rate) if delivered else 0.0
        closed: Counter[str] = Counter()
        for answer in answers:
            closed.update(answer["closed"])
        result: dict[str, Any] = {
            "rate": round(rate, 2),
            "published": pub.sent,
            "publish_failed": pub.failed,
            "publish_rate": round(pub.rate, 1),
            "publish_errors": dict(pub.errors.most_common(3)),
            "clients": clients,
            "deliveries": delivered,
            "expected": expected,
            "delivered_pct": round(100 * delivered / expected, 2) if expected else None,
            "deliveries_per_s": round(delivered / span, 1) if span > 0 else 0.0,
            "latency": latency_ms(merge_samples(a["samples"] for a in answers)),
            "unstamped": sum(a["unstamped"] for a in answers),
            "clients_open_after": sum(a["open"] for a in answers),
            "closed_by_server": dict(closed),
            "cpu_pct": {
                **servers,
                "publisher": round(100 * (_own_cpu() - own0) / wall, 1),
                "load_processes": [round(100 * a["cpu_seconds"] / a["wall_seconds"], 1) for a in answers],
            },
        }
        if pub.answers_us:
            result["request_latency"] = latency_ms(pub.answers_us)
        return result

    def _passes(self, m: dict[str, Any]) -> bool:
        p99 = m["latency"]["p99_ms"]
        return (
            p99 is not None
            and p99 < self.cfg.sat_p99_ms
            and (m["delivered_pct"] or 0) >= 99.0
            and m["publish_rate"] >= 0.9 * m["rate"]
            and m["clients_open_after"] >= m["clients"]
        )

    async def _saturate(self, target: Target, clients: int) -> dict[str, Any]:
        """Highest delivery rate with p99 under the limit: double or halve, then bisect."""
        assert self.pool is not None
        cfg = self.cfg
        steps: list[dict[str, Any]] = []
        good: float | None = None
        bad: float | None = None
        rate = max(0.5, cfg.sat_start / max(1, clients))

        async def step(r: float) -> bool:
            top = await self.pool.broadcast({"op": "top_up"}) if steps else []  # type: ignore[union-attr]
            m = await self._measure(target, r, cfg.sat_seconds, target.publish)
            m["passed"] = self._passes(m)
            m["replaced_clients"] = sum(a["opened"] for a in top)
            steps.append(m)
            self.progress(
                f"  {target.name} {r:.1f} msg/s: {m['deliveries_per_s']:.0f} deliveries/s, "
                f"p99 {m['latency']['p99_ms']} ms, {m['delivered_pct']} % → {'pass' if m['passed'] else 'fail'}"
            )
            await asyncio.sleep(SETTLE)
            return bool(m["passed"])

        for _ in range(cfg.sat_steps):
            if await step(rate):
                good = rate
                if bad is not None:
                    break
                rate *= 2
            else:
                bad = rate
                if good is not None:
                    break
                rate /= 2
        for _ in range(cfg.sat_refine):
            if good is None or bad is None:
                break
            mid = (good + bad) / 2
            if await step(mid):
                good = mid
            else:
                bad = mid
        passed = [s for s in steps if s["passed"]]
        best = max(passed, key=lambda s: s["deliveries_per_s"]) if passed else None
        return {
            "p99_limit_ms": cfg.sat_p99_ms,
            "max_deliveries_per_s": best["deliveries_per_s"] if best else None,
            "at_rate": best["rate"] if best else None,
            "best": best,
            "first_failing_rate": round(bad, 2) if bad is not None else None,
            "steps": steps,
        }

    async def _warm_up(
        self, target: Target, publish: Callable[[float, float], Awaitable[Any]], drain: float | None = None
    ) -> dict[str, Any]:
        """A few messages first, so that first-use costs (stream lookups, code paths) are not measured."""
        warm = await self._measure(target, WARM_UP_RATE, WARM_UP_SECONDS, publish, drain)
        await asyncio.sleep(SETTLE)
        return {k: warm[k] for k in ("published", "deliveries", "expected", "latency")}

    # sections

    async def _fanout(self, target: Target) -> dict[str, Any]:
        cfg = self.cfg
        connect = await self.connect(target, cfg.clients)
        await self._warm_up(target, target.publish)
        fixed = await self._measure(target, cfg.rate, cfg.seconds, target.publish)
        await asyncio.sleep(SETTLE)
        saturation = await self._saturate(target, connect["subscribed"])
        return {
            "target": target.name,
            "path": target.path,
            "connect": connect,
            "fixed": fixed,
            "saturation": saturation,
        }

    async def _latency(self, compared: list[Target]) -> dict[str, Any]:
        """Each target measured ``latency_rounds`` times at ``latency_rate``, in alternating order.

        Every measurement has its own fresh clients (connected, warmed up, measured, closed),
        so the targets take turns on the same machine; the summary is the median over the
        rounds of each figure, and the rounds are kept.
        """
        assert self.pool is not None
        cfg = self.cfg
        rounds: dict[str, list[dict[str, Any]]] = {t.name: [] for t in compared}
        for index in range(cfg.latency_rounds):
            order = compared if index % 2 == 0 else compared[::-1]
            for target in order:
                try:
                    await self.connect(target, cfg.clients)
                    await self._warm_up(target, target.publish)
                    m = await self._measure(target, cfg.latency_rate, cfg.latency_seconds, target.publish)
                finally:
                    await self.pool.broadcast({"op": "close"}, timeout=30)
                m["round"] = index + 1
                rounds[target.name].append(m)
                self.progress(
                    f"  round {index + 1} {target.name}: p50 {m['latency']['p50_ms']} ms, "
                    f"p99 {m['latency']['p99_ms']} ms, {m['delivered_pct']} %"
                )
                await asyncio.sleep(SETTLE)
        summary = {
            name: {
                key: median([m["latency"][key] for m in ms if m["latency"][key] is not None])
                for key in ("p50_ms", "p99_ms", "max_ms")
            }
            | {"delivered_pct_min": min(m["delivered_pct"] or 0.0 for m in ms)}
            for name, ms in rounds.items()
        }
        return {
            "rate": cfg.latency_rate,
            "clients": cfg.clients,
            "seconds": cfg.latency_seconds,
            "median": summary,
            "rounds": rounds,
        }

    async def _idle_gateway(self, js: Any) -> dict[str, Any]:
        gw, port = self.stack.gateway()
        try:
            target = targets.herald("herald", [port], js, self.cfg.payload, {"gateway": gw.pid})
            return await self._idle(target, gw.pid, baseline_wait=IDLE_SETTLE)
        finally:
            self.stack.stop(gw)

    async def _idle(self, target: Target, pid: int, baseline_wait: float) -> dict[str, Any]:
        """RSS of ``pid`` before and after ``idle_clients`` authenticated, subscribed, idle clients."""
        await asyncio.sleep(baseline_wait)
        before = rss_bytes(pid)
        connect = await self.connect(target, self.cfg.idle_clients, first=100_000)
        await asyncio.sleep(IDLE_SETTLE)
        after = rss_bytes(pid)
        held = connect["subscribed"]
        assert self.pool is not None
        still = sum(a["open"] for a in await self.pool.broadcast({"op": "reset"}))
        return {
            "target": target.name,
            "connect": connect,
            "open_after_settle": still,
            "rss_before_mib": round(before / 2**20, 1),
            "rss_after_mib": round(after / 2**20, 1),
            "rss_per_connection_kib": round((after - before) / held / 1024, 2) if held else None,
        }
