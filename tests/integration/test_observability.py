"""Traces, metrics and logs of the whole stack: api, bridge and two gateways as processes.

Every service exports OTLP/HTTP to a receiver in this test, which decodes the real
protobuf payloads; logs are captured from each process and searched afterwards.
"""

from __future__ import annotations

import re
import secrets
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.otlp import OtlpReceiver, ReceivedSpan, otlp_receiver, tracing_env
from tests.support.stack import Stack, client, stack_on_nats, token

pytestmark = pytest.mark.integration

SERVER, PRODUCER, CONSUMER = 2, 4, 5  # OTLP Span.SpanKind values


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as r:
        yield r


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver) -> Iterator[Stack]:
    """api, bridge and two gateways exporting traces, logging at debug level."""
    env = {**tracing_env(receiver), "HERALD_LOG_LEVEL": "debug"}
    with stack_on_nats(Path(tmp_path_factory.mktemp("traced"))) as s:
        s.start_api(OTEL_SERVICE_NAME="api", **env)
        s.start_bridge(OTEL_SERVICE_NAME="bridge", **env)
        s.start_gateway(OTEL_SERVICE_NAME="gateway-0", **env)
        s.start_gateway(OTEL_SERVICE_NAME="gateway-1", **env)
        yield s


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def one(spans: list[ReceivedSpan], service: str, name: str) -> ReceivedSpan:
    found = [s for s in spans if s.service == service and s.name == name]
    assert len(found) == 1, (service, name, [(s.service, s.name) for s in spans])
    return found[0]


def is_ancestor(spans: list[ReceivedSpan], ancestor: ReceivedSpan, span: ReceivedSpan) -> bool:
    by_id = {s.span_id: s for s in spans}
    current: ReceivedSpan | None = span
    while current is not None:
        if current.parent_span_id == ancestor.span_id:
            return True
        current = by_id.get(current.parent_span_id)
    return False


def test_one_trace_from_the_producer_to_both_gateways(traced: Stack, receiver: OtlpReceiver) -> None:
    alice, bob = uid("alice"), uid("bob")
    trace_id, client_span, header = traceparent()
    gw0, gw1 = traced.gateways[0].url, traced.gateways[1].url
    with client(gw0, alice) as a, client(gw1, bob) as b1, client(gw1, bob) as b2:
        for c, user in ((a, alice), (b1, bob), (b2, bob)):
            assert c.subscribe(f"messages.user.{user}")["type"] == "subscribed"
        resp = traced.post("/api/messages", {"content": "traced", "recipientId": bob}, token(alice), traceparent=header)
        assert resp.status_code == 201, resp.text
        for c in (a, b1, b2):
            assert c.messages(1)[0]["data"]["id"] == resp.json()["id"]

    def complete(spans: list[ReceivedSpan]) -> bool:
        mine = [s for s in spans if s.trace_id == trace_id]
        return {"api", "bridge", "gateway-0", "gateway-1"} <= {s.service for s in mine} and len(mine) >= 8

    spans = [s for s in receiver.wait_for(complete) if s.trace_id == trace_id]
    ids = {s.span_id for s in spans}
    request = one(spans, "api", "POST /api/messages")
    assert request.kind == SERVER
    assert request.parent_span_id == client_span, "the producer's span is the root's parent"
    for span in spans:
        if span is not request:
            assert span.parent_span_id in ids, f"{span.service} {span.name}: parent not in the trace"

    relay = one(spans, "api", "publish events.message.sent")
    assert relay.kind == PRODUCER and is_ancestor(spans, request, relay)
    process = one(spans, "bridge", "process events.message.sent")
    assert process.kind == CONSUMER and process.parent_span_id == relay.span_id
    to_alice = one(spans, "bridge", f"publish topics.messages.user.{alice}")
    to_bob = one(spans, "bridge", f"publish topics.messages.user.{bob}")
    assert to_alice.parent_span_id == to_bob.parent_span_id == process.span_id
    fan0 = one(spans, "gateway-0", f"fan-out live.messages.user.{alice}")
    fan1 = one(spans, "gateway-1", f"fan-out live.messages.user.{bob}")
    assert fan0.kind == fan1.kind == CONSUMER
    assert fan0.parent_span_id == to_alice.span_id
    assert fan1.parent_span_id == to_bob.span_id
    assert fan0.attributes["herald.recipients"] == 1
    assert fan1.attributes["herald.recipients"] == 2, "one span for both of bob's sockets"


def test_publish_endpoint_continues_the_trace(traced: Stack, receiver: OtlpReceiver) -> None:
    topic = f"orders.{uuid.uuid4().hex[:8]}"
    trace_id, client_span, header = traceparent()
    with client(traced.gateways[1].url, uid("ops"), topics=[topic]) as c:
        assert c.subscribe(topic)["type"] == "subscribed"
        resp = traced.post("/api/publish", {"topic": topic, "data": 1}, token("pub", "publisher"), traceparent=header)
        assert resp.status_code == 202, resp.text
        assert c.messages(1)[0]["data"] == 1
    spans = receiver.wait_for(lambda ss: any(s.trace_id == trace_id and s.service == "gateway-1" for s in ss))
    mine = [s for s in spans if s.trace_id == trace_id]
    request = one(mine, "api", "POST /api/publish")
    assert request.parent_span_id == client_span
    # A raw publication goes from the api straight to its topic: no bridge span.
    publish = one(mine, "api", f"publish topics.{topic}")
    assert publish.parent_span_id == request.span_id
    assert one(mine, "gateway-1", f"fan-out live.{topic}").parent_span_id == publish.span_id


def test_log_lines_inside_spans_carry_trace_ids(traced: Stack, receiver: OtlpReceiver) -> None:
    trace_id, _, header = traceparent()
    resp = traced.post("/api/messages", {"content": "logged?"}, token(uid("logger")), traceparent=header)
    assert resp.status_code == 201
    spans = receiver.wait_for(lambda ss: any(s.trace_id == trace_id and s.service == "bridge" for s in ss))
    (process,) = [s for s in spans if s.trace_id == trace_id and s.name.startswith("process ")]
    assert traced.bridge is not None
    lines = [text for text in traced.bridge.logs().splitlines() if f'"trace_id":"{trace_id}"' in text]
    assert any(f'"span_id":"{process.span_id}"' in text and '"event bridged"' in text for text in lines), lines


def test_no_token_or_content_in_any_log(traced: Stack) -> None:
    alice, bob = uid("alice"), uid("bob")
    content = f"secret-content-{uuid.uuid4().hex}"
    raw = f"raw-data-{uuid.uuid4().hex}"
    tokens = [token(alice), token(bob), token("pub", "publisher")]
    topic = f"private.{uuid.uuid4().hex[:8]}"
    with client(traced.gateways[0].url) as a, client(traced.gateways[1].url) as b:
        a.auth(tokens[0])
        b.auth(tokens[1])
        b.send({"type": "auth", "token": "garbage." + tokens[1][-20:]})  # a failed refresh is logged, not echoed
        b.recv()
        assert b.subscribe(f"messages.user.{bob}")["type"] == "subscribed"
        resp = traced.post("/api/messages", {"content": content, "recipientId": bob}, tokens[0])
        assert resp.status_code == 201
        assert b.messages(1)[0]["data"]["content"] == content
        traced.post("/api/publish", {"topic": topic, "data": raw}, tokens[2])
        traced.post("/api/messages", {"content": content, "recipientId": "x" * 300}, tokens[0])  # rejected
    services = [traced.api, traced.bridge, *(g.service for g in traced.gateways)]
    logs = {svc.log_path.name: svc.logs() for svc in services if svc is not None}
    assert all(logs.values()), "every service wrote logs"
    for name, text in logs.items():
        for secret in [*tokens, content, raw]:
            assert secret not in text, f"{name} logged a token or message content"
        for tok in tokens:
            assert tok.split(".")[2] not in text, f"{name} logged a token signature"


def metric(url: str, name: str, labels: str = "") -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=2) as resp:
        text = resp.read().decode()
    pattern = rf"^{re.escape(name)}{re.escape('{' + labels + '}') if labels else ''} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_every_service_serves_metrics(traced: Stack) -> None:
    assert metric(traced.api_url, "herald_api_nats_connected") == 1
    assert metric(f"http://127.0.0.1:{traced.bridge_metrics_port}", "herald_bridge_nats_connected") == 1
    assert metric(f"http://127.0.0.1:{traced.bridge_metrics_port}", "herald_bridge_events_total") >= 1
    for gw in traced.gateways:
        assert metric(f"http://127.0.0.1:{gw.metrics_port}", "herald_gateway_nats_connected") == 1
