"""``herald``: one command for Herald's services and development helpers.

Service modules are imported only by the subcommand that runs them, so ``herald token``
stays fast and a service never loads another service's code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from herald_common.config import ConfigError, load_settings, render_reference
from herald_common.tokens import issue_token


def _run_gateway() -> int:
    from herald_gateway.__main__ import main

    return main()


def _run_api() -> int:
    from herald_api.__main__ import main

    return main()


def _run_bridge() -> int:
    from herald_bridge.__main__ import main

    return main()


def _token(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"herald token: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.ttl <= 0:
        print("herald token: --ttl must be a positive number of seconds", file=sys.stderr)
        return 2
    print(
        issue_token(
            settings.jwt_secret,
            args.sub,
            roles=args.role,
            ttl=args.ttl,
            topics=args.topic,
            publish=args.publish,
        )
    )
    return 0


def _config(_: argparse.Namespace) -> int:
    sys.stdout.write(render_reference())
    return 0


def _up(_: argparse.Namespace) -> int:
    from herald_cli.up import up

    return up()


def _bench(argv: Sequence[str]) -> int:
    from herald_bench.cli import main

    return main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="herald", description="Herald: real-time messaging over NATS.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("up", help="start nats-server, api, bridge and a gateway on loopback").set_defaults(func=_up)
    for name, runner in (("gateway", _run_gateway), ("api", _run_api), ("bridge", _run_bridge)):
        sub.add_parser(name, help=f"run the {name} service").set_defaults(func=lambda _, r=runner: r())
    token = sub.add_parser("token", help="print a development JWT signed with HERALD_JWT_SECRET")
    token.add_argument("sub", metavar="SUB", help="user id (the `sub` claim)")
    token.add_argument("--role", action="append", default=[], metavar="ROLE", help="a role: admin, publisher")
    token.add_argument("--ttl", type=float, default=3600.0, metavar="SECONDS", help="lifetime (default 3600)")
    token.add_argument("--topic", action="append", default=[], metavar="PATTERN", help="extra subscribe grant")
    token.add_argument("--publish", action="append", default=[], metavar="PATTERN", help="publish grant")
    token.set_defaults(func=_token)
    sub.add_parser("config", help="print the HERALD_* settings reference (Markdown)").set_defaults(func=_config)
    # Listed for --help only: main() hands everything after `bench` to herald_bench untouched.
    sub.add_parser("bench", help="fan-out benchmark (herald bench --help)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
