"""What the services log about the first hour's events: one JSON shape, the facts of each
event (user, client address, close code, route, status, duration), and nothing shouting."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import websocket

from tests.support.procs import NatsServer
from tests.support.stack import Client, Stack, token

BASE_KEYS = {"ts", "level", "service", "logger", "msg"}


def _lines(text: str) -> list[dict[str, Any]]:
    entries = []
    for line in text.splitlines():
        if line.strip():
            entries.append(json.loads(line))  # every line is JSON: this raises otherwise
    return entries


def test_service_logs_say_who_what_and_how(nats_server: NatsServer, tmp_path: Path) -> None:
    stack = Stack(nats_server, tmp_path)
    try:
        stack.start_api()
        stack.start_bridge()
        gw = stack.start_gateway()
        # A REST request, a failed socket auth (4001), a refused subscribe, a normal close.
        sent = stack.post("/api/messages", {"content": "hello", "recipientId": "bob"}, token("alice"))
        assert sent.status_code == 201
        assert httpx.get(f"{stack.api_url}/api/messages/nope", timeout=5).status_code == 401
        bad = Client(gw.url)
        bad.send({"type": "auth", "token": "not-a-token"})
        assert bad.recv()["code"] == "unauthorized"
        bad.ws.settimeout(5)
        opcode, data = bad.ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 4001
        bad.close()
        good = Client(gw.url)
        good.auth(token("carol"))
        assert good.subscribe("messages.user.dave")["code"] == "forbidden"
        good.close()
        time.sleep(0.5)
    finally:
        stack.stop()
    api, gateway, bridge = (
        _lines(stack.api.logs() if stack.api else ""),
        _lines(gw.service.logs()),
        _lines(stack.bridge.logs() if stack.bridge else ""),
    )
    for name, entries in (("api", api), ("gateway", gateway), ("bridge", bridge)):
        for entry in entries:
            assert set(entry) >= BASE_KEYS, entry
            assert entry["service"] == name, entry
            text = json.dumps(entry)
            assert "weakproxy" not in text and " at 0x" not in text, entry
            assert "color_message" not in entry and "\\u001b[" not in text, entry
        assert not [e for e in entries if e["msg"] == "nats disconnected"], f"{name}: a clean stop logged a disconnect"
        assert not [e for e in entries if e["logger"].startswith("websockets")], f"{name}: websockets lines"

    access = [e for e in api if e["logger"] == "herald.api.access"]
    posted = next(e for e in access if e["method"] == "POST" and e["route"] == "/api/messages")
    assert posted["status"] == 201 and posted["user"] == "alice" and posted["client_ip"] == "127.0.0.1"
    assert isinstance(posted["duration_ms"], float)
    refused = [e for e in access if e["method"] == "GET" and e["status"] == 401]
    assert len(refused) == 1 and refused[0]["user"] is None, access
    assert refused[0]["route"].startswith("/api/messages/{"), refused  # the template, not the raw path

    closes = [e for e in gateway if e["msg"] == "connection closed"]
    assert [(e["code"], e["user"], e["client_ip"]) for e in closes] == [(4001, None, "127.0.0.1")], closes
    frames = [(e["code"], e["user"]) for e in gateway if e["msg"] == "frame refused"]
    assert ("unauthorized", None) in frames and ("forbidden", "carol") in frames, frames
    assert "not-a-token" not in json.dumps(gateway)
