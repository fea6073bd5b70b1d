"""``herald bench`` / ``python -m herald_bench``: run the benchmark, print the tables, write the JSON."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import uvloop

from herald_bench.config import FULL, LOAD_RUNTIMES, POST_CONNECTIONS, QUICK, SECTIONS, Config
from herald_bench.procs import raise_open_files
from herald_bench.report import render, write_json
from herald_bench.runner import Bench


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herald bench",
        description=(
            "Herald fed over REST (api, outbox, relay, bridge, gateway) and its gateway alone, "
            "each against nats-server's WebSocket listener, on loopback."
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts, a few seconds per section: the CI smoke test"
    )
    parser.add_argument("--clients", type=int, metavar="C", help=f"clients on one topic (default {FULL.clients})")
    parser.add_argument("--processes", type=int, metavar="P", help="load processes (default: 1 in Node, 4 in Python)")
    parser.add_argument(
        "--load-runtime",
        choices=LOAD_RUNTIMES,
        help=f"what the load processes run on (default {FULL.load_runtime}; python: the asyncio load processes)",
    )
    parser.add_argument("--rate", type=float, metavar="MSG/S", help=f"fixed publish rate (default {FULL.rate})")
    parser.add_argument("--seconds", type=float, help=f"fixed-rate duration (default {FULL.seconds})")
    parser.add_argument("--payload", type=int, metavar="BYTES", help=f"payload size (default {FULL.payload})")
    parser.add_argument("--idle-clients", type=int, metavar="N", help=f"idle connections (default {FULL.idle_clients})")
    rest = parser.add_argument_group("REST-fed sections (rest, fanout-rest, producer)")
    rest.add_argument(
        "--rest-seconds",
        type=float,
        metavar="SECONDS",
        help=f"POSTing window of each measurement (default {FULL.rest_seconds})",
    )
    rest.add_argument(
        "--rest-drain",
        type=float,
        metavar="SECONDS",
        help=f"longest wait for late deliveries after a window (default {FULL.rest_drain})",
    )
    rest.add_argument(
        "--publish-rate",
        type=float,
        metavar="MSG/S",
        help=f"offered single POST /api/publish rate (default {FULL.publish_rate:g})",
    )
    rest.add_argument(
        "--batch-rate",
        type=float,
        metavar="MSG/S",
        help=f"offered POST /api/publish/batch rate, in messages (default {FULL.batch_rate:g})",
    )
    rest.add_argument(
        "--batch-size", type=int, metavar="N", help=f"items per batch request (default {FULL.batch_size})"
    )
    rest.add_argument(
        "--message-rate",
        type=float,
        metavar="MSG/S",
        help=f"offered POST /api/messages rate (default {FULL.message_rate:g})",
    )
    rest.add_argument(
        "--rest-latency-rate",
        type=float,
        metavar="MSG/S",
        help=f"single-POST rate of the latency row (default {FULL.rest_latency_rate:g})",
    )
    rest.add_argument(
        "--rest-latency-processes",
        type=int,
        metavar="P",
        help=f"load processes of the latency row, its own (default {FULL.rest_latency_processes})",
    )
    rest.add_argument(
        "--fanout-rest-clients",
        type=int,
        metavar="C",
        help=f"sockets of the REST-fed fan-out (default {FULL.fanout_rest_clients})",
    )
    rest.add_argument(
        "--fanout-rest-rate",
        type=float,
        metavar="MSG/S",
        help=f"single-POST rate of the REST-fed fan-out (default {FULL.fanout_rest_rate:g})",
    )
    rest.add_argument(
        "--producer-rates",
        metavar="R1,R2,...",
        help="offered rates of the producer sweep (default " + ",".join(f"{r:g}" for r in FULL.producer_rates) + ")",
    )
    rest.add_argument(
        "--post-connections",
        type=int,
        metavar="N",
        help=f"keep-alive connections per load process (default: {POST_CONNECTIONS} split over the load processes)",
    )
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
        "--api-env",
        action="append",
        default=[],
        metavar="HERALD_NAME=VALUE",
        help="a setting for the api the benchmark starts (repeatable), e.g. HERALD_API_WORKERS=2",
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
            "latency_rate",
            "latency_rounds",
            "gateway_workers",
            "rest_seconds",
            "rest_drain",
            "publish_rate",
            "batch_rate",
            "batch_size",
            "message_rate",
            "rest_latency_rate",
            "rest_latency_processes",
            "fanout_rest_clients",
            "fanout_rest_rate",
            "post_connections",
        )
        if getattr(args, name) is not None
    }
    for name, value in changes.items():
        if value <= 0:
            flag = "--workers" if name == "gateway_workers" else f"--{name.replace('_', '-')}"
            raise SystemExit(f"herald bench: {flag} must be positive")
    if args.load_runtime is not None:
        changes["load_runtime"] = args.load_runtime
    if args.producer_rates is not None:
        try:
            rates = tuple(float(part) for part in args.producer_rates.split(",") if part.strip())
        except ValueError:
            rates = ()
        if not rates or min(rates) <= 0:
            raise SystemExit(
                f"herald bench: --producer-rates takes positive rates R1,R2,..., got {args.producer_rates!r}"
            )
        changes["producer_rates"] = rates
    for option, key in (("gateway_env", "--gateway-env"), ("api_env", "--api-env")):
        items: list[str] = getattr(args, option)
        if items:
            pairs = []
            for item in items:
                name, sep, value = item.partition("=")
                if not sep or not name.startswith("HERALD_"):
                    raise SystemExit(f"herald bench: {key} takes HERALD_NAME=VALUE, got {item!r}")
                pairs.append((name, value))
            changes[option] = tuple(pairs)
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
    raise_open_files()  # the children (gateway, nats-server, load processes) inherit it
    output: Path = args.output or Path("bench-results") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    bench = Bench(cfg)
    bench.progress = lambda line: print(line, file=sys.stderr, flush=True)
    try:
        results = uvloop.run(bench.run())
    except KeyboardInterrupt:
        print("herald bench: interrupted", file=sys.stderr)
        return 130
    write_json(results, output)
    print(render(results))
    print(f"\nJSON: {output}")
    failed = [
        name
        for name, section in results["sections"].items()
        if "error" in section or any(isinstance(part, dict) and "error" in part for part in section.values())
    ]
    if failed:
        print(f"failed sections: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
