"""A small Herald consumer built on the Python SDK (``herald_client``).

With ``make run`` going, in another terminal:

    .venv/bin/python examples/python_consumer.py --user alice --topic 'news.**'

It connects as ``--user`` (a development token from ``herald token``, refreshed before it
expires), subscribes to the user's own messages and to ``--topic``, and prints each
message. It reconnects and resumes by itself: stop and start the gateway to see it. A
``recovered: false`` gap is reported so the app can reload from REST history.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path

from herald_client import Client, ClientState, Gap, Subscription

HERALD = Path(sys.executable).parent / "herald"


def token_command(user: str, topics: list[str]) -> list[str]:
    command = [str(HERALD), "token", user, "--ttl", "300"]
    for topic in topics:
        command += ["--topic", topic]
    return command


async def consume(sub: Subscription, limit: int | None, seen: list[int]) -> None:
    async for message in sub:
        what = message.event or "message"
        print(f"{message.topic} #{message.offset} {what}: {message.data}", flush=True)
        seen.append(message.offset)
        if limit is not None and len(seen) >= limit:
            return


async def main(url: str, user: str, topics: list[str], limit: int | None) -> None:
    async def token() -> str:
        # Each call mints a fresh token; an app would ask its auth service instead.
        proc = await asyncio.create_subprocess_exec(*token_command(user, topics), stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        return out.decode().strip()

    def on_state(old: ClientState, new: ClientState) -> None:
        print(f"[{old.value} -> {new.value}]", file=sys.stderr, flush=True)

    def on_gap(gap: Gap) -> None:
        print(f"[gap on {gap.pattern} after offset {gap.offset}: reload from REST]", file=sys.stderr, flush=True)

    async with Client(url, token=token, on_state_change=on_state) as client:
        subs = [await client.subscribe(f"messages.user.{user}", on_gap=on_gap)]
        subs += [await client.subscribe(topic, on_gap=on_gap) for topic in topics]
        print(f"[subscribed to {', '.join(s.pattern for s in subs)}]", file=sys.stderr, flush=True)
        seen: list[int] = []
        tasks = [asyncio.create_task(consume(s, limit, seen)) for s in subs]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--user", default="alice")
    parser.add_argument("--topic", action="append", default=[], help="a pattern the token grants (repeatable)")
    parser.add_argument("--count", type=int, default=None, help="stop after this many messages on a subscription")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.url, args.user, args.topic, args.count))
