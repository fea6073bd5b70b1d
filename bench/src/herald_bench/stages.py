"""What each stage of the REST path did, read from the api's and the bridge's ``/metrics``.

The api exposes its outbox (``herald_api_outbox_backlog``: committed events not yet
acknowledged by JetStream; ``herald_api_outbox_published``: events it published since it
started) and, where it has it, ``herald_api_events_direct`` (events it stored straight in
JetStream without the SQL outbox; also read under the name ``…_total``). The bridge exposes its lag
(``herald_bridge_lag_events``, ``herald_bridge_lag_seconds``) and what it published
(``herald_bridge_events_total``, ``herald_bridge_publications_total``). A metric a
service does not expose is reported as missing, never as zero. The api's own view of its
POSTs comes from its ``herald_api_request_seconds`` histogram: per route, the bucket
bound under which 50 % and 99 % of a step's requests were handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

API_BACKLOG = "herald_api_outbox_backlog"
API_PUBLISHED = "herald_api_outbox_published"
API_DIRECT = "herald_api_events_direct"
BRIDGE_LAG_EVENTS = "herald_bridge_lag_events"
BRIDGE_LAG_SECONDS = "herald_bridge_lag_seconds"
BRIDGE_EVENTS = "herald_bridge_events_total"
BRIDGE_PUBLICATIONS = "herald_bridge_publications_total"
#: sampled for their maximum over a step
GAUGES = (API_BACKLOG, BRIDGE_LAG_EVENTS, BRIDGE_LAG_SECONDS)
#: read at the start, at the end of the window and at the end of the drain, for rates
COUNTERS = (API_PUBLISHED, API_DIRECT, BRIDGE_EVENTS, BRIDGE_PUBLICATIONS)
API_REQUEST_BUCKETS = "herald_api_request_seconds_bucket"
INTERVAL = 0.25
TIMEOUT = 2.0
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[str, float]:
    """Prometheus text format → value per metric name, summed over its label sets."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, rest = line.rpartition(" ") if "}" not in line else line.partition("} ")
        name = head.split("{", 1)[0].strip()
        if not name or name.endswith("_created"):
            continue
        try:
            value = float(rest.split()[0])
        except (ValueError, IndexError):
            continue
        if not math.isnan(value):
            values[name] = values.get(name, 0.0) + value
    return values


def post_buckets(text: str) -> dict[str, dict[float, float]]:
    """The api's request-time histogram of POSTs: route → {bucket bound (s): cumulative count}."""
    routes: dict[str, dict[float, float]] = {}
    for line in text.splitlines():
        if not line.startswith(API_REQUEST_BUCKETS + "{"):
            continue
        labels_text, _, value = line[len(API_REQUEST_BUCKETS) + 1 :].rpartition("} ")
        labels = dict(_LABEL.findall(labels_text))
        if labels.get("method") != "POST" or "le" not in labels:
            continue
        try:
            routes.setdefault(labels.get("route", "-"), {})[float(labels["le"])] = float(value.split()[0])
        except ValueError:
            continue
    return routes


def bucket_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """Requests between two readings and the bucket bounds (ms) their p50 and p99 fall under."""
    delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    count = delta[-1][1] if delta else 0.0

    finite = [le for le, _ in delta if math.isfinite(le)]

    def under(q: float) -> float | str | None:
        for le, cumulative in delta:
            if cumulative >= q * count:
                # past the last bound the histogram only says "more than" it
                return round(le * 1000, 3) if math.isfinite(le) else f">{max(finite, default=0) * 1000:g}"
        return None

    if count <= 0:
        return {"requests": 0, "p50_ms_at_most": None, "p99_ms_at_most": None}
    return {"requests": round(count), "p50_ms_at_most": under(0.5), "p99_ms_at_most": under(0.99)}


@dataclass
class Snapshot:
    t: float
    values: dict[str, float]
    #: the api's POST request-time histogram per route (see :func:`post_buckets`)
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)


@dataclass
class Stages:
    """Reads both services' metrics; :meth:`sample` runs in the background during a step."""

    api_url: str
    bridge_url: str
    _client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=TIMEOUT))
    errors: int = 0

    async def read(self) -> Snapshot:
        values: dict[str, float] = {}
        buckets: dict[str, dict[float, float]] = {}
        for url in (f"{self.api_url}/metrics", f"{self.bridge_url}/metrics"):
            try:
                resp = await self._client.get(url)
                resp.raise_for_status()
                found = parse(resp.text)
                if API_DIRECT + "_total" in found:
                    found.setdefault(API_DIRECT, found[API_DIRECT + "_total"])
                values |= found
                if url.startswith(self.api_url):
                    buckets = post_buckets(resp.text)
            except httpx.HTTPError:
                self.errors += 1
        return Snapshot(time.monotonic(), values, buckets)

    async def settle(self, limit: float) -> dict[str, Any]:
        """Wait (at most ``limit`` s) until no event waits in the outbox or at the bridge."""
        t0 = time.monotonic()
        snap = await self.read()
        while time.monotonic() - t0 < limit:
            if snap.values.get(API_BACKLOG, 0.0) == 0 and snap.values.get(BRIDGE_LAG_EVENTS, 0.0) == 0:
                break
            await asyncio.sleep(INTERVAL)
            snap = await self.read()
        return {
            "seconds": round(time.monotonic() - t0, 2),
            "outbox_backlog": snap.values.get(API_BACKLOG),
            "bridge_lag_events": snap.values.get(BRIDGE_LAG_EVENTS),
            "settled": snap.values.get(API_BACKLOG, 0.0) == 0 and snap.values.get(BRIDGE_LAG_EVENTS, 0.0) == 0,
        }

    async def sample(self, into: list[Snapshot]) -> None:
        while True:
            into.append(await self.read())
            await asyncio.sleep(INTERVAL)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.aclose()


def summarise(start: Snapshot, window_end: Snapshot, end: Snapshot, samples: list[Snapshot]) -> dict[str, Any]:
    """Per-second rates of the counters over the window and over window + drain; gauge maxima."""
    every = [start, *samples, window_end, end]
    window = max(1e-9, window_end.t - start.t)
    total = max(1e-9, end.t - start.t)
    out: dict[str, Any] = {"window_seconds": round(window, 2), "until_drained_seconds": round(total, 2)}
    for name in COUNTERS:
        if name not in start.values or name not in end.values:
            out[name] = None
            continue
        in_window = window_end.values.get(name, start.values[name]) - start.values[name]
        out[name] = {
            "in_window": round(in_window),
            "per_s_in_window": round(in_window / window, 1),
            "until_drained": round(end.values[name] - start.values[name]),
        }
    out["api_post_seconds"] = {
        route: bucket_quantiles(start.buckets.get(route, {}), after)
        for route, after in window_end.buckets.items()
        if after != start.buckets.get(route)
    }
    for name in GAUGES:
        seen = [s.values[name] for s in every if name in s.values]
        out[name] = (
            {"max": max(seen), "at_window_end": window_end.values.get(name), "at_end": end.values.get(name)}
            if seen
            else None
        )
    return out
