"""``HERALD_GATEWAY_WORKERS``: several gateway processes sharing one port, stopped together."""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from herald_common.tokens import issue_token
from herald_gateway.__main__ import worker_env
from tests.support.procs import NatsServer, Service, free_port, wait_for_port, wait_http_ok

pytestmark = pytest.mark.integration

SECRET = "gateway-workers-test-secret-32-bytes!!"


def port_pair() -> int:
    """A free port whose successor is free too (worker 1's metrics port)."""
    while True:
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def connections(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(r"^herald_gateway_connections (\S+)$", text, re.MULTILINE)
    assert match is not None
    return float(match.group(1))


def test_each_worker_gets_its_own_metrics_port() -> None:
    env = worker_env(1, {"HERALD_GATEWAY_METRICS_PORT": "9100", "HERALD_GATEWAY_WORKERS": "4"})
    assert env["HERALD_GATEWAY_WORKERS"] == "1"
    assert env["HERALD_GATEWAY_REUSE_PORT"] == "true"
    assert env["HERALD_GATEWAY_METRICS_PORT"] == "9101"
    assert worker_env(1, {"HERALD_GATEWAY_METRICS_PORT": "0"})["HERALD_GATEWAY_METRICS_PORT"] == "0"  # stays off


async def test_two_workers_share_the_port_and_stop_together(nats_server: NatsServer, tmp_path: Path) -> None:
    port, metrics = free_port(), port_pair()
    env = {
        "HERALD_NATS_URL": nats_server.url,
        "HERALD_GATEWAY_PORT": str(port),
        "HERALD_GATEWAY_METRICS_PORT": str(metrics),
        "HERALD_GATEWAY_WORKERS": "2",
        "HERALD_DATA_DIR": str(tmp_path),
        "HERALD_JWT_SECRET": SECRET,
    }
    service = Service("gateway", env, tmp_path / "gateway.log")
    service.start()
    urls = [f"http://127.0.0.1:{metrics + i}" for i in range(2)]
    try:
        for url in urls:
            wait_http_ok(url + "/readyz", proc=service.proc)
        wait_for_port(port, proc=service.proc)
        clients = []
        for i in range(24):
            ws = await connect(f"ws://127.0.0.1:{port}/ws")
            await ws.send(json.dumps({"type": "auth", "token": issue_token(SECRET, f"u{i}")}))
            assert json.loads(await ws.recv())["type"] == "auth_success"
            clients.append(ws)
        counts = [connections(url) for url in urls]
        assert sum(counts) == 24
        assert all(c > 0 for c in counts), counts  # the kernel spread them (2**-23 odds otherwise)
        for ws in clients:
            await ws.close()
    finally:
        code = service.stop()
    assert code == 0, service.logs()
    assert all(refused(p) for p in (port, metrics, metrics + 1))
