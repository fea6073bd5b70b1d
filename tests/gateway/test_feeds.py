"""A pattern's live feed handled inline: at once when nothing waits, else in order behind what waits.

The NATS client, the stream and the holders are small fakes here (no sockets), so each test
can say exactly when a message arrives relative to a held lock or a stream read in progress.
The same code runs against a real nats-server in the gateway's process and loss tests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest

from herald_common.config import load_settings
from herald_common.history import Stored
from herald_common.natsclient import Inline
from herald_gateway import feeds as feeds_module
from herald_gateway.feeds import Feeds
from herald_gateway.metrics import Metrics

PATTERN = "room.*"


@dataclass
class FakeSub:
    async def unsubscribe(self) -> None:
        pass


@dataclass
class FakeNats:
    stats: dict[str, int] = field(default_factory=lambda: {"reconnects": 0})
    callbacks: dict[str, Inline] = field(default_factory=dict)

    async def subscribe(self, subject: str, cb: Inline) -> FakeSub:
        self.callbacks[subject] = cb
        return FakeSub()

    async def flush(self, timeout: float) -> None:
        pass


@dataclass
class FakeStream:
    """The topics stream: its end, and the stored messages a gap fill reads."""

    last_seq: int = 10
    epoch: str = "0"
    stored: list[Stored] = field(default_factory=list)
    #: when set, a read waits for it (a slow stream)
    gate: asyncio.Event | None = None
    reads: list[tuple[str, int, int]] = field(default_factory=list)

    async def info(self) -> Any:
        return SimpleNamespace(state=SimpleNamespace(last_seq=self.last_seq), created=None)

    async def read(self, subject: str, after: int, through: int) -> list[Stored]:
        self.reads.append((subject, after, through))
        if self.gate is not None:
            await self.gate.wait()
        return [m for m in self.stored if _matches(subject, m.subject) and after < m.seq <= through]


@dataclass
class RecordingHolders:
    delivered: list[tuple[str, int]] = field(default_factory=list)

    def holds(self, pattern: str) -> bool:
        return True

    def fan_out(self, pattern: str, subject: str, headers: dict[str, str] | None, data: bytes, epoch: str) -> int:
        self.delivered.append((subject, int((headers or {}).get("Nats-Sequence", "0"))))
        return 1

    async def make_room(self, pattern: str, size: int) -> None:
        pass

    def drop(self, pattern: str, topic: str | None) -> None:
        pass


@dataclass
class Rig:
    feeds: Feeds
    nats: FakeNats
    stream: FakeStream
    holders: RecordingHolders
    metrics: Metrics

    def live(self, topic: str, seq: int, last: int | None = None, data: bytes = b'{"data":1}') -> None:
        """The read loop hands over one republished message (``live.<topic>``)."""
        headers = {"Nats-Sequence": str(seq)}
        if last is not None:
            headers["Nats-Last-Sequence"] = str(last)
        self.nats.callbacks["live." + PATTERN].handle("live." + topic, headers, data)


@pytest.fixture
async def rig() -> Rig:
    nats, stream, holders, metrics = FakeNats(), FakeStream(), RecordingHolders(), _metrics()
    feeds = Feeds(cast(Any, nats), cast(Any, stream), holders, load_settings({}), metrics)
    await feeds.reconcile(PATTERN)
    return Rig(feeds, nats, stream, holders, metrics)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_in_order_messages_are_fanned_out_as_they_arrive(rig: Rig) -> None:
    rig.live("room.a", 11)
    rig.live("room.b", 12)
    rig.live("room.a", 13, last=11)
    # No await in between: handled inline, no task or queue.
    assert rig.holders.delivered == [("live.room.a", 11), ("live.room.b", 12), ("live.room.a", 13)]
    rig.live("room.a", 13, last=11)  # a repeat
    rig.live("room.a", 9)  # older than the subscription
    assert len(rig.holders.delivered) == 3


async def test_a_gap_is_filled_from_the_stream_and_later_messages_wait_behind_it(rig: Rig) -> None:
    rig.live("room.a", 11)
    rig.stream.stored = [Stored(12, "topics.room.a", b"{}"), Stored(13, "topics.room.a", b"{}")]
    rig.stream.gate = asyncio.Event()
    rig.live("room.a", 14, last=13)  # 12 and 13 never arrived live
    rig.live("room.b", 15)  # another subject, but the pattern's order holds
    rig.live("room.a", 16, last=14)
    await settle()
    assert rig.stream.reads == [("topics.room.a", 11, 13)]
    assert rig.holders.delivered == [("live.room.a", 11)]  # the rest waits for the read
    rig.stream.gate.set()
    await settle()
    assert rig.holders.delivered == [
        ("live.room.a", 11),
        ("live.room.a", 12),
        ("live.room.a", 13),
        ("live.room.a", 14),
        ("live.room.b", 15),
        ("live.room.a", 16),
    ]
    # The backlog is worked off: the next message is inline again.
    rig.live("room.b", 17, last=15)
    assert rig.holders.delivered[-1] == ("live.room.b", 17)


async def test_messages_arriving_while_the_pattern_is_locked_follow_in_order(rig: Rig) -> None:
    lock = rig.feeds._locks[PATTERN]
    await lock.acquire()
    for seq in range(11, 16):
        rig.live("room.a", seq, last=seq - 1 if seq > 11 else None)
    await settle()
    assert rig.holders.delivered == []
    lock.release()
    await settle()
    assert rig.holders.delivered == [("live.room.a", seq) for seq in range(11, 16)]


async def test_a_reconnect_catches_the_pattern_up_before_its_next_live_message(rig: Rig) -> None:
    rig.live("room.a", 11)
    rig.nats.stats["reconnects"] = 1
    rig.stream.last_seq = 13
    rig.stream.stored = [Stored(12, "topics.room.a", b"{}"), Stored(13, "topics.room.b", b"{}")]
    rig.live("room.a", 14, last=12)
    await settle()
    assert rig.holders.delivered == [
        ("live.room.a", 11),
        ("live.room.a", 12),
        ("live.room.b", 13),
        ("live.room.a", 14),
    ]


async def test_a_full_backlog_drops_new_messages_and_counts_them(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feeds_module, "BACKLOG_BYTES", 25)
    lock = rig.feeds._locks[PATTERN]
    await lock.acquire()
    for seq in range(11, 15):
        rig.live("room.a", seq, data=b"x" * 10)
    assert rig.metrics.backlog_dropped._value.get() == 2
    lock.release()
    await settle()
    assert rig.holders.delivered == [("live.room.a", 11), ("live.room.a", 12)]
    # The next one on the subject reveals what was dropped; it is fetched from the stream.
    rig.stream.stored = [Stored(13, "topics.room.a", b"{}"), Stored(14, "topics.room.a", b"{}")]
    rig.live("room.a", 15, last=14)
    await settle()
    assert rig.holders.delivered[2:] == [("live.room.a", 13), ("live.room.a", 14), ("live.room.a", 15)]


def _metrics() -> Metrics:
    return Metrics(connections=lambda: 0, subscriptions=lambda: 0, nats_subscriptions=lambda: 0, tasks=lambda: 0)


def _matches(subject: str, stored: str) -> bool:
    """NATS subject matching with ``*`` (all the patterns here need)."""
    want, have = subject.split("."), stored.split(".")
    return len(want) == len(have) and all(w in ("*", h) for w, h in zip(want, have, strict=True))
