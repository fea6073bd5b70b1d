"""Which bridge is active, and how far it got: one key in a JetStream key-value bucket.

The key holds ``{"owner", "until", "seq"}``: the active bridge, when its lease runs out,
and the last events-stream sequence it fully published. Every write is conditional on the
revision the writer last saw, so the key is both a lease and a fencing token: a bridge that
paused past its lease finds its next write refused and stops before doing more work.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

BUCKET = "HERALD_BRIDGE"
KEY = "lease"


class LeaseState(msgspec.Struct, frozen=True):
    owner: str
    until: float
    seq: int


class LostLeaseError(Exception):
    """Another bridge holds the lease now; stop publishing at once."""


_decoder = msgspec.json.Decoder(LeaseState)
_encoder = msgspec.json.Encoder()


async def lease_bucket(js: JetStreamContext, replicas: int) -> KeyValue:
    try:
        return await js.key_value(BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(bucket=BUCKET, history=1, storage=StorageType.FILE, replicas=replicas)
        )


class Lease:
    """This process's claim on the active-bridge role."""

    def __init__(self, kv: KeyValue, duration: float, owner: str | None = None) -> None:
        self._kv = kv
        self._duration = duration
        self.owner = owner or uuid.uuid4().hex
        self._revision = 0
        self.seq = 0
        self.renewed_at = 0.0

    def _value(self, seq: int) -> bytes:
        return _encoder.encode(LeaseState(owner=self.owner, until=time.time() + self._duration, seq=seq))

    async def try_acquire(self) -> bool:
        """Take the lease if it is free or expired; True when this process now holds it."""
        try:
            entry = await self._kv.get(KEY)
        except KeyNotFoundError:
            try:
                self._revision = await self._kv.create(KEY, self._value(0))
            except KeyWrongLastSequenceError:
                return False
            self.seq = 0
            self.renewed_at = time.monotonic()
            return True
        assert entry.value is not None and entry.revision is not None
        state = _decoder.decode(entry.value)
        if state.owner != self.owner and state.until > time.time():
            return False
        try:
            self._revision = await self._kv.update(KEY, self._value(state.seq), last=entry.revision)
        except KeyWrongLastSequenceError:
            return False
        if state.owner != self.owner:
            log.info("bridge took over at events sequence %d", state.seq)
        self.seq = state.seq
        self.renewed_at = time.monotonic()
        return True

    async def renew(self, seq: int | None = None) -> None:
        """Extend the lease, recording ``seq`` as done; raises :class:`LostLeaseError`."""
        value = self._value(self.seq if seq is None else seq)
        try:
            self._revision = await self._kv.update(KEY, value, last=self._revision)
        except KeyWrongLastSequenceError:
            raise LostLeaseError() from None
        if seq is not None:
            self.seq = seq
        self.renewed_at = time.monotonic()

    def due(self) -> bool:
        """True when a third of the lease has passed since it was last renewed."""
        return time.monotonic() - self.renewed_at > self._duration / 3

    async def release(self) -> None:
        """Hand the lease over at once (on a clean stop) so a standby need not wait it out."""
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self._kv.update(
                KEY, _encoder.encode(LeaseState(owner="", until=0.0, seq=self.seq)), last=self._revision
            )
