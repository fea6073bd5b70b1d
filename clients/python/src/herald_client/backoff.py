"""Reconnect delays: exponential backoff with full jitter (pure, the random source injectable)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delay before reconnect attempt ``n`` (from 0): uniform in ``[min_delay, min(max_delay, min_delay * 2**(n+1))]``.

    The jitter spreads many clients that lost the same gateway over the whole window, so
    they do not come back in one burst. :meth:`reset` after a connection succeeded.
    After a rate or connection limit (close 4008), :meth:`next_delay` with ``limited``
    waits at least ``limited_floor`` seconds (still jittered, still at most
    ``max_delay``).
    """

    min_delay: float = 0.5
    max_delay: float = 20.0
    limited_floor: float = 5.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.min_delay <= self.max_delay:
            raise ValueError("backoff needs 0 < min_delay <= max_delay")

    def ceiling(self, attempt: int) -> float:
        """The largest delay attempt ``attempt`` may wait."""
        return min(self.max_delay, self.min_delay * 2.0 ** min(attempt + 1, 62))

    def next_delay(self, *, limited: bool = False) -> float:
        """The delay before the next attempt, counting it."""
        low = self.min_delay
        high = self.ceiling(self.attempt)
        if limited:
            low = min(self.max_delay, max(low, self.limited_floor))
            high = min(self.max_delay, max(high, 2 * low))
        self.attempt += 1
        return self.rng.uniform(low, high)

    def reset(self) -> None:
        self.attempt = 0
