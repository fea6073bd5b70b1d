"""Who may read which topics, and publish where (pure functions).

One rule for every reader: the gateway applies :func:`authorize_subscribe` to
subscriptions and the api to history reads, so history never shows what a subscription
would not. It answers from the token alone when it can; the only case it cannot is a
concrete ``messages.channel.{id}``, which depends on channel membership that the api
owns (:class:`NeedsMembership`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from herald_common.errors import HeraldError
from herald_common.tokens import Claims
from herald_common.topics import covers, is_token, is_wildcard, matches, validate_pattern

USER_PREFIX = "messages.user."
CHANNEL_PREFIX = "messages.channel."


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class NeedsMembership:
    """Allowed only if the user is a member of ``channel_id`` (ask the api)."""

    channel_id: str


Decision = Verdict | NeedsMembership


def _valid_grants(patterns: tuple[str, ...]) -> list[str]:
    valid = []
    for pattern in patterns:
        try:
            valid.append(validate_pattern(pattern))
        except HeraldError:
            continue  # a malformed grant grants nothing
    return valid


def own_topic(sub: str) -> str | None:
    """``messages.user.{sub}``, or None when ``sub`` cannot be a single topic token.

    A ``sub`` such as ``*`` or ``a.b`` must not turn into a wildcard or someone
    else's topic, so it gets no personal topic at all.
    """
    return USER_PREFIX + sub if is_token(sub) else None


def channel_of(pattern: str) -> str | None:
    """The channel id of a concrete ``messages.channel.{id}`` pattern, else None."""
    if not pattern.startswith(CHANNEL_PREFIX) or is_wildcard(pattern):
        return None
    rest = pattern[len(CHANNEL_PREFIX) :]
    return rest if rest and "." not in rest else None


def authorize_subscribe(claims: Claims, pattern: str) -> Decision:
    """May the holder of ``claims`` subscribe to the (validated) ``pattern``?"""
    if claims.is_admin:
        return Verdict.ALLOW
    if pattern == own_topic(claims.sub):
        return Verdict.ALLOW
    if any(covers(grant, pattern) for grant in _valid_grants(claims.topics)):
        return Verdict.ALLOW
    channel = channel_of(pattern)
    if channel is not None:
        return NeedsMembership(channel)
    return Verdict.DENY


def authorize_publish(claims: Claims, topic: str) -> bool:
    """May the holder of ``claims`` publish to the (validated) concrete ``topic``?"""
    return any(matches(grant, topic) for grant in _valid_grants(claims.publish))
