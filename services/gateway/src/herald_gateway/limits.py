"""Rate and connection limits as plain bookkeeping (no clock, no socket).

Every method that depends on time takes ``now`` (seconds, any monotonic origin), so the
limits are tested with made-up instants. How the gateway applies them:

- **Handshakes per IP** (``HERALD_CONNECT_RATE_PER_IP``, ``HERALD_CONNECT_BURST_PER_IP``):
  over the rate the WebSocket handshake is refused with HTTP 429 before any socket is
  set up, which costs the server the least.
- **Connections per IP** (``HERALD_MAX_CONNECTIONS_PER_IP``): checked when the socket
  opens; over the limit it is closed at once with 4008.
- **Connections per user** (``HERALD_MAX_CONNECTIONS_PER_USER``): checked at ``auth``,
  when the token's ``sub`` is known; over the limit the client gets ``rate_limited`` and
  the socket is closed with 4008.
- **Frames per connection** (``HERALD_FRAMES_PER_SECOND``, ``HERALD_FRAMES_BURST``): a
  frame over the rate is answered with ``rate_limited`` and not processed; more than
  ``HERALD_RATE_LIMITED_FRAMES_MAX`` such frames within :data:`STRIKE_WINDOW` seconds
  close the socket with 4008.

Tables keyed by IP are bounded: idle entries are evicted, so a scan from many addresses
cannot grow memory without limit.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque

#: Seconds over which rate-limited frames are counted towards closing the connection.
STRIKE_WINDOW = 5.0


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; starts full."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def full(self, now: float) -> bool:
        """True when the bucket is back at its burst (its owner has been idle)."""
        self._refill(now)
        return self._tokens >= self.burst


class KeyedBuckets:
    """One :class:`TokenBucket` per key (client IP), at most ``max_keys`` of them.

    A bucket that has refilled completely carries no information (a fresh one is the
    same), so it can be dropped; when the table is full, the least recently used entry
    goes. Evicting a non-full bucket forgives that key a little, which is acceptable:
    only an attacker juggling more than ``max_keys`` addresses gains from it.
    """

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            self._evict(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)

    def _evict(self, now: float) -> None:
        # Oldest first: drop idle (refilled) buckets from the front, then make room.
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if bucket.full(now) or len(self._buckets) >= self.max_keys:
                del self._buckets[key]
            else:
                break


class Counter:
    """Open connections per key (IP or user), capped at ``limit`` each.

    Entries at zero are deleted, so the table only holds keys with open connections.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def count(self, key: str) -> int:
        return self._counts.get(key, 0)

    def acquire(self, key: str) -> bool:
        """Take a slot for ``key``; False (nothing taken) when it is at the limit."""
        held = self._counts.get(key, 0)
        if held >= self.limit:
            return False
        self._counts[key] = held + 1
        return True

    def release(self, key: str) -> None:
        held = self._counts.get(key, 0)
        if held <= 0:
            raise RuntimeError("released a connection slot that was not held")
        if held == 1:
            del self._counts[key]
        else:
            self._counts[key] = held - 1


class FrameVerdict(enum.Enum):
    ACCEPT = "accept"
    #: Answer ``rate_limited`` and drop the frame.
    REJECT = "reject"
    #: The client keeps going over the rate: close with 4008.
    CLOSE = "close"


class FrameLimiter:
    """The frame rate of one connection, with a tolerance for going over it."""

    __slots__ = ("_bucket", "_strikes", "max_strikes")

    def __init__(self, rate: float, burst: int, max_strikes: int, now: float) -> None:
        self._bucket = TokenBucket(rate, burst, now)
        self._strikes: deque[float] = deque()
        self.max_strikes = max_strikes

    def check(self, now: float) -> FrameVerdict:
        if self._bucket.take(now):
            return FrameVerdict.ACCEPT
        while self._strikes and self._strikes[0] <= now - STRIKE_WINDOW:
            self._strikes.popleft()
        self._strikes.append(now)
        if len(self._strikes) > self.max_strikes:
            return FrameVerdict.CLOSE
        return FrameVerdict.REJECT
