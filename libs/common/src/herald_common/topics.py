"""Topic grammar and the topic ↔ NATS subject mapping (pure functions).

A topic is 1–16 tokens joined by ``.``; each token matches ``[A-Za-z0-9_-]+``; 255
characters at most. A pattern may also use ``*`` (exactly one token) anywhere and ``**``
(one or more tokens) as its last token only; they map to NATS ``*`` and ``>``.
"""

from __future__ import annotations

import re

from herald_common.errors import ErrorCode, HeraldError

MAX_TOPIC_LENGTH = 255
MAX_TOKENS = 16
SINGLE = "*"
MULTI = "**"

#: Subjects that hold topic history (the TOPICS stream captures them).
TOPIC_PREFIX = "topics."
#: Subjects that gateways listen on: the stream republishes each stored message here
#: with its sequence, so live delivery never runs ahead of storage.
LIVE_PREFIX = "live."

_TOKEN = re.compile(r"[A-Za-z0-9_-]+\Z")


def _invalid(what: str, value: object, why: str) -> HeraldError:
    shown = value if isinstance(value, str) and len(value) <= 80 else f"{str(value)[:80]}…"
    return HeraldError(ErrorCode.INVALID_TOPIC, f"invalid {what} {shown!r}: {why}")


def _split(value: object, what: str) -> list[str]:
    if not isinstance(value, str):
        raise _invalid(what, value, "must be a string")
    if not value:
        raise _invalid(what, value, "must not be empty")
    if len(value) > MAX_TOPIC_LENGTH:
        raise _invalid(what, value, f"longer than {MAX_TOPIC_LENGTH} characters")
    tokens = value.split(".")
    if len(tokens) > MAX_TOKENS:
        raise _invalid(what, value, f"more than {MAX_TOKENS} tokens")
    return tokens


def validate_topic(topic: object) -> str:
    """Return ``topic`` if it is a concrete topic, else raise ``invalid_topic``."""
    for token in _split(topic, "topic"):
        if not _TOKEN.match(token):
            raise _invalid("topic", topic, f"token {token!r} must match [A-Za-z0-9_-]+")
    assert isinstance(topic, str)
    return topic


def validate_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a valid subscription pattern, else raise ``invalid_topic``."""
    tokens = _split(pattern, "pattern")
    last = len(tokens) - 1
    for i, token in enumerate(tokens):
        if token == SINGLE:
            continue
        if token == MULTI:
            if i != last:
                raise _invalid("pattern", pattern, "'**' is only allowed as the last token")
            continue
        if not _TOKEN.match(token):
            raise _invalid("pattern", pattern, f"token {token!r} must match [A-Za-z0-9_-]+, '*' or '**'")
    assert isinstance(pattern, str)
    return pattern


#: The namespace of the api's own events (``messages``, ``messages.**``): nobody publishes
#: there directly, so nobody can forge a direct or channel message.
RESERVED_ROOT = "messages"


def is_reserved(topic: str) -> bool:
    """True when ``topic`` is ``messages`` or lies below it: raw publishes there are refused."""
    return topic.split(".", 1)[0] == RESERVED_ROOT


def is_token(value: str) -> bool:
    """True when ``value`` is one topic token (so an id can be embedded in a topic)."""
    return bool(_TOKEN.match(value))


def is_wildcard(pattern: str) -> bool:
    return any(token in (SINGLE, MULTI) for token in pattern.split("."))


def _to_nats(pattern: str) -> str:
    tokens = pattern.split(".")
    if tokens[-1] == MULTI:
        tokens[-1] = ">"
    return ".".join(tokens)


def topic_subject(topic: str) -> str:
    """The subject a topic's messages are published to (and stored under)."""
    return TOPIC_PREFIX + topic


def live_subject(pattern: str) -> str:
    """The subject a gateway subscribes to for a (validated) pattern."""
    return LIVE_PREFIX + _to_nats(pattern)


def pattern_subject(pattern: str) -> str:
    """The stored-history subject filter for a (validated) pattern."""
    return TOPIC_PREFIX + _to_nats(pattern)


def subject_topic(subject: str) -> str:
    """The topic of a ``topics.…`` or ``live.…`` subject."""
    for prefix in (LIVE_PREFIX, TOPIC_PREFIX):
        if subject.startswith(prefix):
            return subject[len(prefix) :]
    raise ValueError(f"not a topic subject: {subject!r}")


def matches(pattern: str, topic: str) -> bool:
    """True when ``topic`` is matched by ``pattern``, with NATS semantics for ``*``/``**``."""
    ptoks = pattern.split(".")
    ttoks = topic.split(".")
    for i, ptok in enumerate(ptoks):
        if ptok == MULTI:
            return len(ttoks) > i
        if i >= len(ttoks):
            return False
        if ptok != SINGLE and ptok != ttoks[i]:
            return False
    return len(ptoks) == len(ttoks)


def covers(outer: str, inner: str) -> bool:
    """True when every topic matched by pattern ``inner`` is also matched by ``outer``."""
    otoks = outer.split(".")
    itoks = inner.split(".")
    for i, otok in enumerate(otoks):
        if otok == MULTI:
            return len(itoks) > i
        if i >= len(itoks):
            return False
        itok = itoks[i]
        if itok == MULTI:
            return False
        if otok == SINGLE:
            continue
        if itok == SINGLE or otok != itok:
            return False
    return len(otoks) == len(itoks)
