"""The results as plain-text tables, and as a JSON file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FANOUT_SECTIONS = (
    ("fanout_herald", "herald, 1 process"),
    ("fanout_native", "nats-server WS"),
    ("fanout_herald_multi", "herald, N processes"),
)
IDLE_SECTIONS = (("idle_herald", "herald gateway"), ("idle_native", "nats-server WS"))


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
        f"Herald fan-out benchmark{' (quick)' if cfg['quick'] else ''} — {results['started']}, "
        f"{results.get('seconds')} s"
    )
    out.append(
        f"machine: {mc['cpus']} CPU cores ({mc['cpu_model'] or 'unknown model'}), {mc['memory_gib']} GiB, "
        f"Linux {mc['kernel']}, Python {mc['python']}, {mc['nats_server']}"
    )
    out.append(
        f"NOTE: only {mc['cpus']} cores, shared by nats-server, the gateway(s), the publisher and "
        f"{cfg['processes']} load processes; load average {mc['load_average_at_start']} at start, "
        f"{mc.get('load_average_at_end')} at end."
    )
    if cfg.get("gateway_env"):
        out.append("gateway settings: " + " ".join(f"{name}={value}" for name, value in cfg["gateway_env"]))
    out.append("")

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

    s = sections.get("end_to_end")
    out.append(
        f"End to end: POST /api/messages at {cfg['post_rate']}/s for {cfg['post_seconds']} s → "
        f"{cfg['post_clients']} WebSocket clients (api + bridge + gateway)"
    )
    if (err := _failed(s)) is not None:
        out.append(err)
    else:
        assert s is not None
        m = s["measured"]
        req = m.get("request_latency", {})
        lat = m["latency"]
        rows = [
            [
                f"{m['publish_rate']}/s",
                m["publish_failed"],
                req.get("p50_ms"),
                req.get("p99_ms"),
                lat["p50_ms"],
                lat["p99_ms"],
                lat["max_ms"],
                f"{m['delivered_pct']} %",
                _cpu(m),
                _load(m),
            ]
        ]
        out.append(
            table(
                [
                    "POSTs",
                    "failed",
                    "POST p50",
                    "POST p99",
                    "p50 ms",
                    "p99 ms",
                    "max ms",
                    "delivered",
                    "server CPU %",
                    "load gen CPU %",
                ],
                rows,
            )
        )
        if m["publish_errors"]:
            out.append(f"POST errors: {m['publish_errors']}")
    out.append("")
    out.append("CPU % is of one core over the measurement window; a load process near 100 % was saturated.")
    return "\n".join(out)


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


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
