"""The ``traceresponse`` header names the request's trace, so the console can link to it."""

from __future__ import annotations

import re

from opentelemetry.sdk.trace import TracerProvider

from herald_api.tracing import trace_response


def test_the_header_carries_the_span_s_trace_and_span_ids() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        value = trace_response(span).decode()
        ctx = span.get_span_context()
    match = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}", value)
    assert match is not None, value
    assert match.group(1) == f"{ctx.trace_id:032x}"
    assert match.group(2) == f"{ctx.span_id:016x}"
