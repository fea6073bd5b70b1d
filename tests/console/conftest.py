"""The operator endpoints and the console against real processes: nats-server, an api, a bridge
and its standby, two gateways; heartbeats every 0.5 s so the node tests run quickly."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support.otlp import OtlpReceiver, otlp_receiver, tracing_env
from tests.support.procs import Service, free_port
from tests.support.stack import Stack, stack_on_nats, token

#: Fast heartbeats (a crashed process is left out after 1.5 s) and a short presence grace.
FAST = {"HERALD_NODE_HEARTBEAT": "0.5", "HERALD_NODE_TIMEOUT": "1.5", "HERALD_PRESENCE_GRACE": "0.5"}
ADMIN = token("ops-admin", "admin")

T = TypeVar("T")


@dataclass
class Ops:
    stack: Stack
    standby: Service
    #: where the api exports its traces (the console links to them)
    traces: OtlpReceiver

    def get(self, path: str, tok: str = ADMIN, **params: Any) -> httpx.Response:
        return httpx.get(
            self.stack.api_url + path, params=params, headers={"Authorization": f"Bearer {tok}"}, timeout=10
        )

    def post(self, path: str, tok: str = ADMIN) -> httpx.Response:
        return httpx.post(self.stack.api_url + path, headers={"Authorization": f"Bearer {tok}"}, timeout=10)

    def nodes(self) -> list[dict[str, Any]]:
        resp = self.get("/api/nodes")
        assert resp.status_code == 200, resp.text
        found: list[dict[str, Any]] = resp.json()["nodes"]
        return found


def eventually(probe: Callable[[], T | None], within: float = 10.0, what: str = "the condition") -> T:
    """``probe()``'s first value that is not None (or falsy), polled every 0.1 s."""
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {within}s (last: {last!r})")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    with otlp_receiver() as traces, stack_on_nats(Path(tmp_path_factory.mktemp("ops"))) as s:
        standby = Service(
            "bridge", s.env("bridge", HERALD_BRIDGE_METRICS_PORT=str(free_port()), **FAST), s.root / "bridge1.log"
        )
        try:
            s.start_bridge(**FAST)
            standby.start()
            s.start_gateway(**FAST)
            s.start_gateway(**FAST)
            # Last, so it can tell the console where the first gateway is; tracing on, so the
            # console links a publish to its trace.
            s.start_api(HERALD_CONSOLE_GATEWAY_URL=s.gateways[0].url, **tracing_env(traces), **FAST)
            yield Ops(s, standby, traces)
        except BaseException:
            print(standby.logs()[-3000:])
            raise
        finally:
            standby.stop()
