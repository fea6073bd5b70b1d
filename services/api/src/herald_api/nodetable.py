"""The live processes, as their heartbeats tell (:mod:`herald_common.nodes`).

:class:`NodeTable` is plain bookkeeping: the last beat of each process, forgotten after
``timeout`` seconds of silence or at its bye, and the deliveries per second of a gateway
derived from its last two beats. :class:`NodeWatcher` feeds it from NATS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from herald_common import nodes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seen:
    """A process's last beat, when it arrived (this api's clock), and its delivery rate."""

    beat: nodes.Beat
    at: float
    deliveries_per_second: float | None


class NodeTable:
    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._timeout = timeout
        self._clock = clock
        self._seen: dict[str, Seen] = {}

    def observe(self, beat: nodes.Beat) -> None:
        now = self._clock()
        rate = None
        before = self._seen.get(beat.id)
        if before is not None and beat.gateway is not None and before.beat.gateway is not None:
            elapsed = beat.sent - before.beat.sent
            delivered = beat.gateway.deliveries - before.beat.gateway.deliveries
            # A restarted counter (never within one process) keeps the previous rate.
            rate = delivered / elapsed if elapsed > 0 and delivered >= 0 else before.deliveries_per_second
        self._seen[beat.id] = Seen(beat, now, rate)

    def forget(self, node_id: str) -> None:
        self._seen.pop(node_id, None)

    def live(self) -> list[Seen]:
        """Processes heard from within the timeout, by service then id; the others are dropped."""
        cutoff = self._clock() - self._timeout
        for node_id in [i for i, s in self._seen.items() if s.at < cutoff]:
            del self._seen[node_id]
        return sorted(self._seen.values(), key=lambda s: (s.beat.service, s.beat.id))

    def gateway_ids(self) -> set[str]:
        return {s.beat.id for s in self.live() if s.beat.service == "gateway"}


class NodeWatcher:
    """Listens to every process's beats and byes; asks them all to beat when it (re)connects."""

    def __init__(self, table: NodeTable) -> None:
        self._table = table

    async def subscribe(self, nc: Client) -> None:
        await nc.subscribe(nodes.BEAT_PREFIX + ">", cb=self._beat)
        await nc.subscribe(nodes.BYE_PREFIX + ">", cb=self._bye)
        await nc.publish(nodes.HELLO_SUBJECT, b"")

    async def _beat(self, msg: Msg) -> None:
        try:
            self._table.observe(nodes.beat_decoder.decode(msg.data))
        except msgspec.DecodeError:
            log.warning("ignored a malformed node beat on %s", msg.subject)

    async def _bye(self, msg: Msg) -> None:
        try:
            self._table.forget(nodes.bye_decoder.decode(msg.data).id)
        except msgspec.DecodeError:
            log.warning("ignored a malformed node bye on %s", msg.subject)
