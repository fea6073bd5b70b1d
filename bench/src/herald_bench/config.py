"""The benchmark's knobs, with the full run's defaults and the quick (CI) variant."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

LOAD_RUNTIMES = ("node", "python")
#: load processes by runtime: one Node process handles a headline row's POSTs and sockets
#: with CPU to spare, and every further process is woken for every message (measured on
#: this 2-core box: 10 sockets and ~4,400 POSTs/s took 36 % of a core in one Node process,
#: 59 % over four); the asyncio processes need four for the 1,000-socket rows
DEFAULT_PROCESSES = {"node": 1, "python": 4}
#: keep-alive POST connections in all (the single-POST row needs about rate × HTTP latency)
POST_CONNECTIONS = 256
#: the REST-fed headline (rest: publish, batch, messages, latency; fanout-rest; producer
#: sweep), then the gateway-only breakdowns (fanout + saturation, latency rounds, idle),
#: then presence on two gateways
SECTIONS = ("rest", "fanout-rest", "producer", "fanout", "latency", "idle", "presence")
REST_SECTIONS = frozenset({"rest", "fanout-rest", "producer"})


@dataclass(frozen=True)
class Config:
    #: which sections run (all by default)
    sections: tuple[str, ...] = SECTIONS
    #: WebSocket clients in the fan-out sections, all subscribed to one topic
    clients: int = 1000
    #: load-generator processes the clients are split over (0: the runtime's own default,
    #: :data:`DEFAULT_PROCESSES`)
    processes: int = 0
    #: what the load processes run on: ``node`` (herald_bench/node) or ``python``
    #: (herald_bench.loadproc); same commands, same counting
    load_runtime: str = "node"
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
    #: settings for the api the benchmark starts, e.g. HERALD_API_WORKERS=2
    api_env: tuple[tuple[str, str], ...] = ()
    #: connections held open for the memory measurement
    idle_clients: int = 10_000
    #: REST-fed rows: seconds of POSTing per measurement, the bounded wait for late
    #: deliveries after it, the bounded wait for the api's and the bridge's backlog of the
    #: step before to empty, and how long unanswered POSTs are waited for after the window
    rest_seconds: float = 6.0
    rest_drain: float = 6.0
    rest_settle: float = 10.0
    rest_answer_wait: float = 3.0
    #: single ``POST /api/publish``: offered msg/s and sockets on the topic
    publish_rate: float = 5000.0
    publish_clients: int = 10
    #: ``POST /api/publish/batch``: offered msg/s, items per request, sockets
    batch_rate: float = 20000.0
    batch_size: int = 500
    batch_clients: int = 2
    #: ``POST /api/messages`` (direct messages): offered msg/s, sockets on the recipient's topic
    message_rate: float = 2000.0
    message_clients: int = 10
    #: the latency row: single POSTs at this rate to ``publish_clients`` sockets, from and to
    #: this many load processes of their own (one: the POSTs and the sockets share a clock
    #: and no other load process has to be woken for each message on a 2-core box)
    rest_latency_rate: float = 100.0
    rest_latency_processes: int = 1
    #: REST-fed fan-out: sockets on one topic × msg/s of single POSTs
    fanout_rest_clients: int = 1000
    fanout_rest_rate: float = 400.0
    #: the producer sweep: offered single-POST rates (stops early), seconds per step, sockets
    producer_rates: tuple[float, ...] = (500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)
    producer_seconds: float = 4.0
    producer_clients: int = 2
    #: keep-alive connections each load process POSTs over (0: :data:`POST_CONNECTIONS`
    #: split over the load processes)
    post_connections: int = 0
    #: presence: sockets on one topic over two gateways (watchers with ``presence: true``,
    #: two query sockets, the rest joining members), and the gateways' HERALD_PRESENCE_GRACE
    presence_sockets: int = 1000
    presence_watchers: int = 20
    presence_grace: float = 5.0
    quick: bool = False

    @property
    def load_processes(self) -> int:
        return self.processes or DEFAULT_PROCESSES[self.load_runtime]

    @property
    def connections_per_process(self) -> int:
        return self.post_connections or -(-POST_CONNECTIONS // self.load_processes)

    def replace(self, **changes: object) -> Config:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


FULL = Config()
QUICK = Config(
    clients=100,
    processes=2,
    rate=10.0,
    seconds=1.0,
    drain=1.5,
    sat_seconds=1.0,
    sat_start=1000.0,
    sat_steps=2,
    sat_refine=0,
    latency_rate=10.0,
    latency_seconds=1.0,
    latency_rounds=1,
    idle_clients=500,
    rest_seconds=1.5,
    rest_drain=3.0,
    rest_settle=3.0,
    rest_answer_wait=2.0,
    publish_rate=200.0,
    publish_clients=3,
    batch_rate=1000.0,
    batch_size=50,
    batch_clients=2,
    message_rate=100.0,
    message_clients=3,
    rest_latency_rate=20.0,
    fanout_rest_clients=50,
    fanout_rest_rate=20.0,
    producer_rates=(100.0, 200.0),
    producer_seconds=1.0,
    producer_clients=2,
    post_connections=4,
    presence_sockets=60,
    presence_watchers=4,
    presence_grace=1.0,
    quick=True,
)
