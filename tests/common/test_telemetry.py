from __future__ import annotations

import json
import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from herald_common import telemetry
from herald_common.config import ConfigError
from herald_common.logs import JsonFormatter, setup_logging

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_tracing_is_off_without_an_exporter() -> None:
    assert telemetry.exporters_from_env({}) == []
    assert telemetry.exporters_from_env({"OTEL_SERVICE_NAME": "x"}) == []
    assert telemetry.exporters_from_env({"OTEL_TRACES_EXPORTER": "none"}) == []


def test_an_endpoint_selects_otlp() -> None:
    assert telemetry.exporters_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == ["otlp"]
    assert telemetry.exporters_from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}) == ["otlp"]
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}
    assert telemetry.exporters_from_env(env) == []
    assert telemetry.exporters_from_env({**env, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}) == []


def test_exporters_listed_and_unknown_ones_refused() -> None:
    assert telemetry.exporters_from_env({"OTEL_TRACES_EXPORTER": "console, otlp"}) == ["console", "otlp"]
    with pytest.raises(ConfigError, match="zipkin"):
        telemetry.exporters_from_env({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_setup_without_exporter_leaves_tracing_off() -> None:
    assert telemetry.setup_tracing("test", {}) is False
    assert telemetry.tracing_enabled is False


def test_extract_without_headers_is_empty() -> None:
    assert not trace.get_current_span(telemetry.extract(None)).get_span_context().is_valid
    assert not trace.get_current_span(telemetry.extract({"Nats-Msg-Id": "x"})).get_span_context().is_valid


@pytest.fixture
def tracer() -> trace.Tracer:
    # A private provider: the global one can be set only once per process.
    return TracerProvider().get_tracer("test")


def test_headers_round_trip(tracer: trace.Tracer) -> None:
    parent = telemetry.extract({"traceparent": TRACEPARENT})
    with tracer.start_as_current_span("child", context=parent) as span:
        headers = dict(telemetry.inject({"Nats-Msg-Id": "m1"}))
        assert headers["Nats-Msg-Id"] == "m1"
        assert headers["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
        assert telemetry.carrier() == {"traceparent": headers["traceparent"]}
        assert telemetry.carrier(span) == telemetry.carrier()
    again = trace.get_current_span(telemetry.extract(headers)).get_span_context()
    assert format(again.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert again.span_id == span.get_span_context().span_id


def _line(record: logging.LogRecord) -> dict[str, object]:
    line: dict[str, object] = json.loads(JsonFormatter().format(record))
    return line


def test_log_lines_inside_a_span_carry_its_ids(tracer: trace.Tracer) -> None:
    record = logging.makeLogRecord({"msg": "outside", "levelname": "INFO", "name": "t"})
    assert "trace_id" not in _line(record)
    with tracer.start_as_current_span("s") as span:
        ctx = span.get_span_context()
        line = _line(logging.makeLogRecord({"msg": "inside", "levelname": "INFO", "name": "t"}))
    assert line["trace_id"] == format(ctx.trace_id, "032x")
    assert line["span_id"] == format(ctx.span_id, "016x")


def test_library_debug_lines_never_pass(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("debug", "test")
        logging.getLogger("aiosqlite").debug("INSERT ... ('message content',)")
        logging.getLogger("aiosqlite").warning("library warning")
        logging.getLogger("herald_api.relay").debug("herald debug")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "message content" not in err
    assert "library warning" in err and "herald debug" in err
