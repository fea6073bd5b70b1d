"""Topic patterns on the client side: matching and overlap (pure functions).

The gateway sends each message frame once per socket, naming its concrete topic but not
the pattern it came through, so the client works out locally which of its
subscriptions a frame belongs to.
"""

from __future__ import annotations

SINGLE = "*"
MULTI = "**"


def matches(pattern: str, topic: str) -> bool:
    """True when the concrete ``topic`` is matched by ``pattern`` (``*`` one token, ``**`` one or more, last)."""
    ptoks = pattern.split(".")
    ttoks = topic.split(".")
    for i, p in enumerate(ptoks):
        if p == MULTI:
            return len(ttoks) > i
        if i >= len(ttoks):
            return False
        if p != SINGLE and p != ttoks[i]:
            return False
    return len(ptoks) == len(ttoks)


def intersects(a: str, b: str) -> bool:
    """True when some topic is matched by both patterns."""
    atoks = a.split(".")
    btoks = b.split(".")
    for i, (x, y) in enumerate(zip(atoks, btoks, strict=False)):
        if x == MULTI:
            return len(btoks) > i
        if y == MULTI:
            return len(atoks) > i
        if x != y and SINGLE not in (x, y):
            return False
    return len(atoks) == len(btoks)


def is_exact(pattern: str) -> bool:
    """True when ``pattern`` has no wildcard (presence is only offered on exact topics)."""
    return all(tok not in (SINGLE, MULTI) for tok in pattern.split("."))
