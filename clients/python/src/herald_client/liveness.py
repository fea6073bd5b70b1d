"""Is the socket alive? App-level pings after silence, a verdict when nothing answers (pure)."""

from __future__ import annotations

import enum


class Step(enum.Enum):
    NOTHING = "nothing"
    #: Send a ``ping`` now.
    PING = "ping"
    #: Nothing arrived within the timeout after a ping: the socket is dead.
    DEAD = "dead"


class Liveness:
    """Any frame from the gateway proves the socket alive. After ``interval`` seconds of
    silence a ``ping`` goes out; no frame within ``timeout`` after it means dead. While
    reading is paused (the app's buffer is full) nothing can be heard, so no verdict is
    passed and the silence counts again from the resume."""

    __slots__ = ("_last_rx", "_ping_sent", "interval", "paused", "timeout")

    def __init__(self, interval: float, timeout: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self._last_rx = 0.0
        self._ping_sent: float | None = None
        self.paused = False

    def reset(self, now: float) -> None:
        """A new socket opened, or reading resumed."""
        self._last_rx = now
        self._ping_sent = None
        self.paused = False

    def heard(self, now: float) -> None:
        self._last_rx = now
        self._ping_sent = None

    @property
    def deadline(self) -> float | None:
        if self.paused:
            return None
        if self._ping_sent is None:
            return self._last_rx + self.interval
        return self._ping_sent + self.timeout

    def tick(self, now: float) -> Step:
        if self.paused:
            return Step.NOTHING
        if self._ping_sent is not None:
            if now >= self._ping_sent + self.timeout:
                self._ping_sent = None
                return Step.DEAD
            return Step.NOTHING
        if now >= self._last_rx + self.interval:
            self._ping_sent = now
            return Step.PING
        return Step.NOTHING
