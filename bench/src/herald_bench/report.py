"""The results as plain-text tables, and as a JSON file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from herald_bench import presence

FANOUT_SECTIONS = (
    ("fanout_herald", "herald, 1 process"),
    ("fanout_native", "nats-server WS"),
    ("fanout_herald_multi", "herald, N processes"),
)
IDLE_SECTIONS = (("idle_herald", "herald gateway"), ("idle_native", "nats-server WS"))
HEADLINE_SECTIONS = ("rest_publish", "rest_batch", "rest_messages", "rest_latency", "fanout_rest", "producer")
BREAKDOWN_SECTIONS = ("fanout_herald", "fanout_native", "fanout_herald_multi", "latency", "idle_herald", "idle_native")
HEADLINE_COLUMNS = [
    "row",
    "target",
    "sockets",
    "offered/s",
    "accepted/s",
    "not sent",
    "failed",
    "HTTP p50",
    "HTTP p99",
    "to every socket",
    "p50 ms",
    "p99 ms",
    "deliv/s",
    "lost",
    "dup",
    "server CPU %",
    "load gen CPU %",
]
#: the fan-out ratio the REST-fed path aims for (herald deliveries/s over nats-server's)
FANOUT_TARGET = 0.8


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = [
        "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append(
            "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True)))
        )
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cpu(m: dict[str, Any]) -> str:
    cpu = m["cpu_pct"]
    servers = " ".join(f"{k}={v:.0f}" for k, v in cpu.items() if k not in ("publisher", "load_processes"))
    return servers


def _load(m: dict[str, Any]) -> str:
    return "/".join(f"{v:.0f}" for v in m["cpu_pct"]["load_processes"]) + f" pub={m['cpu_pct']['publisher']:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}×"


def _failed(section: dict[str, Any] | None) -> str | None:
    if section is None:
        return "not run"
    if "error" in section:
        return f"FAILED: {section['error']}"
    return None


def render(results: dict[str, Any]) -> str:
    cfg = results["config"]
    mc = results["machine"]
    sections: dict[str, Any] = results["sections"]
    labels = dict(FANOUT_SECTIONS) | {"fanout_herald_multi": f"herald, {cfg['gateway_workers']} processes"}
    fanout = tuple(labels.items())
    out: list[str] = []
    out.append(
        f"Herald benchmark{' (quick)' if cfg['quick'] else ''} — {results['started']}, {results.get('seconds')} s"
    )
    out.append(
        f"machine: {mc['cpus']} CPU cores ({mc['cpu_model'] or 'unknown model'}), {mc['memory_gib']} GiB, "
        f"Linux {mc['kernel']}, Python {mc['python']}, {mc['nats_server']}"
    )
    out.append(
        f"NOTE: only {mc['cpus']} cores, shared by nats-server, the api, the bridge, the gateway(s), the publisher and "
        f"{cfg['processes']} load process(es) ({cfg.get('load_runtime', 'python')}, "
        f"{cfg['post_connections']} POST connections each); load average {mc['load_average_at_start']} at start, "
        f"{mc.get('load_average_at_end')} at end."
    )
    out.extend(_settings(results.get("settings")))
    out.append("")
    if any(key in sections for key in HEADLINE_SECTIONS):
        out.extend(_headline(sections, cfg))
        out.extend(_producer(sections.get("producer"), cfg))
    if any(key in sections for key in BREAKDOWN_SECTIONS):
        out.extend(_breakdown(sections, cfg, fanout, labels))
    out.extend(presence.render(sections.get("presence")))
    out.append("CPU % is of one core over the measurement window; a load process near 100 % was saturated.")
    return "\n".join(out)


def _breakdown(
    sections: dict[str, Any], cfg: dict[str, Any], fanout: tuple[tuple[str, str], ...], labels: dict[str, str]
) -> list[str]:
    out = [
        "Breakdown: gateway only (publishes straight into JetStream, bypasses api/outbox/relay/bridge)",
        "",
    ]
    out.append(
        f"Fan-out at a fixed rate: {cfg['rate']} msg/s for {cfg['seconds']} s to {cfg['clients']} clients "
        f"on one topic, ~{cfg['payload']} B payload (latency: publish call → client read)"
    )
    rows: list[list[object]] = []
    fixed: dict[str, dict[str, Any]] = {}
    for key, label in fanout:
        s = sections.get(key)
        if (err := _failed(s)) is not None:
            rows.append([label, err, None, None, None, None, None, None, None])
            continue
        assert s is not None
        m = fixed[key] = s["fixed"]
        lat = m["latency"]
        rows.append(
            [
                label,
                m["clients"],
                m["deliveries_per_s"],
                lat["p50_ms"],
                lat["p99_ms"],
                lat["max_ms"],
                f"{m['delivered_pct']} %",
                _cpu(m),
                _load(m),
            ]
        )
    out.append(
        table(
            [
                "target",
                "clients",
                "deliv/s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "delivered",
                "server CPU %",
                "load gen CPU % (per proc)",
            ],
            rows,
        )
    )
    if "fanout_herald" in fixed and "fanout_native" in fixed:
        h, n = fixed["fanout_herald"], fixed["fanout_native"]
        out.append(
            f"nats-server WS / herald: deliveries/s {_ratio(n['deliveries_per_s'], h['deliveries_per_s'])}, "
            f"p99 herald / native {_ratio(h['latency']['p99_ms'], n['latency']['p99_ms'])}"
        )
    out.append("")

    out.append(
        f"Saturation: highest deliveries/s with p99 < {cfg['sat_p99_ms']} ms and ≥ 99 % delivered "
        f"({cfg['sat_seconds']} s steps)"
    )
    rows = []
    best: dict[str, float | None] = {}
    for key, label in fanout:
        s = sections.get(key)
        if (err := _failed(s)) is not None:
            rows.append([label, err, None, None, None, None, None])
            continue
        assert s is not None
        sat = s["saturation"]
        b = sat["best"]
        best[key] = sat["max_deliveries_per_s"]
        rows.append(
            [
                label,
                sat["max_deliveries_per_s"],
                sat["at_rate"],
                b["latency"]["p99_ms"] if b else None,
                sat["first_failing_rate"],
                len(sat["steps"]),
                _load(b) if b else None,
            ]
        )
    out.append(
        table(
            ["target", "max deliv/s", "at msg/s", "p99 ms", "fails at msg/s", "steps", "load gen CPU % at best"], rows
        )
    )
    if best.get("fanout_herald") and best.get("fanout_native"):
        out.append(f"nats-server WS / herald: {_ratio(best['fanout_native'], best['fanout_herald'])}")
    if best.get("fanout_herald") and best.get("fanout_herald_multi"):
        out.append(
            f"{cfg['gateway_workers']} processes / 1 process: "
            f"{_ratio(best['fanout_herald_multi'], best['fanout_herald'])} "
            "(one port, SO_REUSEPORT: the kernel spreads the clients over the processes)"
        )
    out.append("")
    out.extend(_latency(sections.get("latency"), cfg, labels))

    out.append(
        f"Connections: connect rate (handshake + auth, {cfg['processes']} processes × 100 in flight) "
        f"and RSS at {cfg['idle_clients']} idle subscribed connections"
    )
    rows = []
    for key, label in (*fanout[:2], *IDLE_SECTIONS):
        s = sections.get(key)
        if (err := _failed(s)) is not None:
            rows.append([label, err, None, None, None, None, None])
            continue
        assert s is not None
        c = s["connect"]
        rows.append(
            [
                label,
                c["connected"],
                c["connects_per_s"],
                c["subscribes_per_s"],
                s.get("rss_before_mib"),
                s.get("rss_after_mib"),
                s.get("rss_per_connection_kib"),
            ]
        )
    out.append(
        table(
            [
                "target",
                "connections",
                "connects/s",
                "subscribes/s",
                "RSS before MiB",
                "RSS after MiB",
                "KiB / connection",
            ],
            rows,
        )
    )
    out.append("")

    return out


def _latency(s: dict[str, Any] | None, cfg: dict[str, Any], labels: dict[str, str]) -> list[str]:
    rate = cfg["latency_rate"]
    out = [
        f"Latency at {rate * cfg['clients']:,.0f} deliveries/s ({rate} msg/s × {cfg['clients']} clients, "
        f"{cfg['latency_seconds']} s each, {cfg['latency_rounds']} rounds, targets in turns): median of the rounds"
    ]
    if (err := _failed(s)) is not None:
        return [*out, err, ""]
    assert s is not None
    names = {"herald": labels["fanout_herald"], "nats-native": labels["fanout_native"]}
    rows: list[list[object]] = []
    for name, med in s["median"].items():
        per_round = " / ".join(f"{m['latency']['p99_ms']}" for m in s["rounds"][name])
        rows.append(
            [
                names.get(name, labels["fanout_herald_multi"]),
                med["p50_ms"],
                med["p99_ms"],
                med["max_ms"],
                per_round,
                f"{med['delivered_pct_min']} %",
            ]
        )
    out.append(table(["target", "p50 ms", "p99 ms", "max ms", "p99 ms per round", "delivered (min)"], rows))
    herald, native = s["median"].get("herald"), s["median"].get("nats-native")
    if herald and native:
        out.append(f"p99 herald / nats-server WS: {_ratio(herald['p99_ms'], native['p99_ms'])} (≤ 1.00× is parity)")
    return [*out, ""]


def _settings(settings: dict[str, Any] | None) -> list[str]:
    if not settings:
        return []
    nats = settings["nats_server"]

    def pairs(values: dict[str, str]) -> str:
        return " ".join(f"{k}={v}" for k, v in values.items()) or "none"

    return [
        f"in force: nats-server as `herald up` runs it (JetStream sync_interval: {nats['jetstream_sync_interval']}, "
        f"{nats['storage']} storage, max_payload {nats['max_payload']}); api storage {settings['api_storage']}",
        f"  changed from `make run`: api {pairs(settings['api_overrides'])} (per-token POST rate limit off); "
        f"gateway {pairs(settings['gateway_overrides'])}; every service {pairs(settings['every_service'])}",
    ]


def _headline_rows(label: str, s: dict[str, Any]) -> list[list[object]]:
    rows: list[list[object]] = []
    for name, shown in (("herald", "herald (REST)"), ("nats-native", "nats-server WS")):
        m = s[name]
        if "error" in m:
            rows.append([label if not rows else "", shown, f"FAILED: {m['error']}", *([None] * 14)])
            continue
        http = m.get("http", {})
        lat = m["latency"]
        rows.append(
            [
                label if not rows else "",
                shown,
                m["sockets"],
                m["offered_rate"],
                m["accepted_per_s"],
                m.get("not_sent"),
                m["failed"],
                http.get("p50_ms"),
                http.get("p99_ms"),
                f"{m['delivered_pct']} %",
                lat["p50_ms"],
                lat["p99_ms"],
                m["deliveries_per_s"],
                m["lost_deliveries"],
                m["duplicates"],
                _cpu(m),
                _load(m),
            ]
        )
    return rows


def _headline(sections: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    out = [
        "Headline: fed over REST (POST → api → JetStream, straight or through its SQL outbox and relay "
        "[→ bridge for direct messages] → gateway → socket); anchor: nats-server's WebSocket listener fed by "
        "core NATS publishes at the same offered rate to as many sockets",
        f"{cfg['rest_seconds']} s windows, then at most {cfg['rest_drain']} s for late deliveries; "
        "`to every socket`: distinct accepted messages that reached every socket (ids counted per socket: "
        "`lost` socket deliveries missing, `dup` repeats); HTTP ms: write → answer at the load process",
    ]
    rows: list[list[object]] = []
    titles = {
        "rest_publish": "POST /api/publish",
        "rest_batch": f"POST /api/publish/batch ×{cfg['batch_size']}",
        "rest_messages": "POST /api/messages",
        "rest_latency": f"latency, /api/publish at {cfg['rest_latency_rate']:g}/s",
        "fanout_rest": f"fan-out {cfg['fanout_rest_clients']} sockets, /api/publish",
    }
    for key, label in titles.items():
        s = sections.get(key)
        if s is None:
            continue
        if (err := _failed(s)) is not None or "missing" in s:
            rows.append([label, err or s["missing"], *([None] * (len(HEADLINE_COLUMNS) - 2))])
            continue
        rows.extend(_headline_rows(label, s))
    out.append(table(HEADLINE_COLUMNS, rows))
    for key, label in titles.items():
        s = sections.get(key)
        if s is None or "ratio" not in s:
            continue
        r = s["ratio"]
        line = (
            f"{label}: herald / nats-server deliveries/s {_times(r['deliveries_per_s'])}, "
            f"p50 {_times(r['p50'])}, p99 {_times(r['p99'])}"
        )
        if key == "fanout_rest":
            line += f" (target ≥ {FANOUT_TARGET:.2f}× deliveries/s)"
        out.append(line)
    for key, label in titles.items():
        s = sections.get(key)
        for name in ("herald", "nats-native"):
            if s is not None and name in s and s[name].get("errors"):
                out.append(f"{label}, {name}: publish errors {s[name]['errors']}")
    out.append("")
    return out


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}×"


def _stage(stages: dict[str, Any], name: str, key: str) -> object:
    value = stages.get(name)
    return "missing" if value is None else value[key]


def _api_p99(stages: dict[str, Any], path: str) -> object:
    """The api's own p99 for ``path`` (a bucket bound of its request-time histogram)."""
    for route, q in stages.get("api_post_seconds", {}).items():
        if route.rstrip("/") == path:
            return q["p99_ms_at_most"]
    return "missing"


def _whole(value: object) -> object:
    return round(value) if isinstance(value, float) else value


def _producer(s: dict[str, Any] | None, cfg: dict[str, Any]) -> list[str]:
    if s is None:
        return []
    out = [
        f"Producer: single POST /api/publish at rising offered rates, {cfg['producer_seconds']} s steps, "
        f"{cfg['producer_clients']} sockets; what each stage did in the window (per second unless noted)"
    ]
    if (err := _failed(s)) is not None:
        return [*out, err, ""]
    rows: list[list[object]] = []
    for m in s["steps"]:
        st = m.get("stages", {})
        lag_events = st.get("herald_bridge_lag_events")
        lag_seconds = st.get("herald_bridge_lag_seconds")
        rows.append(
            [
                m["offered_rate"],
                m["accepted_per_s"],
                m["not_sent"],
                m["http"]["p99_ms"],
                _api_p99(st, m["path"]),
                _whole(_stage(st, "herald_api_outbox_backlog", "max")),
                _stage(st, "herald_api_outbox_published", "per_s_in_window"),
                _stage(st, "herald_api_events_direct", "per_s_in_window"),
                _stage(st, "herald_bridge_events_total", "per_s_in_window"),
                "missing" if lag_events is None else f"{lag_events['max']:.0f}",
                "missing" if lag_seconds is None else f"{lag_seconds['max']:.2f}",
                round(m["deliveries_in_window"] / max(1, m["sockets"]) / m["window_seconds"], 1),
                f"{m['delivered_pct']} %",
                m["latency"]["p99_ms"],
                _cpu(m),
                _load(m),
            ]
        )
    out.append(
        table(
            [
                "offered",
                "accepted (202)",
                "not sent",
                "HTTP p99 ms",
                "api p99 ≤ ms",
                "outbox backlog max",
                "api published",
                "api direct",
                "bridge events",
                "bridge lag max",
                "lag max s",
                "msgs at each socket",
                "to every socket",
                "p99 ms",
                "server CPU %",
                "load gen CPU %",
            ],
            rows,
        )
    )
    out.append(
        f"stopped: {s['stopped']}; `not sent`: POSTs the load processes could not write before the window closed; "
        "`api p99 ≤`: the bound of the api's herald_api_request_seconds bucket under which 99 % of its POSTs fell"
    )
    out.append("")
    return out


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
