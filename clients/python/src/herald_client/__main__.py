"""``python -m herald_client tail TOPIC --token JWT``: print every message, one JSON line each.

The line holds ``topic``, ``offset``, ``epoch``, ``data`` and, when present, ``event`` and
``publisher``. Gaps (``recovered: false``) and state changes go to stderr. ``--since
OFFSET:EPOCH`` resumes from a position printed earlier; ``--count N`` stops after N
messages. Ctrl-C stops cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Sequence

import msgspec

from herald_client.client import Client
from herald_client.errors import HeraldClientError
from herald_client.messages import Gap, Message
from herald_client.resume import Position
from herald_client.states import ClientState

DEFAULT_URL = "ws://127.0.0.1:8080/ws"


def parse_since(value: str) -> Position:
    offset, sep, epoch = value.partition(":")
    if not sep or not offset.isdigit() or not epoch:
        raise argparse.ArgumentTypeError("--since takes OFFSET:EPOCH, e.g. 42:1764580000000000")
    return Position(int(offset), epoch)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m herald_client", description="Herald client tools.")
    commands = p.add_subparsers(dest="command", required=True)
    tail = commands.add_parser("tail", help="print every message on a topic or pattern, one JSON line each")
    tail.add_argument("topic", help="topic or pattern, e.g. news.** or messages.user.alice")
    # Not read from a HERALD_* variable: the services refuse unknown HERALD_* settings at start.
    tail.add_argument("--token", required=True, help="JWT, e.g. $(.venv/bin/herald token alice --topic 'news.**')")
    tail.add_argument("--url", default=DEFAULT_URL, help=f"gateway WebSocket URL (default {DEFAULT_URL})")
    tail.add_argument("--since", type=parse_since, default=None, help="resume after OFFSET:EPOCH")
    tail.add_argument("--count", type=int, default=None, help="stop after this many messages")
    return p


def line(message: Message) -> str:
    out: dict[str, object] = {"topic": message.topic, "offset": message.offset, "epoch": message.epoch}
    if message.event is not None:
        out["event"] = message.event
    if message.publisher is not None:
        out["publisher"] = message.publisher
    out["data"] = message.data
    return msgspec.json.encode(out).decode()


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def tail(url: str, token: str, topic: str, since: Position | None, count: int | None) -> int:
    def on_state(old: ClientState, new: ClientState) -> None:
        note(f"# {old.value} -> {new.value}")

    def on_gap(gap: Gap) -> None:
        note(json.dumps({"gap": gap.reason.value, "pattern": gap.pattern, "offset": gap.offset, "epoch": gap.epoch}))

    client = Client(url, token=token, on_state_change=on_state)
    try:
        await client.connect()
        sub = await client.subscribe(topic, since=since, on_gap=on_gap)
        note(f"# subscribed {topic}")
        seen = 0
        async for message in sub:
            print(line(message), flush=True)
            seen += 1
            if count is not None and seen >= count:
                break
    except HeraldClientError as exc:
        note(f"herald_client: {exc}")
        return 1
    finally:
        await client.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(tail(args.url, args.token, args.topic, args.since, args.count))
    return 130


if __name__ == "__main__":
    sys.exit(main())
