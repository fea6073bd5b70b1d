"""Who may read a topic's history: the gateway's subscribe rules, applied by the api.

The api and the gateway must agree on these rules (reading history must never show what a
subscription would not), but services never import each other, so the api keeps its own
copy of the token-only part. Channel membership comes from the api's own database.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from herald_common.errors import HeraldError
from herald_common.tokens import Claims
from herald_common.topics import covers, is_token, validate_pattern

USER_PREFIX = "messages.user."
CHANNEL_PREFIX = "messages.channel."


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class NeedsMembership:
    """Allowed only if the caller is a member of ``channel_id``."""

    channel_id: str


Decision = Verdict | NeedsMembership


def own_topic(sub: str) -> str | None:
    """``messages.user.{sub}``, or None when ``sub`` is not a single topic token (so a
    ``sub`` like ``a.b`` never reaches someone else's topic)."""
    return USER_PREFIX + sub if is_token(sub) else None


def _granted(claims: Claims, topic: str) -> bool:
    for grant in claims.topics:
        try:
            validate_pattern(grant)
        except HeraldError:
            continue  # a malformed grant grants nothing
        if covers(grant, topic):
            return True
    return False


def channel_of(topic: str) -> str | None:
    """The channel id of ``messages.channel.{id}``, else None."""
    if not topic.startswith(CHANNEL_PREFIX):
        return None
    rest = topic[len(CHANNEL_PREFIX) :]
    return rest if rest and "." not in rest else None


def authorize_history(claims: Claims, topic: str) -> Decision:
    """May the holder of ``claims`` read the (validated, concrete) ``topic``?"""
    if claims.is_admin:
        return Verdict.ALLOW
    if topic == own_topic(claims.sub):
        return Verdict.ALLOW
    if _granted(claims, topic):
        return Verdict.ALLOW
    channel = channel_of(topic)
    if channel is not None:
        return NeedsMembership(channel)
    return Verdict.DENY
