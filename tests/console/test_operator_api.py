"""GET /api/nodes, GET /api/topics, a user's connections and their disconnect, on real processes."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import websocket

from herald_common.errors import CloseCode
from tests.console.conftest import FAST, Ops, eventually, unique
from tests.support.procs import Service, free_port, wait_for_port, wait_http_ok
from tests.support.stack import Gateway, client, token

pytestmark = pytest.mark.integration


def by_service(nodes: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [n for n in nodes if n["service"] == service]


def complete(ops: Ops) -> list[dict[str, Any]] | None:
    nodes = ops.nodes()
    bridges = by_service(nodes, "bridge")
    roles = sorted(b.get("role", "") for b in bridges)
    if len(by_service(nodes, "gateway")) >= 2 and by_service(nodes, "api") and roles == ["active", "standby"]:
        return nodes
    return None


def test_every_process_is_listed_with_its_figures(ops: Ops) -> None:
    nodes = eventually(lambda: complete(ops), what="two gateways, an api, an active and a standby bridge")
    assert len(nodes) == 5, nodes
    assert len({n["id"] for n in nodes}) == 5
    port = ops.stack.nats.url.rsplit(":", 1)[1]
    for node in nodes:
        assert node["nats"] == "connected"
        assert node["natsServer"] == f"127.0.0.1:{port}"
        assert node["version"] == "0.1.0"
        assert 0 < node["uptime"] < 600
        assert node["lastSeen"] < 1.5
    (api,) = by_service(nodes, "api")
    assert api["storage"] is True
    assert ops.get("/api/nodes").json()["this"] == api["id"]
    for gw in by_service(nodes, "gateway"):
        assert set(gw["gateway"]) == {
            "connections",
            "subscriptions",
            "natsSubscriptions",
            "deliveries",
            "deliveriesPerSecond",
        }


def test_a_gateway_s_connections_and_deliveries_show(ops: Ops) -> None:
    gw = ops.stack.gateways[0]
    topic = unique("nodes.")
    with client(gw.url, "figures-user", topics=[topic]) as c:
        assert c.subscribe(topic)["type"] == "subscribed"

        def counted() -> dict[str, Any] | None:
            gateways = by_service(ops.nodes(), "gateway")
            busy = [g for g in gateways if g["gateway"]["connections"] >= 1 and g["gateway"]["subscriptions"] >= 1]
            return busy[0] if len(busy) == 1 else None

        busy = eventually(counted, what="the gateway to report the socket")
        before = busy["gateway"]["deliveries"]
        publisher = token("figures-pub", "publisher")
        for i in range(5):
            assert ops.stack.post("/api/publish", {"topic": topic, "data": i}, publisher).status_code == 202
        c.messages(5)

        def delivered() -> dict[str, Any] | None:
            now = next(g for g in ops.nodes() if g["id"] == busy["id"])["gateway"]
            return now if now["deliveries"] >= before + 5 and now["deliveriesPerSecond"] is not None else None

        figures = eventually(delivered, what="the deliveries to be counted")
        assert figures["deliveriesPerSecond"] >= 0


def start_extra_gateway(ops: Ops, name: str) -> Gateway:
    port, metrics = free_port(), free_port()
    env = ops.stack.env("gateway", HERALD_GATEWAY_PORT=str(port), HERALD_GATEWAY_METRICS_PORT=str(metrics), **FAST)
    gw = Gateway(Service("gateway", env, ops.stack.root / f"{name}.log"), port, metrics)
    gw.service.start()
    wait_http_ok(f"http://127.0.0.1:{metrics}/readyz", proc=gw.service.proc)
    wait_for_port(port, proc=gw.service.proc)
    return gw


def gateway_count(ops: Ops) -> int:
    return len(by_service(ops.nodes(), "gateway"))


def test_a_stopped_gateway_is_left_out_at_once_and_a_killed_one_within_the_timeout(ops: Ops) -> None:
    eventually(lambda: complete(ops), what="the stack to be listed")
    stopped = start_extra_gateway(ops, "stopped")
    try:
        eventually(lambda: gateway_count(ops) == 3, what="the extra gateway to be listed")
        stopped.service.stop()
        # It said bye before it exited: gone without waiting for HERALD_NODE_TIMEOUT (1.5 s here).
        eventually(lambda: gateway_count(ops) == 2, within=0.5, what="the stopped gateway to be left out")
    finally:
        stopped.service.stop()

    killed = start_extra_gateway(ops, "killed")
    try:
        eventually(lambda: gateway_count(ops) == 3, what="the extra gateway to be listed")
        started = time.monotonic()
        killed.service.kill()
        eventually(lambda: gateway_count(ops) == 2, within=5, what="the killed gateway to be left out")
        took = time.monotonic() - started
        # No bye from a SIGKILL: it goes HERALD_NODE_TIMEOUT after its last heartbeat, which came
        # at most HERALD_NODE_HEARTBEAT (0.5 s) before the kill.
        assert 0.9 <= took < 1.5 + 0.5, f"the killed gateway was listed for {took:.2f}s"
    finally:
        killed.service.stop()


def test_topics_are_merged_over_gateways_searched_and_paged(ops: Ops) -> None:
    prefix = unique("tp")
    gw0, gw1 = ops.stack.gateways[:2]
    grant = {"topics": [f"{prefix}.**"]}
    with client(gw0.url, "t-user", **grant) as a, client(gw1.url, "t-user", **grant) as b:
        for c in (a, b):
            assert c.subscribe(f"{prefix}.a")["type"] == "subscribed"
        assert a.subscribe(f"{prefix}.b")["type"] == "subscribed"
        assert b.subscribe(f"{prefix}.c")["type"] == "subscribed"
        assert b.subscribe(f"{prefix}.*")["type"] == "subscribed"
        publisher = token("t-pub", "publisher")
        assert ops.stack.post("/api/publish", {"topic": f"{prefix}.a", "data": 1}, publisher).status_code == 202
        offset = a.messages(1)[0]["offset"]

        first = ops.get("/api/topics", search=prefix.upper(), limit=2).json()
        assert first["total"] == 4, first
        assert first["missingGateways"] == []
        assert first["items"] == [
            {"topic": f"{prefix}.*", "pattern": True, "subscribers": 1, "gateways": 1, "lastOffset": None},
            {"topic": f"{prefix}.a", "pattern": False, "subscribers": 2, "gateways": 2, "lastOffset": offset},
        ]
        assert first["nextAfter"] == f"{prefix}.a"
        second = ops.get("/api/topics", search=prefix, limit=2, after=first["nextAfter"]).json()
        assert [(i["topic"], i["subscribers"], i["lastOffset"]) for i in second["items"]] == [
            (f"{prefix}.b", 1, None),
            (f"{prefix}.c", 1, None),
        ]
        assert second["nextAfter"] is None
        everything = ops.get("/api/topics", limit=200).json()
        assert {f"{prefix}.a", f"{prefix}.*"} <= {i["topic"] for i in everything["items"]}
        assert ops.get("/api/topics", search="no-such-topic-anywhere").json()["items"] == []
    gone = eventually(
        lambda: ops.get("/api/topics", search=prefix).json()["total"] == 0 or None,
        what="the topics to go with their sockets",
    )
    assert gone


def close_code(ws: websocket.WebSocket) -> int:
    ws.settimeout(10)
    opcode, data = ws.recv_data(control_frame=True)
    while opcode != websocket.ABNF.OPCODE_CLOSE:
        opcode, data = ws.recv_data(control_frame=True)
    return int.from_bytes(data[:2], "big")


def test_a_user_s_sockets_are_listed_and_closed_with_4003_on_every_gateway(ops: Ops) -> None:
    user = unique("victim-")
    topic = unique("room.")
    gw0, gw1 = ops.stack.gateways[:2]
    with (
        client(gw0.url, user, topics=[topic]) as a,
        client(gw1.url, user, topics=[topic]) as b,
        client(gw0.url, "bystander") as other,
    ):
        assert a.subscribe(topic)["type"] == "subscribed"
        found = ops.get(f"/api/users/{user}/connections").json()
        assert found["userId"] == user
        assert found["missingGateways"] == []
        conns = found["connections"]
        assert len(conns) == 2, conns
        assert len({c["gateway"] for c in conns}) == 2
        gateway_ids = {g["id"] for g in by_service(ops.nodes(), "gateway")}
        assert {c["gateway"] for c in conns} <= gateway_ids
        assert sorted(c["subscriptions"] for c in conns) == [[], [topic]]
        assert all(c["clientIp"] == "127.0.0.1" and c["connectedAt"] <= time.time() for c in conns)

        resp = ops.post(f"/api/users/{user}/disconnect")
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"userId": user, "closed": 2, "gateways": 2, "missingGateways": []}
        assert close_code(a.ws) == int(CloseCode.OPERATOR_DISCONNECT)
        assert close_code(b.ws) == 4003
        # Nobody else was touched.
        other.send({"type": "ping"})
        assert other.recv_type("pong")
        assert ops.get(f"/api/users/{user}/connections").json()["connections"] == []
        again = ops.post(f"/api/users/{user}/disconnect").json()
        assert again["closed"] == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/nodes"),
        ("GET", "/api/topics"),
        ("GET", "/api/users/someone/connections"),
        ("POST", "/api/users/someone/disconnect"),
    ],
)
def test_operator_endpoints_need_an_admin_token(ops: Ops, method: str, path: str) -> None:
    url = ops.stack.api_url + path
    for tok in (token("plain-user"), token("producer", "publisher")):
        resp = httpx.request(method, url, headers={"Authorization": f"Bearer {tok}"}, timeout=10)
        assert resp.status_code == 403, resp.text
        assert resp.json()["code"] == "forbidden"
    assert httpx.request(method, url, timeout=10).status_code == 401
