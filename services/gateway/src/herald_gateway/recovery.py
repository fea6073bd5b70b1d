"""Recovery of missed messages for a ``subscribe`` with ``since`` (plain bookkeeping).

The shell establishes the live interest first and meanwhile parks the live messages of
that subscription in a :class:`Recovery`; it replays the stored history up to the last
stream sequence it observed when the replay began, then calls :meth:`Recovery.finish`,
which hands back the parked messages that come after the replayed ones, so there is no
gap and no duplicate at the seam. The buffer is bounded: overflowing it makes the
connection a slow consumer (4009).

Whether ``recovered`` may be answered true is decided by :func:`gap_is_covered` from
facts about the stream (see its docstring); false is always safe.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Mapping


class RecoveryState(enum.Enum):
    RECOVERING = "recovering"
    LIVE = "live"
    #: The buffer overflowed; the connection is being closed as a slow consumer.
    OVERFLOWED = "overflowed"


class IllegalRecoveryStepError(RuntimeError):
    """A step the recovery life cycle does not allow."""


class Recovery:
    """Live messages of one recovering subscription, held back until the replay ends."""

    __slots__ = ("_buffer", "limit", "state")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.state = RecoveryState.RECOVERING
        self._buffer: deque[tuple[int, bytes]] = deque()

    def __len__(self) -> int:
        return len(self._buffer)

    def park(self, offset: int, frame: bytes) -> bool:
        """Hold a live message; False when the buffer is full (the recovery has failed)."""
        if self.state is not RecoveryState.RECOVERING:
            raise IllegalRecoveryStepError(f"park while {self.state.value}")
        if len(self._buffer) >= self.limit:
            self.state = RecoveryState.OVERFLOWED
            self._buffer.clear()
            return False
        self._buffer.append((offset, frame))
        return True

    def finish(self, replayed_through: int) -> list[bytes]:
        """Go live; the parked frames with an offset above ``replayed_through``, in arrival order."""
        if self.state is not RecoveryState.RECOVERING:
            raise IllegalRecoveryStepError(f"finish while {self.state.value}")
        self.state = RecoveryState.LIVE
        out = [frame for offset, frame in self._buffer if offset > replayed_through]
        self._buffer.clear()
        return out


def gap_is_covered(
    *,
    offset: int,
    first_seq: int,
    last_seq: int,
    anchor_matches: bool,
    oldest_by_subject: Mapping[str, int],
    replayed_subjects: Iterable[str],
) -> bool:
    """True only when every message after ``offset`` that matches the pattern is still stored.

    The TOPICS stream discards oldest first, per subject (``max_msgs_per_subject``) and
    overall (``max_age``). So:

    - ``offset == 0`` asks for everything: covered only if the stream never lost a
      message (its first sequence is still 1, or it is empty and never held one).
    - otherwise the message at ``offset`` (the last one the client saw) must still be
      stored and match the pattern (``anchor_matches``): then nothing newer was dropped by
      age or by the stream-wide order.
    - and for each subject that has messages after ``offset`` (the ones replayed), the
      oldest message still stored on it (``oldest_by_subject``) must be at or before
      ``offset``: otherwise per-subject trimming may have dropped some the client missed.
      A subject whose every message after ``offset`` was trimmed cannot exist, since
      trimming keeps its newest messages.
    - an ``offset`` past the stream's last sequence is not a position this stream gave.
    """
    if offset == 0:
        return first_seq <= 1
    if offset > last_seq or not anchor_matches:
        return False
    for subject in replayed_subjects:
        oldest = oldest_by_subject.get(subject)
        if oldest is None or oldest > offset:
            return False
    return True
