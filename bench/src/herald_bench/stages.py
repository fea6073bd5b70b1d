"""What each stage of the REST path did, read from the api's and the bridge's ``/metrics``.

The api exposes its outbox (``herald_api_outbox_backlog``: committed events not yet
acknowledged by JetStream; ``herald_api_outbox_published``: events it published since it
started) and, where it has it, ``herald_api_events_direct_total`` (events published
straight to JetStream without the SQL outbox). The bridge exposes its lag
(``herald_bridge_lag_events``, ``herald_bridge_lag_seconds``) and what it published
(``herald_bridge_events_total``, ``herald_bridge_publications_total``). A metric a
service does not expose is reported as missing, never as zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

API_BACKLOG = "herald_api_outbox_backlog"
API_PUBLISHED = "herald_api_outbox_published"
API_DIRECT = "herald_api_events_direct_total"
BRIDGE_LAG_EVENTS = "herald_bridge_lag_events"
BRIDGE_LAG_SECONDS = "herald_bridge_lag_seconds"
BRIDGE_EVENTS = "herald_bridge_events_total"
BRIDGE_PUBLICATIONS = "herald_bridge_publications_total"
#: sampled for their maximum over a step
GAUGES = (API_BACKLOG, BRIDGE_LAG_EVENTS, BRIDGE_LAG_SECONDS)
#: read at the start, at the end of the window and at the end of the drain, for rates
COUNTERS = (API_PUBLISHED, API_DIRECT, BRIDGE_EVENTS, BRIDGE_PUBLICATIONS)
INTERVAL = 0.25
TIMEOUT = 2.0


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


@dataclass
class Snapshot:
    t: float
    values: dict[str, float]


@dataclass
class Stages:
    """Reads both services' metrics; :meth:`sample` runs in the background during a step."""

    api_url: str
    bridge_url: str
    _client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=TIMEOUT))
    errors: int = 0

    async def read(self) -> Snapshot:
        values: dict[str, float] = {}
        for url in (f"{self.api_url}/metrics", f"{self.bridge_url}/metrics"):
            try:
                resp = await self._client.get(url)
                resp.raise_for_status()
                values |= parse(resp.text)
            except httpx.HTTPError:
                self.errors += 1
        return Snapshot(time.monotonic(), values)

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
    for name in GAUGES:
        seen = [s.values[name] for s in every if name in s.values]
        out[name] = (
            {"max": max(seen), "at_window_end": window_end.values.get(name), "at_end": end.values.get(name)}
            if seen
            else None
        )
    return out
