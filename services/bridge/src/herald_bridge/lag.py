"""How far behind the bridges are: the events stream against the checkpoint in the lease key.

Every bridge (active or standing by) measures it, so the figure survives a takeover; the
checkpoint is the one the active bridge records after each batch. The same poll tells
``/readyz`` whether the events stream is reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError

from herald_bridge.lease import BUCKET, KEY, LeaseState
from herald_bridge.metrics import Metrics
from herald_common.streams import EVENTS_STREAM

log = logging.getLogger(__name__)

INTERVAL = 1.0
_lease_decoder = msgspec.json.Decoder(LeaseState)


def lag_of(last_seq: int, first_seq: int, checkpoint: int) -> tuple[int, int]:
    """(events not bridged yet, sequence of the oldest of them, or 0 when none).

    A checkpoint beyond the stream's end means the stream was recreated: the bridge starts
    over, so everything in the stream counts as waiting.
    """
    if checkpoint > last_seq:
        checkpoint = 0
    waiting = last_seq - max(checkpoint, first_seq - 1) if last_seq >= first_seq else 0
    if waiting <= 0:
        return 0, 0
    return waiting, max(checkpoint + 1, first_seq)


class LagWatcher:
    def __init__(self, js: JetStreamContext, metrics: Metrics) -> None:
        self._js = js
        self._metrics = metrics
        self.stream_reachable = False

    async def _checkpoint(self) -> int:
        try:
            kv = await self._js.key_value(BUCKET)
            entry = await kv.get(KEY)
        except (BucketNotFoundError, KeyNotFoundError):
            return 0
        return _lease_decoder.decode(entry.value).seq if entry.value else 0

    async def poll(self) -> None:
        """Measure once; marks the stream unreachable when NATS does not answer."""
        try:
            state = (await self._js.stream_info(EVENTS_STREAM)).state
        except (nats.errors.Error, TimeoutError):
            self.stream_reachable = False
            return
        self.stream_reachable = True
        try:
            checkpoint = await self._checkpoint()
        except (nats.errors.Error, TimeoutError):
            return
        waiting, oldest = lag_of(state.last_seq, state.first_seq, checkpoint)
        self._metrics.lag_events.set(waiting)
        if not waiting:
            self._metrics.lag_seconds.set(0)
            return
        try:
            msg = await self._js.get_msg(EVENTS_STREAM, seq=oldest)
        except NotFoundError:
            return  # deleted or expired since stream_info; the next poll sees the new first message
        except (nats.errors.Error, TimeoutError):
            return
        if msg.time is not None:
            age = (dt.datetime.now(dt.UTC) - msg.time).total_seconds()
            self._metrics.lag_seconds.set(max(0.0, age))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), INTERVAL)
