"""Every service stops cleanly on SIGTERM: exit 0 within 10 s; gateways close sockets with 1001."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import websocket

from tests.support.procs import NatsServer
from tests.support.stack import Stack, client

pytestmark = pytest.mark.integration


def test_sigterm_stops_every_service_with_exit_0(nats_server: NatsServer, tmp_path: Path) -> None:
    stack = Stack(nats=nats_server, root=tmp_path)
    try:
        api = stack.start_api()
        bridge = stack.start_bridge()
        gw = stack.start_gateway()
        time.sleep(0.5)
        with client(gw.url, "someone") as c:
            assert c.subscribe("messages.user.someone")["type"] == "subscribed"
            started = time.monotonic()
            assert gw.service.stop(timeout=10) == 0, gw.service.logs()
            assert time.monotonic() - started < 10
            c.ws.settimeout(5)
            opcode, data = c.ws.recv_data(control_frame=True)
            assert opcode == websocket.ABNF.OPCODE_CLOSE
            assert int.from_bytes(data[:2], "big") == 1001
        for svc in (api, bridge):
            started = time.monotonic()
            assert svc.stop(timeout=10) == 0, svc.logs()
            assert time.monotonic() - started < 10
    finally:
        stack.stop()
