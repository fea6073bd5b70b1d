"""Typed configuration read from ``HERALD_*`` environment variables.

Every field of :class:`Settings` has a default and a description; the reference in
``docs/configuration.md`` is generated from them (:func:`render_reference`). Unknown
``HERALD_`` variables and values that do not parse are errors at start, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit, urlunsplit

import msgspec
from msgspec import Meta

PREFIX = "HERALD_"

#: Development secret used when ``HERALD_JWT_SECRET`` is unset; services warn about it.
DEV_JWT_SECRET = "herald-development-secret-change-me-now"

Port = Annotated[int, Meta(ge=0, le=65535)]
Positive = Annotated[int, Meta(ge=1)]
Seconds = Annotated[float, Meta(gt=0)]


class ConfigError(Exception):
    """A ``HERALD_*`` variable is unknown or its value is malformed."""


def _doc(text: str) -> Meta:
    return Meta(description=text)


def _secret(text: str) -> Meta:
    """A documented setting whose value is never printed (``herald config`` masks it)."""
    return Meta(description=text, extra={"secret": True})


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """All of Herald's settings; each service reads the ones it needs."""

    nats_url: Annotated[str, _doc("NATS server URL(s), comma separated; `herald up` starts nats-server here.")] = (
        "nats://127.0.0.1:4222"
    )
    nats_connect_timeout: Annotated[Seconds, _doc("Seconds to wait for the first NATS connection.")] = 5.0
    nats_replicas: Annotated[
        Annotated[int, Meta(ge=1, le=5)], _doc("JetStream replicas for Herald's streams (3 in a 3-node cluster).")
    ] = 1
    data_dir: Annotated[str, _doc("Folder for local state (SQLite file, nats-server store of `herald up`).")] = "var"
    history_size: Annotated[Positive, _doc("Messages kept per topic for recovery and history.")] = 1000
    history_ttl: Annotated[Seconds, _doc("Seconds a topic message is kept for recovery and history.")] = 86400.0
    events_max_age: Annotated[Seconds, _doc("Seconds domain events are kept in the HERALD_EVENTS stream.")] = 604800.0
    dedup_window: Annotated[Seconds, _doc("Seconds JetStream remembers message ids to drop duplicates.")] = 120.0
    bridge_lease: Annotated[
        Seconds, _doc("Seconds a silent active bridge keeps its lease before a standby bridge takes over.")
    ] = 5.0
    bridge_host: Annotated[str, _doc("Address the bridge's /healthz, /readyz and /metrics listener binds.")] = (
        "127.0.0.1"
    )
    bridge_metrics_port: Annotated[Port, _doc("Port of the bridge's /healthz, /readyz and /metrics; 0 disables.")] = (
        8082
    )
    log_level: Annotated[Literal["debug", "info", "warning", "error"], _doc("Log level.")] = "info"

    # NATS credentials and TLS (docs/security.md, "NATS"); each service has its own user.
    nats_user: Annotated[str, _doc("User name for NATS, with HERALD_NATS_PASSWORD; empty: no user.")] = ""
    nats_password: Annotated[str, _secret("Password of HERALD_NATS_USER.")] = ""
    nats_creds: Annotated[
        str, _doc("Path to a NATS .creds file (user JWT and NKey seed), instead of a user and password.")
    ] = ""
    nats_tls_ca: Annotated[
        str, _doc("Path to the PEM CA bundle that signed the NATS servers' certificates; set, TLS is required.")
    ] = ""
    nats_tls_cert: Annotated[
        str, _doc("Path to a PEM client certificate for NATS (mutual TLS), with HERALD_NATS_TLS_KEY.")
    ] = ""
    nats_tls_key: Annotated[str, _doc("Path to the PEM private key of HERALD_NATS_TLS_CERT.")] = ""
    # End of the NATS credentials and TLS settings.

    # Logging of requests and connections.
    access_log: Annotated[
        bool,
        _doc(
            "Log one line per REST request (method, route, status, duration, client IP, user); "
            "WebSocket connections are logged at debug level."
        ),
    ] = True
    # End of the logging settings.

    jwt_secret: Annotated[str, _secret("HS256 secret that signs and verifies tokens. Set it in production.")] = (
        DEV_JWT_SECRET
    )
    jwt_algorithms: Annotated[list[str], _doc("Accepted token algorithms, comma separated (HS256, RS256, ES256).")] = (
        msgspec.field(default_factory=lambda: ["HS256"])
    )
    jwt_public_key: Annotated[str, _doc("PEM public key (or a path to one) for RS256/ES256 tokens.")] = ""
    jwt_jwks_url: Annotated[str, _doc("JWKS URL for RS256/ES256 tokens, keys looked up by `kid`.")] = ""
    jwt_jwks_ttl: Annotated[Seconds, _doc("Seconds JWKS keys are cached before they are fetched again.")] = 300.0
    jwt_audience: Annotated[str, _doc("Required `aud` claim; empty means not checked.")] = ""
    jwt_issuer: Annotated[str, _doc("Required `iss` claim; empty means not checked.")] = ""
    jwt_leeway: Annotated[Annotated[float, Meta(ge=0)], _doc("Seconds of clock skew tolerated on `exp`.")] = 0.0

    gateway_host: Annotated[str, _doc("Address the gateway listens on.")] = "127.0.0.1"
    gateway_port: Annotated[Port, _doc("Port of the gateway's WebSocket listener.")] = 8080
    gateway_path: Annotated[str, _doc("HTTP path of the WebSocket endpoint.")] = "/ws"
    gateway_metrics_port: Annotated[Port, _doc("Port of the gateway's /healthz, /readyz and /metrics; 0 disables.")] = (
        8081
    )
    gateway_workers: Annotated[
        Positive,
        _doc(
            "Gateway processes `herald gateway` runs, sharing the port with SO_REUSEPORT; worker i (from 0) "
            "serves metrics on HERALD_GATEWAY_METRICS_PORT + i."
        ),
    ] = 1
    gateway_reuse_port: Annotated[
        bool, _doc("Set SO_REUSEPORT on the listener so several gateway processes can share the port.")
    ] = False
    gateway_parallel_writes: Annotated[
        Annotated[int, Meta(ge=0)],
        _doc(
            "A flush to at least this many sockets at once is written from two threads, so the send "
            "system calls use two cores (see docs/performance.md); 0 writes from the event loop only."
        ),
    ] = 256
    auth_timeout: Annotated[Seconds, _doc("Seconds a new socket has to send its `auth` frame (then 4001).")] = 5.0
    max_frame_bytes: Annotated[Positive, _doc("Largest WebSocket frame accepted from a client (then 1009).")] = 65536
    max_subscriptions: Annotated[Positive, _doc("Subscriptions one connection may hold.")] = 100
    auth_refresh_grace: Annotated[
        Seconds, _doc("Seconds a connection whose token expired has to send a fresh `auth` (then 4001).")
    ] = 30.0
    max_replay: Annotated[
        Positive,
        _doc(
            "Stored messages replayed or gap-filled in one go; a larger gap is not replayed "
            "(`recovered: false`) or, for a gap fill, closes the clients with 4009."
        ),
    ] = 1000
    max_pending_bytes: Annotated[
        Positive,
        _doc("Bytes sent to one WebSocket client but not yet taken by its socket before it is closed with 4009."),
    ] = 1048576
    max_connections_per_ip: Annotated[
        Positive, _doc("Open WebSocket connections one client IP may hold (then 4008).")
    ] = 200
    max_connections_per_user: Annotated[
        Positive, _doc("Open authenticated WebSocket connections one user (`sub`) may hold (then 4008).")
    ] = 20
    connect_rate_per_ip: Annotated[
        Annotated[float, Meta(gt=0)], _doc("WebSocket handshakes per second allowed per client IP (then HTTP 429).")
    ] = 50.0
    connect_burst_per_ip: Annotated[
        Positive, _doc("Handshakes one client IP may make at once before the rate applies.")
    ] = 100
    trusted_proxies: Annotated[
        list[str],
        _doc(
            "IP addresses or CIDR networks (IPv4, IPv6) of reverse proxies, comma separated. A socket from one "
            "of them counts as the client found in X-Forwarded-For (the rightmost address that is not a trusted "
            "proxy) for the per-IP limits; empty trusts no one and counts the socket's peer address."
        ),
    ] = msgspec.field(default_factory=list)
    frames_per_second: Annotated[
        Annotated[float, Meta(gt=0)], _doc("Frames per second one connection may send (then `rate_limited`).")
    ] = 50.0
    frames_burst: Annotated[Positive, _doc("Frames one connection may send at once before the rate applies.")] = 100
    rate_limited_frames_max: Annotated[
        Positive, _doc("Rate-limited frames tolerated within 5 seconds before the connection is closed with 4008.")
    ] = 20
    recovery_buffer: Annotated[
        Positive, _doc("Live messages buffered per subscription while missed ones are replayed (then 4009).")
    ] = 1000
    gap_subjects: Annotated[
        Positive,
        _doc(
            "Subjects per live pattern subscription whose last delivered sequence the gateway remembers "
            "to find missed messages; the least recently active are forgotten first."
        ),
    ] = 10000
    ping_interval: Annotated[
        Annotated[float, Meta(ge=0)],
        _doc(
            "Seconds between server pings (WebSocket ping frames) to detect dead sockets; a pong missing for as "
            "long closes the socket with 1011. 0 disables."
        ),
    ] = 20.0
    shutdown_grace: Annotated[Seconds, _doc("Seconds a stopping service waits for in-flight work.")] = 5.0

    # Presence (docs/protocol.md, "Presence").
    presence_grace: Annotated[
        Annotated[float, Meta(ge=0)],
        _doc(
            "Seconds a user's leave is held back after their last socket left a topic; a socket of theirs "
            "subscribing again meanwhile cancels it (no leave, no second join). 0 announces leaves at once."
        ),
    ] = 5.0
    presence_heartbeat: Annotated[
        Seconds, _doc("Seconds between a gateway's presence heartbeats on NATS (each names its last update).")
    ] = 5.0
    presence_timeout: Annotated[
        Seconds,
        _doc(
            "Seconds without a heartbeat after which other gateways drop a gateway's users (a crash); at least "
            "twice HERALD_PRESENCE_HEARTBEAT. Its users leave within this plus 1 s."
        ),
    ] = 15.0
    presence_max_users: Annotated[
        Positive,
        _doc(
            "Users on one topic up to which presence lists them and sends join/leave frames; above it, "
            "answers give the count only and join/leave frames stop."
        ),
    ] = 1000
    presence_events_max_age: Annotated[
        Seconds, _doc("Seconds join and leave events are kept in the HERALD_PRESENCE stream.")
    ] = 86400.0
    # End of the presence settings.

    # Operators (docs/operations.md, "The console").
    node_heartbeat: Annotated[
        Seconds, _doc("Seconds between the heartbeats every process sends on NATS for `GET /api/nodes`.")
    ] = 2.0
    node_timeout: Annotated[
        Seconds,
        _doc(
            "Seconds without a heartbeat after which `GET /api/nodes` leaves a process out (a crash); at least "
            "twice HERALD_NODE_HEARTBEAT. A process that stops cleanly is left out at once."
        ),
    ] = 6.0
    operator_timeout: Annotated[
        Seconds,
        _doc(
            "Seconds the api waits for every gateway to answer an operator request (topics, a user's "
            "connections, a disconnect); the answer says which gateways did not."
        ),
    ] = 2.0
    console_gateway_url: Annotated[
        str,
        _doc(
            "The gateway's WebSocket URL as the operator's browser reaches it, for the console's live tail "
            "and presence (and its Content-Security-Policy); empty: ws://HERALD_GATEWAY_HOST:"
            "HERALD_GATEWAY_PORT plus HERALD_GATEWAY_PATH."
        ),
    ] = ""
    console_trace_url: Annotated[
        str,
        _doc(
            "Link to a trace in the console, `{traceId}` standing for its id (e.g. "
            "http://jaeger:16686/trace/{traceId}); empty: derived from OTEL_EXPORTER_OTLP_ENDPOINT (its host, "
            "port 16686) while tracing is on, else no links."
        ),
    ] = ""
    # End of the operator settings.

    api_host: Annotated[str, _doc("Address the api listens on.")] = "127.0.0.1"
    api_workers: Annotated[
        Positive,
        _doc(
            "Api processes `herald api` runs, sharing the port with SO_REUSEPORT (each answers /metrics and "
            "/readyz for itself; run one per container where each must be scraped)."
        ),
    ] = 1
    api_reuse_port: Annotated[
        bool, _doc("Set SO_REUSEPORT on the listener so several api processes can share the port.")
    ] = False
    api_port: Annotated[Port, _doc("Port of the api.")] = 8000
    database_url: Annotated[
        str, _secret("sqlite:///PATH or postgresql://USER:PASS@HOST:PORT/DB; empty: DATA_DIR/herald.db.")
    ] = ""
    max_body_bytes: Annotated[Positive, _doc("Largest REST request body accepted (then 413).")] = 1048576
    page_limit_max: Annotated[Positive, _doc("Largest `limit` a history request may ask for.")] = 100
    api_post_rate: Annotated[
        Annotated[float, Meta(ge=0)],
        _doc(
            "Write requests (POST, PUT, PATCH, DELETE) per second allowed per token without a publisher or admin "
            "role (then 429); 0 disables."
        ),
    ] = 50.0
    api_post_burst: Annotated[
        Positive, _doc("Write requests (POST, PUT, PATCH, DELETE) a token may send at once before the rate applies.")
    ] = 100
    api_publisher_post_rate: Annotated[
        Annotated[float, Meta(ge=0)],
        _doc(
            "Write requests per second allowed per token with the publisher or admin role (backend producers); "
            "0 disables."
        ),
    ] = 0.0
    api_publisher_post_burst: Annotated[
        Positive, _doc("Write requests a publisher token may send at once before its rate applies.")
    ] = 1000
    api_max_header_bytes: Annotated[
        Annotated[int, Meta(ge=1024)],
        _doc("Largest request head (request target and headers, in bytes) the api reads (then 431)."),
    ] = 16384
    cors_origins: Annotated[
        list[str],
        _doc(
            "Origins (`https://app.example.com`, comma separated) whose browser pages may call the api; `*` "
            "allows any origin; empty sends no CORS headers, so browsers allow same-origin calls only."
        ),
    ] = msgspec.field(default_factory=list)

    def sqlite_default_path(self) -> str:
        return os.path.join(self.data_dir, "herald.db")


_FIELD_TYPES: dict[str, Any] = {}


def _field_types() -> dict[str, Any]:
    if not _FIELD_TYPES:
        hints = get_type_hints(Settings, include_extras=True)
        _FIELD_TYPES.update({name: hints[name] for name in Settings.__struct_fields__})
    return _FIELD_TYPES


def _base_type(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _parse_value(name: str, raw: str) -> Any:
    if get_origin(_base_type(_field_types()[name])) is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _ip_networks(entries: list[str]) -> None:
    for entry in entries:
        try:
            ipaddress.ip_network(entry)
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network ({exc})") from None


def _origins(entries: list[str]) -> None:
    for entry in entries:
        if entry == "*":
            continue
        scheme, sep, host = entry.partition("://")
        if scheme not in ("http", "https") or not sep or not host or "/" in host:
            raise ValueError(f"{entry!r} is not an origin like https://app.example.com (or *)")


#: Checks msgspec's types cannot express, by field; each raises ValueError naming the bad part.
_CHECKS: dict[str, Callable[[Any], None]] = {"trusted_proxies": _ip_networks, "cors_origins": _origins}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from ``environ`` (``os.environ`` by default).

    Raises :class:`ConfigError` naming the variable when one is unknown or malformed.
    """
    env = os.environ if environ is None else environ
    fields = _field_types()
    raw: dict[str, Any] = {}
    unknown = []
    for key, value in env.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :].lower()
        if name not in fields:
            unknown.append(key)
            continue
        raw[name] = _parse_value(name, value)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(sorted(unknown))}; see docs/configuration.md for the valid HERALD_* names"
        )
    raw.update(overrides)
    for name, value in raw.items():
        try:
            converted = msgspec.convert(value, fields[name], strict=False)
            check = _CHECKS.get(name)
            if check is not None:
                check(converted)
        except ValueError as exc:  # msgspec.ValidationError is one too
            raise ConfigError(f"{PREFIX}{name.upper()}={value!r} is invalid: {exc}{_choices(name)}") from None
    settings = msgspec.convert(raw, Settings, strict=False)
    _check_together(settings)
    return settings


def _choices(name: str) -> str:
    """ "; valid: a, b, c" for a setting with a fixed set of values, else ""."""
    base = _base_type(_field_types()[name])
    if get_origin(base) is Literal:
        return "; valid: " + ", ".join(str(a) for a in get_args(base))
    if base is bool:
        return "; valid: true, false (also 1, 0)"
    return ""


#: Settings that only make sense with another one: (setting, needs, why).
_TOGETHER = (
    ("nats_password", "nats_user", "a NATS password needs its user"),
    ("nats_tls_cert", "nats_tls_key", "a client certificate needs its private key"),
    ("nats_tls_key", "nats_tls_cert", "a private key needs its client certificate"),
)


def _check_together(settings: Settings) -> None:
    for name, needs, why in _TOGETHER:
        if getattr(settings, name) and not getattr(settings, needs):
            raise ConfigError(f"{PREFIX}{name.upper()} is set but {PREFIX}{needs.upper()} is not: {why}")
    if settings.presence_timeout < 2 * settings.presence_heartbeat:
        raise ConfigError(
            f"{PREFIX}PRESENCE_TIMEOUT ({settings.presence_timeout:g}) must be at least twice "
            f"{PREFIX}PRESENCE_HEARTBEAT ({settings.presence_heartbeat:g}): one lost heartbeat must not drop a gateway"
        )
    if settings.node_timeout < 2 * settings.node_heartbeat:
        raise ConfigError(
            f"{PREFIX}NODE_TIMEOUT ({settings.node_timeout:g}) must be at least twice "
            f"{PREFIX}NODE_HEARTBEAT ({settings.node_heartbeat:g}): one lost heartbeat must not hide a process"
        )
    if settings.nats_creds and settings.nats_user:
        raise ConfigError(
            f"{PREFIX}NATS_CREDS and {PREFIX}NATS_USER are both set: NATS takes one kind of credentials; pick one"
        )


def _metas(tp: Any) -> list[Meta]:
    metas: list[Meta] = []
    while get_origin(tp) is Annotated:
        metas.extend(m for m in get_args(tp)[1:] if isinstance(m, Meta))
        tp = get_args(tp)[0]
    return metas


def is_secret(name: str) -> bool:
    """Whether the setting ``name`` (a field name) holds a secret that is never printed."""
    return any((m.extra or {}).get("secret") for m in _metas(_field_types()[name]))


MASK = "********"


def _masked(name: str, value: str) -> str:
    if not value or not is_secret(name):
        return value
    if "://" in value:
        # A URL (the database's): only its password is secret, the rest says where it points.
        parts = urlsplit(value)
        if parts.password is None:
            return value
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))
    return MASK


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_effective(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """The settings a service would run with, one ``HERALD_NAME=value`` line each.

    Secrets are masked; a value set in ``environ`` (``os.environ`` by default) is marked
    ``# from the environment``, so the output also shows which defaults are in force.
    """
    env = os.environ if environ is None else environ
    lines = []
    for name in _field_types():
        var = PREFIX + name.upper()
        line = f"{var}={_masked(name, _shown(getattr(settings, name)))}"
        if name == "jwt_secret" and settings.jwt_secret == DEV_JWT_SECRET:
            line += "  # the development default: set it in production"
        elif var in env:
            line += "  # from the environment"
        lines.append(line)
    return "\n".join(lines) + "\n"


def describe() -> list[tuple[str, str, str, str]]:
    """(variable, type, default, description) for every setting, in declaration order."""
    rows = []
    defaults = Settings()
    for name, tp in _field_types().items():
        description = ""
        t = tp
        while get_origin(t) is Annotated:
            for meta in get_args(t)[1:]:
                if isinstance(meta, Meta) and meta.description:
                    description = meta.description
            t = get_args(t)[0]
        default = _shown(getattr(defaults, name))
        if get_origin(t) is list:
            type_name = "list"
        elif get_origin(t) is Literal:
            type_name = " \\| ".join(str(a) for a in get_args(t))
        else:
            type_name = getattr(t, "__name__", str(t))
        rows.append((PREFIX + name.upper(), type_name, str(default), description))
    return rows


def render_reference() -> str:
    """The Markdown table of every setting, as published in docs/configuration.md."""
    lines = ["| Variable | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for var, type_name, default, description in describe():
        shown = f"`{default}`" if default else "(empty)"
        lines.append(f"| `{var}` | {type_name} | {shown} | {description} |")
    return "\n".join(lines) + "\n"
