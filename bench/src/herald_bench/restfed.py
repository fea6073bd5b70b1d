"""The REST-fed sections: the path users use, each compared with nats-server in the same run.

A herald row POSTs numbered messages from the load processes to the api
(``/api/publish``, ``/api/publish/batch`` or ``/api/messages``) while the same
processes' sockets, on one gateway, receive them through the outbox relay and the
bridge. Its anchor publishes core NATS messages at the same rate to as many sockets on
nats-server's own WebSocket listener. Both count distinct message ids per socket.

Every step is bounded: the api and the bridge are first given (at most ``rest_settle``
seconds) to empty their backlog from the step before, the POSTs stop at the end of the
window (what could not be written by then counts as not sent), and late deliveries are
waited for at most ``rest_drain`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from array import array
from collections import Counter
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import nats

from herald_bench import publishers, targets
from herald_bench.procs import cpu_seconds
from herald_bench.stages import Snapshot, Stages, summarise
from herald_bench.stats import latency_ms, merge_samples
from herald_bench.targets import Target
from herald_common.tokens import issue_token

if TYPE_CHECKING:
    from herald_bench.runner import Bench

REST_TOPIC = "bench.rest"
RECIPIENT = "bench-recipient"
POLL_INTERVAL = 0.1
WARM_UP_RATE = 10.0
WARM_UP_SECONDS = 0.5
WARM_UP_BATCH = 5
#: ids of a measurement start here and go up, so a late message of an earlier step is a stray
FIRST_ID = 1
CLOSE_TIMEOUT = 5.0
#: user ids of the REST-fed rows' clients (bench-<n>) start here
CLIENT_IDS = 300_000


class RestFed:
    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.cfg = bench.cfg
        self.next_id = FIRST_ID
        self.stages: Stages | None = None
        self.api_url = ""
        self.gateway: Target | None = None
        self.servers: dict[str, int] = {}
        self.publisher_token = issue_token(bench.secret, "bench-publisher", roles=["publisher"], ttl=3600)
        self.sender_token = issue_token(bench.secret, "bench-sender", ttl=3600)

    async def start(self) -> None:
        stack = self.bench.stack
        self.api_url, bridge_url = stack.api_and_bridge()
        gw, port = stack.gateway()
        self.stages = Stages(self.api_url, bridge_url)
        self.servers = {"api": stack.pid_of("api"), "bridge": stack.pid_of("bridge"), "gateway": gw.pid}
        self.servers["nats-server"] = self.bench.nats_pid
        self.gateway = Target(
            "herald-rest", "herald", [("127.0.0.1", port, targets.GATEWAY_PATH)], REST_TOPIC, _unused, {}, ""
        )

    async def close(self) -> None:
        if self.stages is not None:
            await self.stages.close()

    # targets

    def _herald(self, topic: str) -> Target:
        assert self.gateway is not None
        return Target("herald", "herald", self.gateway.endpoints, topic, _unused, self.servers, targets.REST_PATH)

    def _native(self) -> Target:
        servers = {"nats-server": self.bench.nats_pid}
        endpoint = [("127.0.0.1", self.bench.stack.nats.ws_port, "/")]
        return Target("nats-native", "nats", endpoint, targets.NATIVE_SUBJECT, _unused, servers, targets.NATIVE_PATH)

    def _ids(self, count: int) -> int:
        first = self.next_id
        self.next_id += count
        return first

    # one measurement

    async def _drain(self, expected: int, limit: float) -> tuple[float, bool]:
        pool = self.bench.pool
        assert pool is not None
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            counts = await pool.broadcast({"op": "count"})
            if sum(a["count"] for a in counts) >= expected:
                return time.monotonic() - t0, True
            await asyncio.sleep(POLL_INTERVAL)
        return time.monotonic() - t0, False

    async def measure_rest(
        self, kind: str, topic: str, rate: float, seconds: float, *, batch: int = 1, stages: bool = True
    ) -> dict[str, Any]:
        """POST ``rate`` messages/s for ``seconds`` from every load process; see the module doc."""
        cfg, pool = self.cfg, self.bench.pool
        assert pool is not None and self.stages is not None
        n = pool.size
        settle = await self.stages.settle(cfg.rest_settle) if stages else None
        plan_of = [
            publishers.RestPlan(
                kind=kind,
                target=RECIPIENT if kind == "message" else topic,
                rate=rate / n,
                seconds=seconds,
                size=cfg.payload,
                first=0,
                stride=n,
                batch=batch,
                answer_wait=cfg.rest_answer_wait,
            )
            for _ in range(n)
        ]
        local = plan_of[0].requests * (batch if kind == "batch" else 1)
        base = self._ids(local * n)
        for index, plan in enumerate(plan_of):
            plan.first = base + index
        api = urlsplit(self.api_url)
        token = self.sender_token if kind == "message" else self.publisher_token
        resets = await pool.broadcast({"op": "reset", "base": base, "size": local * n})
        sockets = sum(a["open"] for a in resets)
        cpu0 = {name: cpu_seconds(pid) for name, pid in self.servers.items()}
        own0 = _own_cpu()
        samples: list[Snapshot] = []
        start = await self.stages.read() if stages else None
        sampler = asyncio.create_task(self.stages.sample(samples)) if stages else None
        t0 = time.monotonic()
        try:
            cmds = [
                {
                    "op": "post",
                    "host": api.hostname,
                    "port": api.port,
                    "token": token,
                    "connections": cfg.connections_per_process,
                    "plan": vars(plan),
                }
                for plan in plan_of
            ]
            answers = await pool.call(cmds, timeout=seconds + cfg.rest_answer_wait + 60)
            window = time.monotonic() - t0
            window_end = await self.stages.read() if stages else None
            at_window_end = sum(a["count"] for a in await pool.broadcast({"op": "count"}))
            accepted = bytearray(local * n)
            for index, answer in enumerate(answers):
                accepted[index::n] = answer["accepted_local"]
            expected = sum(accepted) * sockets
            drain_s, drained = await self._drain(expected, cfg.rest_drain)
        finally:
            if sampler is not None:
                sampler.cancel()
        end = await self.stages.read() if stages else None
        collected = await pool.broadcast({"op": "collect"})
        wall = time.monotonic() - t0
        result = tally(collected, accepted, sockets, min(a["start_ns"] for a in answers), window)
        result |= {
            "kind": kind,
            "path": publishers.REST_KINDS[kind][0],
            "batch": batch,
            "offered_rate": rate,
            "window_seconds": round(window, 2),
            "offered": sum(a["offered"] for a in answers),
            "accepted": sum(a["accepted"] for a in answers),
            "failed": sum(a["failed"] for a in answers),
            "not_sent": sum(a["unsent"] for a in answers),
            "unanswered": sum(a["unanswered"] for a in answers),
            # over the offered schedule: answers that come after it are for requests written in it
            "accepted_per_s": round(sum(a["accepted"] for a in answers) / seconds, 1),
            "statuses": dict(sum((Counter(a["statuses"]) for a in answers), Counter())),
            "errors": dict(sum((Counter(a["errors"]) for a in answers), Counter()).most_common(3)),
            "http": latency_ms(merge_samples(a["answers_us"] for a in answers)),
            "deliveries_in_window": at_window_end,
            "drain_seconds": round(drain_s, 2),
            "drained": drained,
            "settle_before": settle,
            "cpu_pct": _cpu(self.servers, cpu0, own0, wall, collected),
        }
        if start is not None and window_end is not None and end is not None:
            result["stages"] = summarise(start, window_end, end, samples)
        return result

    async def measure_native(self, rate: float, seconds: float) -> dict[str, Any]:
        """The anchor: core NATS publishes at ``rate`` to the sockets on nats-server's listener."""
        bench, pool = self.bench, self.bench.pool
        assert pool is not None
        size = max(1, round(rate * seconds))
        base = self._ids(size)
        resets = await pool.broadcast({"op": "reset", "base": base, "size": size})
        sockets = sum(a["open"] for a in resets)
        servers = {"nats-server": bench.nats_pid}
        cpu0 = {name: cpu_seconds(pid) for name, pid in servers.items()}
        own0 = _own_cpu()
        errors: list[str] = []

        async def note(exc: Exception) -> None:
            errors.append(f"{type(exc).__name__}: {exc}")

        # A connection of its own for each measurement: when nats-server holds back a
        # publisher whose subscribers are slow, the flush after the window can time out, and
        # nats-py's connection is not to be trusted after that (a late PONG breaks its reader).
        nc = await nats.connect(bench.stack.nats.url, max_reconnect_attempts=0, error_cb=note)
        t0 = time.monotonic()
        try:
            pub, sent = await publishers.numbered_core(
                nc, targets.NATIVE_SUBJECT, rate, seconds, self.cfg.payload, base
            )
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), CLOSE_TIMEOUT)
        window = time.monotonic() - t0
        at_window_end = sum(a["count"] for a in await pool.broadcast({"op": "count"}))
        # the same bounded wait as the herald target's, so neither is given longer
        drain_s, drained = await self._drain(sum(sent) * sockets, self.cfg.rest_drain)
        collected = await pool.broadcast({"op": "collect"})
        wall = time.monotonic() - t0
        result = tally(collected, bytearray(sent), sockets, pub.start_ns, window)
        return result | {
            "offered_rate": rate,
            "window_seconds": round(window, 2),
            "offered": size,
            "accepted": pub.sent,
            "failed": pub.failed,
            "accepted_per_s": round(pub.sent / seconds, 1),
            "errors": dict(pub.errors.most_common(3)) | ({"nats client": errors[0]} if errors else {}),
            "deliveries_in_window": at_window_end,
            "drain_seconds": round(drain_s, 2),
            "drained": drained,
            "cpu_pct": _cpu(servers, cpu0, own0, wall, collected),
        }

    async def _connect(self, target: Target, count: int) -> dict[str, Any]:
        return await self.bench.connect(target, count, first=CLIENT_IDS)

    async def _close(self) -> None:
        assert self.bench.pool is not None
        await self.bench.pool.broadcast({"op": "close"}, timeout=30)

    async def _pair(
        self, kind: str, topic: str, rate: float, clients: int, seconds: float, batch: int = 1
    ) -> dict[str, Any]:
        """One headline row: herald fed over REST, then nats-server at the same rate and clients."""
        herald = await self._half(
            f"herald {kind} at {rate:g}/s", self._herald_half(kind, topic, rate, clients, seconds, batch)
        )
        native = await self._half(f"nats-server at {rate:g}/s", self._native_half(rate, clients, seconds))
        pair: dict[str, Any] = {
            "rate": rate,
            "clients": clients,
            "seconds": seconds,
            "herald": herald,
            "nats-native": native,
        }
        if "error" not in herald and "error" not in native:
            pair["ratio"] = _ratios(herald, native)
        return pair

    async def _half(self, title: str, work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """One target of a row; a failure is recorded for it alone, so the other still counts."""
        try:
            m = await work
        except Exception as exc:
            self.bench.progress(f"  {title}: FAILED: {type(exc).__name__}: {exc}")
            return {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            await self._close()
        self.bench.progress(f"  {title}: {_line(m)}")
        return m

    async def _herald_half(
        self, kind: str, topic: str, rate: float, clients: int, seconds: float, batch: int
    ) -> dict[str, Any]:
        connect = await self._connect(self._herald(topic), clients)
        # a few messages first, so that first-use costs are not measured
        warm_batch = WARM_UP_BATCH if kind == "batch" else 1
        await self.measure_rest(kind, topic, WARM_UP_RATE, WARM_UP_SECONDS, batch=warm_batch, stages=False)
        m = await self.measure_rest(kind, topic, rate, seconds, batch=batch)
        m["connect"] = connect
        return m

    async def _native_half(self, rate: float, clients: int, seconds: float) -> dict[str, Any]:
        connect = await self._connect(self._native(), clients)
        await self.measure_native(WARM_UP_RATE, WARM_UP_SECONDS)
        m = await self.measure_native(rate, seconds)
        m["connect"] = connect
        return m

    # sections

    async def publish_row(self) -> dict[str, Any]:
        cfg = self.cfg
        return await self._pair("publish", REST_TOPIC, cfg.publish_rate, cfg.publish_clients, cfg.rest_seconds)

    async def batch_row(self) -> dict[str, Any]:
        cfg = self.cfg
        probe = await self._probe_batch()
        if probe is not None:
            return {"missing": probe, "rate": cfg.batch_rate, "clients": cfg.batch_clients}
        return await self._pair(
            "batch", REST_TOPIC, cfg.batch_rate, cfg.batch_clients, cfg.rest_seconds, batch=cfg.batch_size
        )

    async def message_row(self) -> dict[str, Any]:
        cfg = self.cfg
        topic = f"messages.user.{RECIPIENT}"
        return await self._pair("message", topic, cfg.message_rate, cfg.message_clients, cfg.rest_seconds)

    async def latency_row(self) -> dict[str, Any]:
        cfg = self.cfg
        async with self.bench.own_pool(cfg.rest_latency_processes):
            row = await self._pair("publish", REST_TOPIC, cfg.rest_latency_rate, cfg.publish_clients, cfg.rest_seconds)
        row["processes"] = cfg.rest_latency_processes
        return row

    async def fanout_row(self) -> dict[str, Any]:
        cfg = self.cfg
        return await self._pair("publish", REST_TOPIC, cfg.fanout_rest_rate, cfg.fanout_rest_clients, cfg.rest_seconds)

    async def producer(self) -> dict[str, Any]:
        """Single POSTs at rising offered rates until delivery or the api's accepted rate gives out."""
        cfg = self.cfg
        steps: list[dict[str, Any]] = []
        stopped = "every rate measured"
        try:
            await self._connect(self._herald(REST_TOPIC), cfg.producer_clients)
            await self.measure_rest("publish", REST_TOPIC, WARM_UP_RATE, WARM_UP_SECONDS, stages=False)
            for rate in cfg.producer_rates:
                m = await self.measure_rest("publish", REST_TOPIC, rate, cfg.producer_seconds)
                steps.append(m)
                self.bench.progress(f"  producer {rate:g}/s: {_line(m)}")
                if (m["delivered_pct"] or 0.0) < 99.0:
                    stopped = f"delivery fell under 99 % at {rate:g}/s"
                    break
                if len(steps) > 1 and m["accepted_per_s"] < 1.1 * steps[-2]["accepted_per_s"]:
                    stopped = f"the api's accepted rate stopped growing at {rate:g}/s"
                    break
        finally:
            await self._close()
        return {"clients": cfg.producer_clients, "seconds": cfg.producer_seconds, "stopped": stopped, "steps": steps}

    async def _probe_batch(self) -> str | None:
        """None when ``POST /api/publish/batch`` takes a one-item batch; else why the row is missing."""
        body = {"items": [{"topic": REST_TOPIC, "data": {"p": "probe"}}]}
        headers = {"Authorization": f"Bearer {self.publisher_token}"}
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.post(f"{self.api_url}/api/publish/batch", json=body, headers=headers)
        if resp.status_code in (404, 405):
            return f"endpoint missing ({resp.status_code})"
        if resp.status_code != 202:
            return f"endpoint answered a one-item batch with HTTP {resp.status_code}: {resp.text[:120]}"
        return None


async def _unused(rate: float, seconds: float) -> publishers.Published:
    raise RuntimeError("REST-fed targets are published to by RestFed")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu(
    servers: dict[str, int], cpu0: dict[str, float], own0: float, wall: float, collected: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        **{name: round(100 * (cpu_seconds(pid) - cpu0[name]) / wall, 1) for name, pid in servers.items()},
        "publisher": round(100 * (_own_cpu() - own0) / wall, 1),
        "load_processes": [round(100 * a["cpu_seconds"] / a["wall_seconds"], 1) for a in collected],
    }


def tally(
    collected: list[dict[str, Any]], accepted: bytearray, sockets: int, start_ns: int, window: float
) -> dict[str, Any]:
    """Distinct messages per socket, from the load processes' ``hits`` and which ids were accepted."""
    hits = array("I", bytes(4 * len(accepted)))
    for answer in collected:
        part: array[int] = array("I")
        part.frombytes(answer["hits"])
        for i, h in enumerate(part):
            if h:
                hits[i] += h
    accepted_count = sum(accepted)
    complete = sum(1 for i, h in enumerate(hits) if accepted[i] and h >= sockets)
    of_accepted = sum(h for i, h in enumerate(hits) if accepted[i])
    distinct = sum(hits)
    last_ns = max(a["last_ns"] for a in collected)
    span = max(window, (last_ns - start_ns) / 1e9) if distinct else 0.0
    return {
        "sockets": sockets,
        "messages_to_every_socket": complete,
        "delivered_pct": round(100 * complete / accepted_count, 2) if accepted_count else None,
        "distinct_deliveries": distinct,
        "lost_deliveries": accepted_count * sockets - of_accepted,
        "unacknowledged_deliveries": distinct - of_accepted,
        "duplicates": sum(a["duplicates"] for a in collected),
        "strays": sum(a["strays"] for a in collected),
        "deliveries_per_s": round(distinct / span, 1) if span > 0 else 0.0,
        "latency": latency_ms(merge_samples(a["samples"] for a in collected)),
        "clients_open_after": sum(a["open"] for a in collected),
    }


def _ratios(herald: dict[str, Any], native: dict[str, Any]) -> dict[str, float | None]:
    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    return {
        "deliveries_per_s": ratio(herald["deliveries_per_s"], native["deliveries_per_s"]),
        "p50": ratio(herald["latency"]["p50_ms"], native["latency"]["p50_ms"]),
        "p99": ratio(herald["latency"]["p99_ms"], native["latency"]["p99_ms"]),
    }


def _line(m: dict[str, Any]) -> str:
    lat = m["latency"]
    return (
        f"{m['accepted_per_s']:.0f} accepted/s, {m['delivered_pct']} % to every socket, "
        f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, {m['deliveries_per_s']:.0f} deliveries/s"
    )
