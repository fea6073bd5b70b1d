"""The benchmark's knobs, with the full run's defaults and the quick (CI) variant."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

SECTIONS = ("fanout", "latency", "idle", "e2e")


@dataclass(frozen=True)
class Config:
    #: which sections run: fan-out + saturation, latency rounds, idle connections, end to end
    sections: tuple[str, ...] = SECTIONS
    #: WebSocket clients in the fan-out sections, all subscribed to one topic
    clients: int = 1000
    #: load-generator processes the clients are split over
    processes: int = 4
    #: messages published per second in the fixed-rate fan-out measurement
    rate: float = 10.0
    #: seconds of publishing in the fixed-rate measurement
    seconds: float = 10.0
    #: approximate bytes of each payload
    payload: int = 100
    #: seconds to wait for late deliveries after the last publish
    drain: float = 3.0
    #: seconds of publishing per saturation step
    sat_seconds: float = 3.0
    #: deliveries per second the saturation search starts at
    sat_start: float = 5000.0
    #: steps of doubling/halving, then of bisection (10 doublings from 5,000 reach 2.56 M/s)
    sat_steps: int = 10
    sat_refine: int = 2
    #: a step passes with p99 under this and ≥ 99 % of deliveries
    sat_p99_ms: float = 100.0
    #: the latency comparison: msg/s to ``clients`` clients (50 × 1,000 = 50,000 deliveries/s),
    #: seconds per measurement, and rounds (each round measures every target once, in
    #: alternating order, so that a drift in the machine's load does not favour one)
    latency_rate: float = 50.0
    latency_seconds: float = 5.0
    latency_rounds: int = 5
    #: gateway processes sharing one port (SO_REUSEPORT) in the multi-process target
    gateway_workers: int = 2
    #: extra HERALD_* settings for every gateway the benchmark starts (name, value)
    gateway_env: tuple[tuple[str, str], ...] = ()
    #: connections held open for the memory measurement
    idle_clients: int = 10_000
    #: POST /api/messages per second, for how long, and how many clients receive them
    post_rate: float = 500.0
    post_seconds: float = 10.0
    post_clients: int = 10
    #: keep-alive connections each load process POSTs over
    post_connections: int = 32
    quick: bool = False

    def replace(self, **changes: object) -> Config:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


FULL = Config()
QUICK = Config(
    clients=100,
    processes=2,
    rate=10.0,
    seconds=2.0,
    drain=2.0,
    sat_seconds=1.0,
    sat_start=1000.0,
    sat_steps=3,
    sat_refine=0,
    latency_rate=10.0,
    latency_seconds=1.0,
    latency_rounds=1,
    idle_clients=500,
    post_rate=50.0,
    post_seconds=2.0,
    post_clients=5,
    post_connections=4,
    quick=True,
)
