"""A gateway started before its JetStream cluster can answer waits for it instead of exiting."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.procs import NatsCluster, Service, free_port, wait_http_ok

pytestmark = pytest.mark.integration


def test_a_gateway_waits_for_a_cluster_still_electing_its_leader(tmp_path: Path) -> None:
    cluster = NatsCluster()
    metrics = free_port()
    gateway = Service(
        "gateway",
        {
            "HERALD_NATS_URL": cluster.url,
            "HERALD_NATS_REPLICAS": "3",
            "HERALD_GATEWAY_PORT": str(free_port()),
            "HERALD_GATEWAY_METRICS_PORT": str(metrics),
            "HERALD_DATA_DIR": str(tmp_path / "data"),
            "HERALD_JWT_SECRET": "startup-test-secret-of-at-least-32-bytes",
        },
        tmp_path / "gateway.log",
    )
    try:
        # One node of three: no JetStream meta leader, so stream requests time out.
        cluster.start_node(0)
        gateway.start()
        time.sleep(4)
        assert gateway.alive, (tmp_path / "gateway.log").read_text()
        cluster.start_node(1)
        cluster.start_node(2)
        assert gateway.proc is not None
        wait_http_ok(f"http://127.0.0.1:{metrics}/readyz", timeout=60, proc=gateway.proc)
    finally:
        gateway.stop()
        cluster.cleanup()
    log = (tmp_path / "gateway.log").read_text()
    assert "Traceback" not in log, log
    assert "cannot declare streams yet" in log
