"""The sans-I/O core of one WebSocket connection.

Inputs are text or binary frames, timer ticks (``now`` in Unix seconds), and results of
lookups the shell performed; each returns a list of :mod:`~herald_gateway.actions`.
There is no socket, task or clock in here: the shell reads :attr:`Session.deadline` and
calls :meth:`Session.on_timer` when it passes.

Protocol choices that PRODUCT.md leaves open:

- Before ``auth``, any other frame is fatal: a well-formed frame gets ``unauthorized``,
  a malformed one ``bad_request``, then the socket is closed with 4001.
- ``unsubscribe`` of a pattern that is not held answers ``unsubscribed`` (idempotent,
  like a duplicate ``subscribe`` answers ``subscribed``).
- Going over ``HERALD_MAX_SUBSCRIPTIONS`` answers ``rate_limited``; the connection stays.
- ``auth`` on a live connection refreshes the token when ``sub`` is the same (answered
  with ``auth_success``; subscriptions the new token no longer allows are dropped with
  ``unsubscribed``); a different ``sub`` gets ``forbidden``; an invalid token gets
  ``unauthorized`` and the current token stays in force.
- When the token expires the client gets an ``unauthorized`` error and
  ``HERALD_AUTH_REFRESH_GRACE`` seconds to send a fresh ``auth``; messages keep flowing
  meanwhile (and ``unsubscribe`` works), but ``subscribe`` and ``message`` are
  refused until it does. After the
  grace period the socket is closed with 4001.
- A ``since`` on a new ``subscribe`` asks the shell to replay history
  (:class:`~herald_gateway.actions.Replay`); the shell sends ``subscribed`` with
  ``recovered`` before the replayed messages. A ``since`` on a pattern already held is
  answered with ``recovered: false`` at once: the connection was live, so it cannot
  tell what the client missed.
- Frames over ``HERALD_FRAMES_PER_SECOND`` get ``rate_limited`` (without the frame's
  ``id``: the frame is not decoded at all) and are dropped; a client that keeps going is
  closed with 4008 (see :mod:`herald_gateway.limits`). WebSocket pings and pongs count
  too (:meth:`Session.on_control`).
- ``presence: true`` on a pattern with a wildcard is ``invalid_topic``; a repeated
  ``subscribe`` sets it anew. A ``presence`` query is authorized like a subscription to
  its topic (:class:`~herald_gateway.actions.AskPresence`; see :mod:`herald_gateway.presence`).
- A first ``auth`` for a user already holding ``HERALD_MAX_CONNECTIONS_PER_USER``
  connections gets ``rate_limited`` and the socket is closed with 4008. The slot taken at
  ``auth`` is given back on every way a session closes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from msgspec import UNSET

from herald_common import wire
from herald_common.access import NeedsMembership, Verdict, authorize_publish, authorize_subscribe
from herald_common.errors import CloseCode, ErrorCode, HeraldError
from herald_common.rpc import MembershipReply
from herald_common.tokens import Claims
from herald_common.topics import is_reserved, is_wildcard, validate_pattern, validate_topic
from herald_gateway.actions import (
    Action,
    AddInterest,
    AskMembership,
    AskPresence,
    BeginRecovery,
    Close,
    PublishTo,
    RemoveInterest,
    Replay,
    Send,
    Watch,
)
from herald_gateway.limits import Counter, FrameLimiter, FrameVerdict
from herald_gateway.subscriptions import Grant, SubscriptionSet


class AuthState(enum.Enum):
    AWAITING_AUTH = "awaiting_auth"
    AUTHENTICATED = "authenticated"
    #: The token expired; the client may still re-authenticate within the grace period.
    EXPIRED = "expired"
    CLOSED = "closed"


_TRANSITIONS: dict[AuthState, frozenset[AuthState]] = {
    AuthState.AWAITING_AUTH: frozenset({AuthState.AUTHENTICATED, AuthState.CLOSED}),
    AuthState.AUTHENTICATED: frozenset({AuthState.AUTHENTICATED, AuthState.EXPIRED, AuthState.CLOSED}),
    AuthState.EXPIRED: frozenset({AuthState.AUTHENTICATED, AuthState.CLOSED}),
    AuthState.CLOSED: frozenset(),
}


class IllegalTransitionError(RuntimeError):
    """A state change the connection's life cycle does not allow."""


class Verifier(Protocol):
    def verify(self, token: object) -> Claims: ...


@dataclass(frozen=True, slots=True)
class Limits:
    auth_timeout: float
    refresh_grace: float
    max_subscriptions: int
    frames_per_second: float = 50.0
    frames_burst: int = 100
    rate_limited_frames_max: int = 20


@dataclass(frozen=True, slots=True)
class _Pending:
    pattern: str
    frame_id: Any
    since: wire.Since | None
    presence: bool = False
    #: a ``presence`` query waiting for the membership answer, not a subscription
    query: bool = False


class _IdProbe(msgspec.Struct):
    id: Any = UNSET


_probe_decoder = msgspec.json.Decoder(_IdProbe)


def _probe_id(data: bytes | str) -> Any:
    """The ``id`` of a frame that failed to decode, when it can still be read."""
    try:
        return _probe_decoder.decode(data).id
    except Exception:  # any way the frame is broken means "no id"
        return UNSET


def _encode(frame: wire.ServerFrame) -> bytes:
    try:
        return wire.encode(frame)
    except (TypeError, ValueError, OverflowError):
        # An echoed ``id`` the encoder cannot represent is dropped rather than failing.
        if isinstance(frame, wire.Error | wire.Subscribed | wire.Unsubscribed | wire.Published):
            return wire.encode(msgspec.structs.replace(frame, id=UNSET))
        raise


def error_frame(code: ErrorCode, message: str, frame_id: Any = UNSET) -> Send:
    return Send(_encode(wire.Error(code=code.value, message=message, id=frame_id)))


_PONG = Send(wire.encode(wire.Pong()))


class Session:
    """One client connection's protocol state: auth, subscriptions, permissions."""

    def __init__(self, verifier: Verifier, limits: Limits, now: float, users: Counter | None = None) -> None:
        """``users`` counts connections per user across the process (None: no limit)."""
        self._verifier = verifier
        self._limits = limits
        self._state = AuthState.AWAITING_AUTH
        self._auth_deadline = now + limits.auth_timeout
        self._claims: Claims | None = None
        self._subs = SubscriptionSet()
        self._pending: dict[int, _Pending] = {}
        self._next_request = 0
        self._frames = FrameLimiter(limits.frames_per_second, limits.frames_burst, limits.rate_limited_frames_max, now)
        self._users = users
        self._user_slot: str | None = None

    @property
    def state(self) -> AuthState:
        return self._state

    @property
    def user_id(self) -> str | None:
        return self._claims.sub if self._claims is not None else None

    @property
    def subscriptions(self) -> SubscriptionSet:
        return self._subs

    @property
    def deadline(self) -> float | None:
        """When :meth:`on_timer` must next be called (Unix seconds), or None."""
        if self._state is AuthState.AWAITING_AUTH:
            return self._auth_deadline
        if self._claims is None:
            return None
        if self._state is AuthState.AUTHENTICATED:
            return self._claims.exp
        if self._state is AuthState.EXPIRED:
            return self._claims.exp + self._limits.refresh_grace
        return None

    def _transition(self, new: AuthState) -> None:
        if new not in _TRANSITIONS[self._state]:
            raise IllegalTransitionError(f"{self._state.value} -> {new.value}")
        self._state = new

    def wants(self, pattern: str, topic: str) -> bool:
        """Deliver a live message on ``topic`` that arrived for ``pattern``?"""
        return self._subs.wants(pattern, topic)

    # inputs

    def _over_rate(self, now: float) -> list[Action] | None:
        verdict = self._frames.check(now)
        if verdict is FrameVerdict.ACCEPT:
            return None
        actions: list[Action] = [error_frame(ErrorCode.RATE_LIMITED, "too many frames; slow down")]
        if verdict is FrameVerdict.CLOSE:
            actions += self._close(CloseCode.POLICY_LIMIT, "too many frames")
        return actions

    def on_text(self, data: bytes | str, now: float) -> list[Action]:
        if self._state is AuthState.CLOSED:
            return []
        limited = self._over_rate(now)
        if limited is not None:
            return limited
        try:
            frame = wire.decode_client_frame(data)
        except HeraldError as exc:
            actions: list[Action] = [error_frame(exc.code, exc.message, _probe_id(data))]
            if self._state is AuthState.AWAITING_AUTH:
                actions += self._close(CloseCode.AUTH_FAILED, "authentication required")
            return actions
        if self._state is AuthState.AWAITING_AUTH:
            return self._first_frame(frame, now)
        return self._dispatch(frame, now)

    def on_binary(self, data: bytes, now: float) -> list[Action]:
        if self._state is AuthState.CLOSED:
            return []
        limited = self._over_rate(now)
        if limited is not None:
            return limited
        actions: list[Action] = [error_frame(ErrorCode.BAD_REQUEST, "binary frames are not supported")]
        if self._state is AuthState.AWAITING_AUTH:
            actions += self._close(CloseCode.AUTH_FAILED, "authentication required")
        return actions

    def on_control(self, frames: int, now: float) -> list[Action]:
        """``frames`` WebSocket pings or pongs arrived (the socket layer answers pings itself).

        They count against the frame rate like any other frame, before ``auth`` too (where
        they are not fatal: a client library may ping at any time): over the rate each one
        is answered ``rate_limited``, and a client that keeps going is closed with 4008.
        """
        actions: list[Action] = []
        for _ in range(frames):
            if self._state is AuthState.CLOSED:
                break
            limited = self._over_rate(now)
            if limited is not None:
                actions += limited
        return actions

    def on_timer(self, now: float) -> list[Action]:
        deadline = self.deadline
        if deadline is None or now < deadline:
            return []
        if self._state is AuthState.AWAITING_AUTH:
            return [
                error_frame(ErrorCode.UNAUTHORIZED, "authentication timed out"),
                *self._close(CloseCode.AUTH_FAILED, "authentication timed out"),
            ]
        if self._state is AuthState.AUTHENTICATED:
            self._transition(AuthState.EXPIRED)
            grace = self._limits.refresh_grace
            return [
                error_frame(ErrorCode.UNAUTHORIZED, f"token expired; send auth with a fresh token within {grace:g}s")
            ]
        return [
            error_frame(ErrorCode.UNAUTHORIZED, "token expired"),
            *self._close(CloseCode.AUTH_FAILED, "token expired"),
        ]

    def on_membership(self, request_id: int, reply: MembershipReply | None) -> list[Action]:
        """The api's answer to :class:`AskMembership` (None: no answer in time)."""
        pending = self._pending.pop(request_id, None)
        if pending is None or self._state is AuthState.CLOSED:
            return []
        if reply is None:
            return [error_frame(ErrorCode.INTERNAL, "channel membership could not be checked", pending.frame_id)]
        if not reply.member:
            return [
                error_frame(ErrorCode.FORBIDDEN, f"not allowed to subscribe to {pending.pattern!r}", pending.frame_id)
            ]
        if pending.query:
            return [AskPresence(pending.pattern, pending.frame_id)]
        return self._hold(pending.pattern, Grant.MEMBERSHIP, pending.frame_id, pending.since, pending.presence)

    def on_published(self, topic: str, offset: int, frame_id: Any) -> list[Action]:
        """JetStream stored a :class:`PublishTo` at stream sequence ``offset``."""
        if self._state is AuthState.CLOSED:
            return []
        return [Send(_encode(wire.Published(topic=topic, offset=offset, id=frame_id)))]

    def on_publish_failed(self, frame_id: Any) -> list[Action]:
        if self._state is AuthState.CLOSED:
            return []
        return [error_frame(ErrorCode.INTERNAL, "message could not be published", frame_id)]

    def on_access_revoked(self, channel_id: str) -> list[Action]:
        """The user lost access to ``channel_id``: drop what membership granted."""
        pattern = f"messages.channel.{channel_id}"
        if self._subs.grant(pattern) is not Grant.MEMBERSHIP:
            return []
        self._subs.remove(pattern)
        return [RemoveInterest(pattern), Send(_encode(wire.Unsubscribed(topic=pattern)))]

    def on_slow_consumer(self) -> list[Action]:
        if self._state is AuthState.CLOSED:
            return []
        return self._close(CloseCode.SLOW_CONSUMER, "slow consumer")

    def on_operator_disconnect(self) -> list[Action]:
        """An operator disconnected this user (``POST /api/users/{userId}/disconnect``): close with 4003."""
        if self._state is AuthState.CLOSED:
            return []
        return self._close(CloseCode.OPERATOR_DISCONNECT, "disconnected by an operator")

    def on_disconnect(self) -> list[Action]:
        """The socket is gone; release everything (no frames are sent)."""
        if self._state is AuthState.CLOSED:
            return []
        return [a for a in self._close(CloseCode.NORMAL, "") if isinstance(a, RemoveInterest)]

    # internals

    def _close(self, code: CloseCode, reason: str) -> list[Action]:
        self._transition(AuthState.CLOSED)
        self._pending.clear()
        if self._user_slot is not None and self._users is not None:
            self._users.release(self._user_slot)
            self._user_slot = None
        actions: list[Action] = [RemoveInterest(p) for p in self._subs.clear()]
        actions.append(Close(code, reason))
        return actions

    def _verify(self, token: str) -> Claims | HeraldError:
        try:
            return self._verifier.verify(token)
        except HeraldError as exc:
            return exc

    def _first_frame(self, frame: wire.ClientFrame, now: float) -> list[Action]:
        if not isinstance(frame, wire.Auth):
            return [
                error_frame(ErrorCode.UNAUTHORIZED, "the first frame must be auth", getattr(frame, "id", UNSET)),
                *self._close(CloseCode.AUTH_FAILED, "authentication required"),
            ]
        claims = self._verify(frame.token)
        if isinstance(claims, HeraldError):
            return [
                error_frame(ErrorCode.UNAUTHORIZED, claims.message),
                *self._close(CloseCode.AUTH_FAILED, "authentication failed"),
            ]
        if self._users is not None:
            if not self._users.acquire(claims.sub):
                limit = self._users.limit
                return [
                    error_frame(ErrorCode.RATE_LIMITED, f"at most {limit} connections per user"),
                    *self._close(CloseCode.POLICY_LIMIT, "too many connections for this user"),
                ]
            self._user_slot = claims.sub
        self._claims = claims
        self._transition(AuthState.AUTHENTICATED)
        return [Send(_encode(wire.AuthSuccess(user_id=claims.sub)))]

    def _dispatch(self, frame: wire.ClientFrame, now: float) -> list[Action]:
        if isinstance(frame, wire.Ping):
            return [_PONG]
        if isinstance(frame, wire.Auth):
            return self._refresh(frame)
        if isinstance(frame, wire.Unsubscribe):
            return self._unsubscribe(frame)
        if self._state is AuthState.EXPIRED:
            return [error_frame(ErrorCode.UNAUTHORIZED, "token expired; send auth with a fresh token", frame.id)]
        if isinstance(frame, wire.Subscribe):
            return self._subscribe(frame)
        if isinstance(frame, wire.PresenceQuery):
            return self._query(frame)
        return self._publish(frame)

    def _refresh(self, frame: wire.Auth) -> list[Action]:
        assert self._claims is not None
        claims = self._verify(frame.token)
        if isinstance(claims, HeraldError):
            return [error_frame(ErrorCode.UNAUTHORIZED, claims.message)]
        if claims.sub != self._claims.sub:
            return [error_frame(ErrorCode.FORBIDDEN, "a connection cannot change its user")]
        self._claims = claims
        self._transition(AuthState.AUTHENTICATED)
        actions: list[Action] = [Send(_encode(wire.AuthSuccess(user_id=claims.sub)))]
        for pattern in self._subs:
            if self._subs.grant(pattern) is Grant.TOKEN and authorize_subscribe(claims, pattern) is not Verdict.ALLOW:
                self._subs.remove(pattern)
                actions += [RemoveInterest(pattern), Send(_encode(wire.Unsubscribed(topic=pattern)))]
        return actions

    def _subscribe(self, frame: wire.Subscribe) -> list[Action]:
        assert self._claims is not None
        try:
            pattern = validate_pattern(frame.topic)
        except HeraldError as exc:
            return [error_frame(exc.code, exc.message, frame.id)]
        if frame.presence and is_wildcard(pattern):
            return [error_frame(ErrorCode.INVALID_TOPIC, "presence needs an exact topic, not a pattern", frame.id)]
        if pattern in self._subs:
            watch: list[Action] = [] if is_wildcard(pattern) else [Watch(pattern, frame.presence)]
            return [*watch, self._subscribed(pattern, frame.id, frame.since)]
        if len(self._subs) + len(self._pending) >= self._limits.max_subscriptions:
            limit = self._limits.max_subscriptions
            return [error_frame(ErrorCode.RATE_LIMITED, f"at most {limit} subscriptions per connection", frame.id)]
        decision = authorize_subscribe(self._claims, pattern)
        if isinstance(decision, NeedsMembership):
            return self._ask(_Pending(pattern, frame.id, frame.since, frame.presence), decision.channel_id)
        if decision is Verdict.DENY:
            return [error_frame(ErrorCode.FORBIDDEN, f"not allowed to subscribe to {pattern!r}", frame.id)]
        return self._hold(pattern, Grant.TOKEN, frame.id, frame.since, frame.presence)

    def _ask(self, pending: _Pending, channel_id: str) -> list[Action]:
        assert self._claims is not None
        request_id = self._next_request
        self._next_request += 1
        self._pending[request_id] = pending
        return [AskMembership(request_id, channel_id, self._claims.sub)]

    def _query(self, frame: wire.PresenceQuery) -> list[Action]:
        assert self._claims is not None
        try:
            topic = validate_topic(frame.topic)
        except HeraldError as exc:
            return [error_frame(exc.code, exc.message, frame.id)]
        decision = authorize_subscribe(self._claims, topic)
        if isinstance(decision, NeedsMembership):
            return self._ask(_Pending(topic, frame.id, None, query=True), decision.channel_id)
        if decision is Verdict.DENY:
            return [error_frame(ErrorCode.FORBIDDEN, f"not allowed to see who is on {topic!r}", frame.id)]
        return [AskPresence(topic, frame.id)]

    def _hold(
        self, pattern: str, grant: Grant, frame_id: Any, since: wire.Since | None, presence: bool = False
    ) -> list[Action]:
        if pattern in self._subs:
            return [self._subscribed(pattern, frame_id, since)]
        if len(self._subs) >= self._limits.max_subscriptions:
            limit = self._limits.max_subscriptions
            return [error_frame(ErrorCode.RATE_LIMITED, f"at most {limit} subscriptions per connection", frame_id)]
        self._subs.add(pattern, grant)
        if since is not None:
            recovered = _encode(wire.Subscribed(topic=pattern, id=frame_id, recovered=True))
            lost = self._subscribed(pattern, frame_id, since).frame
            return [BeginRecovery(pattern), AddInterest(pattern, presence), Replay(pattern, since, recovered, lost)]
        # AddInterest comes first: the shell has the NATS interest in place before the
        # client hears ``subscribed``, so nothing published afterwards is missed.
        return [AddInterest(pattern, presence), self._subscribed(pattern, frame_id, since)]

    def _subscribed(self, pattern: str, frame_id: Any, since: wire.Since | None) -> Send:
        recovered: bool | msgspec.UnsetType = False if since is not None else UNSET
        return Send(_encode(wire.Subscribed(topic=pattern, id=frame_id, recovered=recovered)))

    def _unsubscribe(self, frame: wire.Unsubscribe) -> list[Action]:
        try:
            pattern = validate_pattern(frame.topic)
        except HeraldError as exc:
            return [error_frame(exc.code, exc.message, frame.id)]
        for request_id in [r for r, p in self._pending.items() if p.pattern == pattern]:
            del self._pending[request_id]
        actions: list[Action] = []
        if self._subs.remove(pattern):
            actions.append(RemoveInterest(pattern))
        actions.append(Send(_encode(wire.Unsubscribed(topic=pattern, id=frame.id))))
        return actions

    def _publish(self, frame: wire.Publish) -> list[Action]:
        assert self._claims is not None
        try:
            topic = validate_topic(frame.topic)
        except HeraldError as exc:
            return [error_frame(exc.code, exc.message, frame.id)]
        if is_reserved(topic):
            # Whatever the grant says: only the api's own events go there (no forged messages).
            message = f"{topic!r} is reserved for messages sent through the api"
            return [error_frame(ErrorCode.FORBIDDEN, message, frame.id)]
        if not authorize_publish(self._claims, topic):
            return [error_frame(ErrorCode.FORBIDDEN, f"not allowed to publish to {topic!r}", frame.id)]
        return [PublishTo(topic, bytes(frame.data), self._claims.sub, frame.id)]
