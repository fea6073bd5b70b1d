"""The whole of Herald as real processes: nats-server, api, bridge and gateways."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import websocket

from herald_common.tokens import issue_token
from tests.support.procs import Service, free_port, running_nats, wait_for_port, wait_http_ok

SECRET = "integration-secret-0123456789abcdef"


class Nats(Protocol):
    """A nats-server or a cluster of them: anything with client URLs."""

    @property
    def url(self) -> str: ...


@dataclass
class Gateway:
    service: Service
    port: int
    metrics_port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


@dataclass
class Api:
    service: Service
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Stack:
    """Herald's processes on loopback. ``api``/``api_url`` are the first api; more api
    processes (``start_api(index=1)``, against the same database) serve side by side."""

    nats: Nats
    root: Path
    api_port: int = field(default_factory=free_port)
    api: Service | None = None
    apis: list[Api] = field(default_factory=list)
    bridge: Service | None = None
    bridge_metrics_port: int = field(default_factory=free_port)
    gateways: list[Gateway] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self, name: str, **extra: str) -> dict[str, str]:
        data = self.root / name
        data.mkdir(parents=True, exist_ok=True)
        return {
            "HERALD_NATS_URL": self.nats.url,
            "HERALD_JWT_SECRET": SECRET,
            "HERALD_DATA_DIR": str(self.root / "data"),
            "HERALD_API_PORT": str(self.api_port),
            **extra,
        }

    def start_api(self, **extra: str) -> Service:
        """Start (or start again) the first api, on ``api_port``, and wait until it is ready."""
        return self.start_api_process(0, extra)

    def start_api_process(self, index: int, extra: Mapping[str, str]) -> Service:
        """Start api number ``index`` (again, on the same port, if it ran before) and wait
        until it is ready. Api 0 listens on ``api_port``; the others on ports of their own."""
        if index < len(self.apis):
            port = self.apis[index].port
        else:
            assert index == len(self.apis), "start api processes in order"
            port = self.api_port if index == 0 else free_port()
        name = "api.log" if index == 0 else f"api{index}.log"
        service = Service("api", self.env("api", **{**extra, "HERALD_API_PORT": str(port)}), self.root / name)
        service.start()
        wait_http_ok(f"http://127.0.0.1:{port}/readyz", proc=service.proc)
        if index < len(self.apis):
            self.apis[index] = Api(service, port)
        else:
            self.apis.append(Api(service, port))
        if index == 0:
            self.api = service
        return service

    def start_bridge(self, **extra: str) -> Service:
        env = self.env("bridge", HERALD_BRIDGE_METRICS_PORT=str(self.bridge_metrics_port), **extra)
        self.bridge = Service("bridge", env, self.root / "bridge.log")
        self.bridge.start()
        return self.bridge

    def start_gateway(self, **extra: str) -> Gateway:
        port, metrics = free_port(), free_port()
        env = self.env("gateway", HERALD_GATEWAY_PORT=str(port), HERALD_GATEWAY_METRICS_PORT=str(metrics), **extra)
        n = len(self.gateways)
        gw = Gateway(Service("gateway", env, self.root / f"gateway{n}.log"), port, metrics)
        gw.service.start()
        wait_http_ok(f"http://127.0.0.1:{metrics}/readyz", proc=gw.service.proc)
        wait_for_port(port, proc=gw.service.proc)
        self.gateways.append(gw)
        return gw

    def stop(self) -> None:
        for gw in self.gateways:
            gw.service.stop()
        for svc in [*(a.service for a in self.apis), self.bridge]:
            if svc is not None:
                svc.stop()

    def logs(self) -> str:
        parts = []
        for svc in [*(a.service for a in self.apis), self.bridge, *(g.service for g in self.gateways)]:
            if svc is not None:
                parts.append(f"--- {svc.log_path.name}\n{svc.logs()[-4000:]}")
        return "\n".join(parts)

    def post(self, path: str, body: Any, token: str, **headers: str) -> httpx.Response:
        return httpx.post(
            self.api_url + path, json=body, headers={"Authorization": f"Bearer {token}", **headers}, timeout=10
        )


@contextmanager
def stack_on_nats(root: Path) -> Iterator[Stack]:
    """A real nats-server and a :class:`Stack` on it, for the block to start its services in;
    every process's logs are printed when the block fails, and everything is stopped at its end."""
    with running_nats() as nats:
        s = Stack(nats=nats, root=root)
        try:
            yield s
        except BaseException:
            print(s.logs())
            raise
        finally:
            s.stop()


@contextmanager
def running_stack(root: Path, *, gateways: int = 0, api_env: Mapping[str, str] | None = None) -> Iterator[Stack]:
    """A real nats-server with an api (with ``api_env``), a bridge and ``gateways`` gateways
    (see :func:`stack_on_nats`)."""
    with stack_on_nats(root) as s:
        s.start_api(**(api_env or {}))
        s.start_bridge()
        for _ in range(gateways):
            s.start_gateway()
        yield s


def token(sub: str, *roles: str, **claims: Any) -> str:
    return issue_token(SECRET, sub, roles=roles, **claims)


class Client:
    """A WebSocket client built on websocket-client (not the gateway's own library)."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=5)

    def send(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame))

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        self.ws.settimeout(timeout)
        raw = self.ws.recv()
        frame: dict[str, Any] = json.loads(raw)
        return frame

    def recv_type(self, type_: str, timeout: float = 5.0) -> dict[str, Any]:
        frame = self.recv(timeout)
        assert frame["type"] == type_, frame
        return frame

    def auth(self, tok: str) -> dict[str, Any]:
        self.send({"type": "auth", "token": tok})
        return self.recv_type("auth_success")

    def subscribe(self, topic: str, **extra: Any) -> dict[str, Any]:
        self.send({"type": "subscribe", "topic": topic, **extra})
        return self.recv(5)

    def messages(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        out: list[dict[str, Any]] = []
        while len(out) < count:
            frame = self.recv(max(0.05, deadline - time.monotonic()))
            if frame["type"] == "message":
                out.append(frame)
        return out

    def close(self) -> None:
        self.ws.close()


@contextmanager
def client(url: str, sub: str | None = None, *roles: str, **claims: Any) -> Iterator[Client]:
    c = Client(url)
    try:
        if sub is not None:
            c.auth(token(sub, *roles, **claims))
        yield c
    finally:
        c.close()
