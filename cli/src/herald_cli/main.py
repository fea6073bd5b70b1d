"""``herald``: one command for Herald's services and development helpers.

Service modules are imported only by the subcommand that runs them, so ``herald token``
stays fast and a service never loads another service's code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from herald_common.config import ConfigError, load_settings, render_effective, render_reference
from herald_common.errors import HeraldError
from herald_common.tokens import ADMIN, PUBLISHER, issue_token
from herald_common.topics import validate_pattern

ROLES = (ADMIN, PUBLISHER)


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
    problem = _grant_problem(args.role, args.topic, args.publish)
    if problem:
        print(f"herald token: {problem}", file=sys.stderr)
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


def _grant_problem(roles: list[str], topics: list[str], publish: list[str]) -> str:
    """Why these grants would make a token the services misread or ignore, or ""."""
    for role in roles:
        if role not in ROLES:
            return f"unknown role {role!r}; valid roles: {', '.join(ROLES)}"
    for option, patterns in (("--topic", topics), ("--publish", publish)):
        for pattern in patterns:
            try:
                validate_pattern(pattern)
            except HeraldError as exc:
                return f"{option}: {exc.message}"
    return ""


def _config(args: argparse.Namespace) -> int:
    if args.reference:
        sys.stdout.write(render_reference())
        return 0
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"herald config: configuration error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render_effective(settings))
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
    token.add_argument("--role", action="append", default=[], metavar="ROLE", help="a role: " + ", ".join(ROLES))
    token.add_argument("--ttl", type=float, default=3600.0, metavar="SECONDS", help="lifetime (default 3600)")
    token.add_argument("--topic", action="append", default=[], metavar="PATTERN", help="extra subscribe grant")
    token.add_argument("--publish", action="append", default=[], metavar="PATTERN", help="publish grant")
    token.set_defaults(func=_token)
    config = sub.add_parser(
        "config", help="print the effective HERALD_* settings (secrets masked), or --reference for all of them"
    )
    config.add_argument(
        "--reference", action="store_true", help="print the settings reference in Markdown (docs/configuration.md)"
    )
    config.set_defaults(func=_config)
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
