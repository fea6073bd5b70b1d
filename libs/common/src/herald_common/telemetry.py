"""Tracing set-up from the standard ``OTEL_*`` variables, and trace context in NATS headers.

Tracing is off unless an exporter is configured: ``OTEL_TRACES_EXPORTER`` (``otlp``,
``console``, ``none``, comma separated) or, when that is unset, an OTLP endpoint
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) selects ``otlp``.
``OTEL_SDK_DISABLED=true`` turns it off whatever else is set. The OTLP exporter speaks
OTLP/HTTP (protobuf) and reads its own ``OTEL_EXPORTER_OTLP_*`` variables; the sampler comes
from ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` and the service name from
``OTEL_SERVICE_NAME`` (``herald-<service>`` when unset).

Hot paths check :data:`tracing_enabled` (read it as ``telemetry.tracing_enabled``: it is
set by :func:`setup_tracing`) before touching headers or spans, so tracing that is off
costs one attribute lookup per message.

Trace context travels as W3C ``traceparent`` / ``tracestate`` headers on NATS messages.
JetStream keeps a message's headers when it republishes it, so context put on a
``topics.*`` publication reaches the gateways on ``live.*``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from herald_common.config import ConfigError

log = logging.getLogger(__name__)

#: True once :func:`setup_tracing` installed an exporter; False means no span is recorded.
tracing_enabled = False

#: The headers that carry trace context (W3C Trace Context).
TRACE_HEADERS = ("traceparent", "tracestate")

_EXPORTERS = frozenset({"otlp", "console", "none"})
_propagator = TraceContextTextMapPropagator()
_provider: object | None = None


def exporters_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """The span exporters the ``OTEL_*`` variables ask for; empty means tracing is off.

    Raises :class:`ConfigError` for an exporter name Herald does not support.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not raw:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return ["otlp"] if endpoint else []
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = sorted(set(names) - _EXPORTERS)
    if unknown:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={raw!r}: unsupported exporter(s) {', '.join(unknown)}; use otlp, console or none"
        )
    return [name for name in names if name != "none"]


def setup_tracing(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install a tracer provider for this process if the environment asks for one.

    Returns (and sets :data:`tracing_enabled` to) whether spans are now exported.
    """
    global tracing_enabled, _provider
    exporters = exporters_from_env(environ)
    if not exporters:
        tracing_enabled = False
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    env = os.environ if environ is None else environ
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"herald-{service}"}
    # The sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG inside the SDK.
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in exporters:
        exporter: SpanExporter
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        else:
            exporter = ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    tracing_enabled = True
    log.info("tracing on", extra={"exporters": ",".join(exporters)})
    return True


def shutdown_tracing() -> None:
    """Export the spans still buffered and stop the exporters (on a clean stop)."""
    global tracing_enabled, _provider
    provider, _provider = _provider, None
    tracing_enabled = False
    if provider is not None:
        from opentelemetry.sdk.trace import TracerProvider

        assert isinstance(provider, TracerProvider)
        provider.shutdown()


def tracer(name: str) -> Tracer:
    """The tracer for ``name`` (a no-op tracer while tracing is off)."""
    return trace.get_tracer(name)


def inject(headers: MutableMapping[str, str], ctx: Context | None = None) -> MutableMapping[str, str]:
    """Add the trace context of ``ctx`` (default: the current one) to ``headers``; returns them."""
    _propagator.inject(headers, context=ctx)
    return headers


def extract(headers: Mapping[str, str] | None) -> Context:
    """The context carried by ``headers`` (NATS message headers or a stored carrier).

    Without trace headers this is an empty context, so a span started in it is a root.
    """
    if not headers:
        return Context()
    return _propagator.extract(headers)


def carrier(span: Span | None = None) -> dict[str, str]:
    """The trace headers of ``span`` (default: the current span), to store and extract later."""
    headers: dict[str, str] = {}
    ctx = trace.set_span_in_context(span) if span is not None else None
    _propagator.inject(headers, context=ctx)
    return headers


def publish_span(
    tracer_: Tracer, subject: str, message_id: str, headers: MutableMapping[str, str], context: Context | None = None
) -> Span:
    """Start the PRODUCER span of one NATS publication (child of ``context``, default the
    current one) and put its trace context in the publication's ``headers``."""
    span = tracer_.start_span(
        f"publish {subject}",
        context=context,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "nats",
            "messaging.operation.type": "publish",
            "messaging.destination.name": subject,
            "messaging.message.id": message_id,
        },
    )
    inject(headers, trace.set_span_in_context(span))
    return span


def current_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` in hex of the span the caller runs in, or None outside one."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")
