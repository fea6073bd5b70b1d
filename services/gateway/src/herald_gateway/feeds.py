"""One NATS subscription per held pattern, and the messages it must not miss.

Live messages arrive over core NATS, which does not redeliver. Each pattern's
subscription keeps a :class:`~herald_gateway.gapfill.Feed`: a message whose
``Nats-Last-Sequence`` names an undelivered predecessor first gets the missing ones
fetched from the stream and fanned out, and after a NATS reconnect every pattern is
replayed from the highest sequence it had delivered (:meth:`Feeds.catch_up_all`),
before its next live message and before ``/readyz`` says ready again. What cannot be
filled (too much, trimmed, stream recreated) closes the affected clients with 4009, so
they recover with ``since`` or reload; nothing is skipped silently.

Whoever receives the messages stays behind :class:`~herald_gateway.holders.Holders`:
this module does the NATS work once per message and pattern, never per recipient.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from functools import partial

from nats.aio.client import Client
from nats.aio.subscription import Subscription

from herald_common.config import Settings
from herald_common.history import Stored, TooManyError
from herald_common.natsclient import Inline
from herald_common.streams import epoch_of
from herald_common.topics import live_subject, pattern_subject, subject_topic, topic_subject
from herald_gateway.gapfill import Feed, Verdict
from herald_gateway.holders import Holders
from herald_gateway.metrics import Metrics
from herald_gateway.stream import TopicsStream

log = logging.getLogger("herald.gateway")

NATS_FLUSH_TIMEOUT = 2
#: Bytes a ``message`` frame adds around a stored body (header, topic, offset, epoch), for
#: sizing gap-fill rounds; an estimate is enough.
FRAME_OVERHEAD = 256
#: Bytes of live messages a pattern may hold back while it waits (its lock, a gap fill, a
#: catch-up), as nats-py bounds a subscription's queue; past it new ones are dropped, and
#: the next one on their subject finds them missing and has them fetched from the stream.
BACKLOG_BYTES = 128 * 1024 * 1024

#: A live message held back: subject, headers, payload.
_Live = tuple[str, "dict[str, str] | None", bytes]


class _Backlog:
    """A pattern's live messages that wait, in order, and their bytes."""

    __slots__ = ("messages", "size")

    def __init__(self) -> None:
        self.messages: deque[_Live] = deque()
        self.size = 0

    def hold(self, live: _Live) -> bool:
        """Keep ``live`` for later; False (dropped) when that would pass :data:`BACKLOG_BYTES`."""
        size = self.size + len(live[2])
        if size > BACKLOG_BYTES:
            return False
        self.size = size
        self.messages.append(live)
        return True

    def take(self) -> _Live:
        live = self.messages.popleft()
        self.size -= len(live[2])
        return live


class Feeds:
    """The live NATS subscriptions of the patterns ``holders`` hold, on ``nc``."""

    def __init__(
        self, nc: Client, stream: TopicsStream, holders: Holders, settings: Settings, metrics: Metrics
    ) -> None:
        self._nc = nc
        self._stream = stream
        self._holders = holders
        # Looked up once: it runs for every live message.
        self._fan_out = holders.fan_out
        self._gap_subjects = settings.gap_subjects
        #: Bytes per round of a gap fill or catch-up: a quarter of a client's bound.
        self._round_bytes = max(1, settings.max_pending_bytes // 4)
        self._metrics = metrics
        self._subs: dict[str, Subscription] = {}
        #: pattern -> where its live subscription stands, and the lock that serialises
        #: its deliveries (live, gap fills and catch-ups) so they stay in order.
        self._feeds: dict[str, Feed] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: pattern -> its live messages that wait, in order, while a task works them off.
        self._backlogs: dict[str, _Backlog] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: The NATS reconnect count every feed has caught up with (``/readyz`` waits for it).
        self._caught_up = 0
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        """How many patterns are subscribed to on NATS."""
        return len(self._subs)

    @property
    def caught_up(self) -> bool:
        """Every pattern has replayed what it missed during the last NATS reconnect."""
        return self._caught_up >= _reconnects(self._nc)

    async def reconcile(self, pattern: str) -> None:
        """Make the NATS subscription for ``pattern`` exist iff some local connection holds it.

        When it made one, the NATS server has it by the time this returns.
        """
        async with self._lock:
            wanted = self._holders.holds(pattern)
            sub = self._subs.get(pattern)
            try:
                if wanted and sub is None:
                    feed, lock = self._new_feed(pattern)
                    async with lock:  # live messages wait until the feed knows where it starts
                        cb = Inline(partial(self._on_live, pattern))
                        self._subs[pattern] = await self._nc.subscribe(live_subject(pattern), cb=cb)
                        # The server has the interest once the flush returns, so the client's
                        # ``subscribed`` (sent after this) means nothing later is missed.
                        await self._nc.flush(NATS_FLUSH_TIMEOUT)
                        await self._start_feed(feed)
                elif not wanted and sub is not None:
                    del self._subs[pattern]
                    self._feeds.pop(pattern, None)
                    self._locks.pop(pattern, None)
                    await sub.unsubscribe()
            except Exception:
                # The client library re-sends its subscriptions after a reconnect.
                log.warning("nats subscription change for a pattern failed", exc_info=True)

    def _new_feed(self, pattern: str) -> tuple[Feed, asyncio.Lock]:
        feed = Feed(0, self._gap_subjects, epoch=self._stream.epoch, generation=_reconnects(self._nc))
        lock = asyncio.Lock()
        self._feeds[pattern] = feed
        self._locks[pattern] = lock
        return feed, lock

    async def _start_feed(self, feed: Feed) -> None:
        """Start tracking from the stream's end, read once the subscription is live.

        Reading it after subscribing means everything stored later arrives live (or is
        found missing by the gap check), while what was stored before, which the client's
        ``subscribed`` does not promise, is never filled in behind a ``since`` replay that
        already sent it.
        """
        floor, epoch = max((f.high for f in self._feeds.values()), default=0), self._stream.epoch
        try:
            info = await self._stream.info()
            floor, epoch = info.state.last_seq, epoch_of(info)
        except Exception as exc:
            log.warning("could not read the stream end for a new pattern: %s", type(exc).__name__)
        feed.restart(floor, epoch)

    def _on_live(self, pattern: str, subject: str, headers: dict[str, str] | None, data: bytes) -> None:
        """One live message, handed over by the read loop (:class:`~herald_common.natsclient.Inline`).

        The usual case (nothing waits, next on its subject or a duplicate) is handled here and
        now. Otherwise, when the pattern's lock is held, a catch-up is due or the message
        reveals a gap, it and every later message of the pattern wait in the pattern's
        backlog, which a task works off in order (:meth:`_deliver_live`).
        """
        backlog = self._backlogs.get(pattern)
        if backlog is not None:
            self._hold(backlog, (subject, headers, data))
            return
        feed = self._feeds.get(pattern)
        lock = self._locks.get(pattern)
        if feed is None or lock is None:
            return
        if not lock.locked() and feed.generation == _reconnects(self._nc):
            positions = _positions(headers)
            if positions is None:
                # Not a stored message: fan-out counts and logs the drop.
                self._fan_out(pattern, subject, headers, data, self._stream.epoch)
                return
            seq, last_seq = positions
            verdict = feed.observe(subject, seq, last_seq).verdict
            if verdict is Verdict.DUPLICATE:
                return
            if verdict is Verdict.DELIVER:
                self._fan_out(pattern, subject, headers, data, self._stream.epoch)
                feed.delivered(subject, seq)
                return
        backlog = self._backlogs[pattern] = _Backlog()
        self._hold(backlog, (subject, headers, data))
        task = asyncio.create_task(self._work_off(pattern, backlog), name=f"backlog {pattern}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _hold(self, backlog: _Backlog, live: _Live) -> None:
        if not backlog.hold(live):
            self._metrics.backlog_dropped.inc()

    async def _work_off(self, pattern: str, backlog: _Backlog) -> None:
        """Deliver the held-back live messages of ``pattern`` in order, then let new ones through."""
        try:
            while backlog.messages:
                subject, headers, data = backlog.take()
                try:
                    await self._deliver_live(pattern, subject, headers, data)
                except Exception:
                    log.warning("delivering a live message failed", exc_info=True)
        finally:
            # Nothing awaits between the last check and here: no message can slip past.
            if self._backlogs.get(pattern) is backlog:
                del self._backlogs[pattern]

    async def _deliver_live(self, pattern: str, subject: str, headers: dict[str, str] | None, data: bytes) -> None:
        """One held-back live message: fill what its subject missed, drop it if already
        delivered, fan it out; under the pattern's lock, after a catch-up that is due."""
        feed = self._feeds.get(pattern)
        lock = self._locks.get(pattern)
        if feed is None or lock is None:
            return
        async with lock:
            if self._feeds.get(pattern) is not feed:
                return
            if feed.generation != _reconnects(self._nc) and not await self._catch_up(pattern, feed):
                return  # not delivered: the retried catch-up replays it
            positions = _positions(headers)
            if positions is None:
                self._fan_out(pattern, subject, headers, data, self._stream.epoch)
                return
            seq, last_seq = positions
            seen = feed.observe(subject, seq, last_seq)
            if seen.verdict is Verdict.DUPLICATE:
                return
            if seen.verdict is Verdict.GAP:
                await self._fill(pattern, feed, subject, seen.after, seq, last_seq)
            self._fan_out(pattern, subject, headers, data, self._stream.epoch)
            feed.delivered(subject, seq)

    async def _fill(self, pattern: str, feed: Feed, subject: str, after: int, seq: int, last_seq: int | None) -> None:
        """Fan out the stored messages of ``subject`` in ``(after, seq)``, or close their holders."""
        topic = subject_topic(subject)
        try:
            stored = await self._stream.read(topic_subject(topic), after, seq - 1)
        except TooManyError:
            stored = None
        except Exception as exc:
            log.warning("filling a gap failed: %s", type(exc).__name__)
            stored = None
        # The message the header names must be among them: if it is gone (trimmed or
        # deleted), so may be others, and skipping them silently is not an option.
        if stored is None or (last_seq is not None and (not stored or stored[-1].seq != last_seq)):
            log.warning("a gap on a live subscription could not be filled; closing its holders")
            self._holders.drop(pattern, topic)
            return
        self._metrics.gaps_filled.inc(len(stored))
        await self._fan_out_stored(pattern, feed, stored)

    async def _fan_out_stored(self, pattern: str, feed: Feed, stored: list[Stored]) -> None:
        """Fan out stored messages (a gap fill or catch-up) at the pace of the slowest reader.

        Sent in rounds of at most a quarter of the byte bound: before each round, holders
        without room for it are waited for (all at once) instead of being overflowed, so a
        large fill reaches clients that keep reading; one that stalls is closed with 4009.
        The pattern's live messages wait meanwhile (the caller holds its lock).
        """
        budget = self._round_bytes
        start = 0
        while start < len(stored):
            end, size = start, 0
            while end < len(stored) and (end == start or size + len(stored[end].data) <= budget):
                size += len(stored[end].data) + FRAME_OVERHEAD
                end += 1
            await self._holders.make_room(pattern, size)
            for m in stored[start:end]:
                subject = live_subject(subject_topic(m.subject))
                if m.seq <= feed.known(subject):
                    continue
                self._fan_out(pattern, subject, {"Nats-Sequence": str(m.seq)}, m.data, self._stream.epoch)
                feed.delivered(subject, m.seq)
            start = end

    async def _catch_up(self, pattern: str, feed: Feed) -> bool:
        """Replay what ``pattern`` missed while NATS was away; the caller holds its lock.

        False when the stream could not be read (nothing changed; try again later).
        """
        generation = _reconnects(self._nc)
        try:
            info = await self._stream.info()
            epoch, last = epoch_of(info), info.state.last_seq
            if epoch != feed.epoch:
                # The stream was recreated: offsets restarted, nobody can be caught up.
                log.warning("topics epoch changed while NATS was away; closing the holders of a pattern")
                feed.restart(last, epoch)
                self._holders.drop(pattern, None)
            else:
                try:
                    stored = await self._stream.read(pattern_subject(pattern), feed.high, last)
                except TooManyError:
                    log.warning("too much was missed while NATS was away; closing the holders of a pattern")
                    self._holders.drop(pattern, None)
                else:
                    self._metrics.gaps_filled.inc(len(stored))
                    await self._fan_out_stored(pattern, feed, stored)
                feed.caught_up(last)
        except Exception as exc:
            log.warning("catching up after a NATS reconnect failed: %s", type(exc).__name__)
            return False
        if epoch != self._stream.epoch:
            self._stream.epoch = epoch
        feed.generation = generation
        self._metrics.catchups.inc()
        return True

    async def catch_up_all(self) -> None:
        """Catch every pattern up with the current NATS connection, retrying while it stays up."""
        delay = 0.25
        while self._nc.is_connected:
            generation = _reconnects(self._nc)
            behind = [p for p, f in self._feeds.items() if f.generation != generation]
            for pattern in behind:
                feed, lock = self._feeds.get(pattern), self._locks.get(pattern)
                if feed is None or lock is None:
                    continue
                async with lock:
                    if self._feeds.get(pattern) is feed and feed.generation != generation:
                        await self._catch_up(pattern, feed)
            if all(f.generation == generation for f in self._feeds.values()):
                self._caught_up = max(self._caught_up, generation)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def _positions(headers: dict[str, str] | None) -> tuple[int, int | None] | None:
    """A stored message's sequence and its subject's previous one (``Nats-Last-Sequence``);
    None for a message that is not a stored one."""
    if not headers:
        return None
    try:
        seq = int(headers["Nats-Sequence"])
        last_raw = headers.get("Nats-Last-Sequence")
        return seq, int(last_raw) if last_raw else None
    except (KeyError, ValueError):
        return None


def _reconnects(nc: Client) -> int:
    """How many times ``nc`` reconnected: counted before it re-subscribes, so a live
    message received after a reconnect always sees the new count."""
    return int(nc.stats["reconnects"])
