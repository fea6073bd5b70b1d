"""``herald bench`` / ``python -m herald_bench``: run the benchmark, print the tables, write the JSON."""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import uvloop

from herald_bench.config import FULL, QUICK, SECTIONS, Config
from herald_bench.report import render, write_json
from herald_bench.runner import Bench


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herald bench",
        description="Fan-out benchmark: Herald gateway(s) vs nats-server's WebSocket listener, on loopback.",
    )
    parser.add_argument("--quick", action="store_true", help="small and short (under a minute): the CI smoke test")
    parser.add_argument("--clients", type=int, metavar="C", help=f"clients on one topic (default {FULL.clients})")
    parser.add_argument("--processes", type=int, metavar="P", help=f"load processes (default {FULL.processes})")
    parser.add_argument("--rate", type=float, metavar="MSG/S", help=f"fixed publish rate (default {FULL.rate})")
    parser.add_argument("--seconds", type=float, help=f"fixed-rate duration (default {FULL.seconds})")
    parser.add_argument("--payload", type=int, metavar="BYTES", help=f"payload size (default {FULL.payload})")
    parser.add_argument("--idle-clients", type=int, metavar="N", help=f"idle connections (default {FULL.idle_clients})")
    parser.add_argument("--post-rate", type=float, metavar="POST/S", help=f"REST rate (default {FULL.post_rate})")
    parser.add_argument(
        "--latency-rate",
        type=float,
        metavar="MSG/S",
        help=f"publish rate of the latency rounds (default {FULL.latency_rate})",
    )
    parser.add_argument(
        "--latency-rounds", type=int, metavar="N", help=f"latency rounds (default {FULL.latency_rounds})"
    )
    parser.add_argument(
        "--workers",
        dest="gateway_workers",
        type=int,
        metavar="N",
        help=f"processes of the multi-process gateway target (default {FULL.gateway_workers})",
    )
    parser.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="HERALD_NAME=VALUE",
        help="a setting for every gateway the benchmark starts (repeatable), e.g. HERALD_GATEWAY_PARALLEL_WRITES=0",
    )
    parser.add_argument(
        "--only",
        metavar="SECTIONS",
        help=f"comma-separated sections to run, of {','.join(SECTIONS)} (default all)",
    )
    parser.add_argument(
        "--output", type=Path, metavar="FILE", help="JSON file (default bench-results/bench-<time>.json)"
    )
    return parser


def config_from(args: argparse.Namespace) -> Config:
    base = QUICK if args.quick else FULL
    changes = {
        name: getattr(args, name)
        for name in (
            "clients",
            "processes",
            "rate",
            "seconds",
            "payload",
            "idle_clients",
            "post_rate",
            "latency_rate",
            "latency_rounds",
            "gateway_workers",
        )
        if getattr(args, name) is not None
    }
    for name, value in changes.items():
        if value <= 0:
            flag = "--workers" if name == "gateway_workers" else f"--{name.replace('_', '-')}"
            raise SystemExit(f"herald bench: {flag} must be positive")
    if args.gateway_env:
        pairs = []
        for item in args.gateway_env:
            name, sep, value = item.partition("=")
            if not sep or not name.startswith("HERALD_"):
                raise SystemExit(f"herald bench: --gateway-env takes HERALD_NAME=VALUE, got {item!r}")
            pairs.append((name, value))
        changes["gateway_env"] = tuple(pairs)
    if args.only is not None:
        chosen = tuple(dict.fromkeys(part.strip() for part in args.only.split(",") if part.strip()))
        unknown = [part for part in chosen if part not in SECTIONS]
        if unknown or not chosen:
            raise SystemExit(f"herald bench: --only takes sections of {','.join(SECTIONS)}, got {args.only!r}")
        changes["sections"] = chosen
    return base.replace(**changes)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from(args)
    # Thousands of sockets: the children (gateway, nats-server) inherit the raised limit.
    with contextlib.suppress(ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    output: Path = args.output or Path("bench-results") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    bench = Bench(cfg)
    bench.progress = lambda line: print(line, file=sys.stderr, flush=True)
    try:
        results = uvloop.run(bench.run())
    except KeyboardInterrupt:
        print("herald bench: interrupted", file=sys.stderr)
        return 130
    print(render(results))
    write_json(results, output)
    print(f"\nJSON: {output}")
    failed = [name for name, section in results["sections"].items() if "error" in section]
    if failed:
        print(f"failed sections: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
