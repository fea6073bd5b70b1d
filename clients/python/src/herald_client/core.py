"""The sans-I/O core of the client: one object, no socket, no task, no clock.

The I/O shell (:mod:`herald_client.client`) feeds it what happened (the socket opened,
a frame arrived, the socket closed, a timer passed, the app called something) with the
current monotonic time, and carries out the :mod:`~herald_client.outputs` it returns,
in order. :attr:`Core.deadline` says when :meth:`Core.on_timer` is next due.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from msgspec import UNSET

from herald_client import frames
from herald_client.backoff import Backoff
from herald_client.errors import (
    AuthenticationError,
    ClientClosedError,
    ConnectionLostError,
    DisconnectedByOperatorError,
    RequestTimeoutError,
    ServerError,
    SubscriptionEndedError,
)
from herald_client.liveness import Liveness, Step
from herald_client.messages import PresenceSnapshot, PublishResult
from herald_client.outputs import (
    Abort,
    CloseSocket,
    FetchToken,
    Notice,
    Output,
    ReconnectIn,
    Reject,
    Resolve,
    Send,
    Stopped,
)
from herald_client.policy import ABNORMAL, LIMITED, OPERATOR, Next, after_close
from herald_client.requests import Kind, Request, Requests
from herald_client.resume import Position
from herald_client.routing import Entry, Table
from herald_client.states import (
    CLIENT_TRANSITIONS,
    ClientState,
    StateMachine,
    SubscriptionState,
)
from herald_client.tokens import Refresh
from herald_client.topics import is_exact

#: Subscribe errors worth retrying on the same connection (the gateway could not check
#: a channel membership, or too many frames).
RETRYABLE = frozenset({"internal", "rate_limited"})
#: After an ``unauthorized`` during a refresh, how long its ``auth_success`` may still take.
REFUSAL_WAIT = 1.0


@dataclass(frozen=True, slots=True)
class Timing:
    """Timeouts in seconds; the defaults are the :class:`~herald_client.Client`'s."""

    #: Send an app-level ``ping`` after this long without any frame from the gateway ...
    ping_interval: float = 15.0
    #: ... and give the socket up if nothing arrives within this long after it.
    ping_timeout: float = 10.0
    #: How long publish, presence and unsubscribe wait for their answer.
    request_timeout: float = 10.0
    #: How long the gateway may take to answer ``auth`` (first or refresh).
    auth_timeout: float = 10.0
    #: Before sending a subscribe again after a retryable error.
    resubscribe_delay: float = 1.0


class Core:
    def __init__(
        self, *, refreshable_token: bool, backoff: Backoff | None = None, timing: Timing | None = None
    ) -> None:
        self.machine: StateMachine[ClientState] = StateMachine(ClientState.DISCONNECTED, CLIENT_TRANSITIONS)
        self.refreshable_token = refreshable_token
        self.backoff = backoff or Backoff()
        self.timing = timing or Timing()
        self.subs = Table()
        self.requests = Requests()
        self.user_id: str | None = None
        #: Why the client stopped for good (None while it runs, or when the app closed it).
        self.error: Exception | None = None
        self._closed_by_app = False
        self._auth_deadline: float | None = None
        self.liveness = Liveness(self.timing.ping_interval, self.timing.ping_timeout)
        self.refresh = Refresh(refreshable_token, self.timing.auth_timeout)
        self._abort_code: int | None = None
        #: The code of every socket close or failed attempt so far (None: no code), oldest first.
        self.close_codes: list[int | None] = []

    @property
    def state(self) -> ClientState:
        return self.machine.state

    @property
    def deadline(self) -> float | None:
        """When :meth:`on_timer` must next be called (monotonic seconds), or None."""
        paused = self.liveness.paused
        times = [self.requests.deadline(subscribes=not paused)]
        if self.state is ClientState.CONNECTING:
            times.append(self._auth_deadline)
        elif self.state is ClientState.CONNECTED:
            times.append(self.liveness.deadline)
            if self.refresh.awaiting is None or not paused:
                times.append(self.refresh.deadline)
            times += [e.retry_at for e in self.subs]
        present = [t for t in times if t is not None]
        return min(present) if present else None

    # the connection

    def start(self) -> None:
        """The app called ``connect`` (or a reconnect delay passed): a socket is being opened."""
        self.machine.to(ClientState.CONNECTING)
        self._abort_code = None

    def on_open(self, token: str, now: float, wall: float) -> list[Output]:
        """The socket is open; authenticate with ``token`` (``wall``: Unix time, for its ``exp``)."""
        self._auth_deadline = now + self.timing.auth_timeout
        self.liveness.reset(now)
        self.refresh.sent(token, now, wall, refresh=False)
        return [Send(frames.encode(frames.Auth(token=token)))]

    def on_connect_failed(self, now: float, *, limited: bool = False) -> list[Output]:
        """Opening the socket (or getting a token for it) failed; retry after a backoff delay.

        ``limited``: the gateway refused the handshake for a rate limit (HTTP 429), which
        backs off like close 4008.
        """
        return self.on_closed(LIMITED if limited else None, now)

    def on_fresh_token(self, token: str, wall: float, now: float) -> list[Output]:
        """The token callback answered (for a refresh on the live socket)."""
        if self.state is not ClientState.CONNECTED:
            return []
        self.refresh.sent(token, now, wall, refresh=True)
        return [Send(frames.encode(frames.Auth(token=token)))]

    def on_token_failed(self, now: float) -> list[Output]:
        """The token callback raised during a refresh: reconnect (which asks it again)."""
        if self.state is not ClientState.CONNECTED:
            return []
        return [self._abort("the token callback failed")]

    def pause_reading(self, paused: bool, now: float) -> None:
        """The shell stopped (True) or resumed (False) reading the socket because a
        subscription's buffer is full. Meanwhile no answer can be heard, so the ping and
        the refresh answer are not held against the gateway; on resuming they start over.
        """
        self.liveness.paused = paused
        if not paused:
            self.liveness.reset(now)
            self.requests.extend(Kind.SUBSCRIBE, now + self.timing.request_timeout)
            if self.refresh.awaiting is not None:
                self.refresh.awaiting = max(self.refresh.awaiting, now + self.timing.auth_timeout)

    def _abort(self, reason: str) -> Abort:
        # Whatever code the socket then closes with, this was a dead or unusable connection.
        self._abort_code = ABNORMAL
        return Abort(reason)

    def close(self) -> list[Output]:
        """The app closed the client: end everything, never reconnect."""
        if self.state is ClientState.CLOSED:
            return []
        self._closed_by_app = True
        return [CloseSocket(), *self._stop(None)]

    def on_closed(self, code: int | None, now: float) -> list[Output]:
        """The socket closed with ``code`` (None: it never opened, or no code)."""
        if self.state is ClientState.CLOSED:
            return []
        self.close_codes.append(code)
        if self._abort_code is not None:
            code = self._abort_code
        out = self._connection_lost()
        decision = after_close(code, refreshable_token=self.refreshable_token, closed_by_app=self._closed_by_app)
        if decision.next is Next.STOP:
            error: Exception
            if code == OPERATOR:
                error = DisconnectedByOperatorError(decision.reason)
            else:
                error = AuthenticationError(decision.reason)
            return out + self._stop(error)
        self.machine.to(ClientState.DISCONNECTED)
        return [*out, ReconnectIn(self.backoff.next_delay(limited=decision.limited))]

    def _connection_lost(self) -> list[Output]:
        out: list[Output] = []
        self._auth_deadline = None
        self.refresh.forget()
        self.liveness.paused = False
        self.subs.connection_lost()
        for rid, req in self.requests:
            if not req.sent:
                continue
            self.requests.pop(rid)
            if req.kind is Kind.UNSUBSCRIBE:
                out.append(Resolve(rid, None))  # the gateway forgets every subscription with the socket
            elif req.kind not in (Kind.SUBSCRIBE, Kind.ROSTER):
                out.append(Reject(rid, ConnectionLostError("the connection closed before the answer")))
        return out

    def _stop(self, error: Exception | None) -> list[Output]:
        self.error = error
        self.machine.to(ClientState.CLOSED)
        out: list[Output] = []
        failure = error or ClientClosedError("the client is closed")
        for rid, _ in self.requests.clear():
            out.append(Reject(rid, failure))
        for entry in self.subs:
            if entry.waiter is not None:
                out.append(Reject(entry.waiter, failure))
            out += self.subs.end(entry.pattern, error)
        out.append(Stopped(error))
        return out

    # frames

    def on_frame(self, text: str | bytes, now: float) -> list[Output]:
        if self.state not in (ClientState.CONNECTING, ClientState.CONNECTED):
            return []
        self.liveness.heard(now)
        try:
            frame = frames.decode(text)
        except frames.FrameError as exc:
            return [Notice("bad_frame", str(exc))]
        if frame is None:
            return []
        if isinstance(frame, frames.MessageFrame):
            return self.subs.route(frame)
        if isinstance(frame, frames.AuthSuccess):
            return self._auth_success(frame, now)
        if isinstance(frame, frames.Subscribed):
            return self._subscribed(frame, now)
        if isinstance(frame, frames.Unsubscribed):
            return self._unsubscribed(frame)
        if isinstance(frame, frames.Published):
            req = self.requests.pop(frame.id)
            return [Resolve(frame.id, PublishResult(frame.topic, frame.offset))] if req is not None else []
        if isinstance(frame, frames.PresenceAnswer):
            req = self.requests.pop(frame.id)
            if req is None:
                return []
            if req.kind is Kind.ROSTER:
                return self._roster(req.pattern, frame)
            count = frame.count if frame.count is not None else len(frame.users or [])
            return [Resolve(frame.id, PresenceSnapshot(frame.topic, count, frame.users))]
        if isinstance(frame, frames.Join | frames.Leave):
            return self.subs.presence(frame)
        if isinstance(frame, frames.ErrorFrame):
            return self._error(frame, now)
        return []  # pong: only proves the socket alive

    def _auth_success(self, frame: frames.AuthSuccess, now: float) -> list[Output]:
        self.user_id = frame.user_id
        self.refresh.accepted()
        if self.state is ClientState.CONNECTED:
            return []
        self.machine.to(ClientState.CONNECTED)
        self._auth_deadline = None
        self.backoff.reset()
        out: list[Output] = []
        for entry in self.subs:
            out += self._send_subscribe(entry, now, reconnect=True)
        for _rid, req in self.requests:
            if not req.sent:
                req.sent = True
                out.append(Send(frames.encode(req.frame)))
        return out

    def _subscribed(self, frame: frames.Subscribed, now: float) -> list[Output]:
        req = self.requests.pop(frame.id)
        entry = self.subs.get(frame.topic)
        if entry is None or req is None or req.kind is not Kind.SUBSCRIBE:
            return []
        out = self.subs.subscribed(entry, frame.recovered)
        if entry.waiter is not None:
            out.append(Resolve(entry.waiter, None))
            entry.waiter = None
        if entry.presence:
            # join/leave frames only tell what changes from now on: ask who is there already.
            rid = self.requests.new_id()
            query = frames.PresenceQuery(topic=entry.pattern, id=rid)
            self.requests.add(rid, Request(Kind.ROSTER, query, now + self.timing.request_timeout, True, entry.pattern))
            out.append(Send(frames.encode(query)))
        return out

    def _roster(self, pattern: str, frame: frames.PresenceAnswer) -> list[Output]:
        entry = self.subs.get(pattern)
        if entry is not None and frame.users is not None:
            entry.members = set(frame.users)
        return []

    def _unsubscribed(self, frame: frames.Unsubscribed) -> list[Output]:
        req = self.requests.pop(frame.id)
        if req is not None:
            return [Resolve(frame.id, None)]
        entry = self.subs.get(frame.topic)
        if entry is not None and entry.state is SubscriptionState.SUBSCRIBED:
            # Unprompted: the gateway ended it (e.g. the user left the channel).
            ended = SubscriptionEndedError(f"the gateway ended the subscription to {frame.topic!r}")
            return self.subs.end(frame.topic, ended)
        return []

    def _error(self, frame: frames.ErrorFrame, now: float) -> list[Output]:
        req = self.requests.pop(frame.id)
        if req is None:
            if self.refresh.awaiting is not None and frame.code in ("unauthorized", "forbidden"):
                # Likely the refresh refused, but it may be the old token's expiry notice
                # racing the refresh: a refresh that went through answers within moments.
                self.refresh.awaiting = min(self.refresh.awaiting, now + REFUSAL_WAIT)
                return [Notice(frame.code, frame.message)]
            if frame.code == "unauthorized" and self.state is ClientState.CONNECTED and self.refreshable_token:
                # The session expired before a refresh went through: refresh at once.
                self.refresh.due = now
            return [Notice(frame.code, frame.message)]
        if req.kind is Kind.ROSTER:
            return []  # a gateway without presence: join/leave frames will not come either
        error = ServerError(frame.code, frame.message, frame.id)
        if req.kind is not Kind.SUBSCRIBE:
            return [Reject(frame.id, error)]
        entry = self.subs.get(req.pattern)
        if entry is None:
            return []
        if frame.code in RETRYABLE and entry.waiter is None:
            entry.retry_at = now + self.timing.resubscribe_delay
            return [Notice(frame.code, frame.message)]
        out: list[Output] = []
        if entry.waiter is not None:
            out.append(Reject(entry.waiter, error))
            entry.waiter = None
        return out + self.subs.end(req.pattern, error)

    # timers

    def on_timer(self, now: float) -> list[Output]:
        out: list[Output] = []
        # While reading is paused the answer to a subscribe may be waiting unread behind
        # a replay: only a publish or presence query (the app is waiting) times out then.
        for rid, req in self.requests.expired(now, subscribes=not self.liveness.paused):
            what = req.kind.value
            if req.kind is Kind.SUBSCRIBE:
                entry = self.subs.get(req.pattern)
                if entry is None:
                    continue  # unsubscribed meanwhile
                if entry.waiter is not None:
                    out.append(Reject(entry.waiter, RequestTimeoutError(f"no answer to {what} {req.pattern!r}")))
                    entry.waiter = None
                    out += self.subs.end(req.pattern, RequestTimeoutError("subscribe was not answered"))
                    out.append(Send(frames.encode(frames.Unsubscribe(topic=req.pattern))))
                else:
                    out.append(self._abort(f"no answer to {what} {req.pattern!r}"))
            elif req.kind is not Kind.ROSTER:
                out.append(Reject(rid, RequestTimeoutError(f"no answer to {what} within the request timeout")))
        if self.state is ClientState.CONNECTING:
            if self._auth_deadline is not None and now >= self._auth_deadline:
                self._auth_deadline = None
                out.append(self._abort("auth was not answered"))
            return out
        if self.state is not ClientState.CONNECTED:
            return out
        step = self.liveness.tick(now)
        if step is Step.DEAD:
            out.append(self._abort("the gateway stopped answering (no pong)"))
            return out
        if step is Step.PING:
            out.append(Send(frames.encode(frames.Ping())))
        if self.refresh.awaiting is not None:
            if now >= self.refresh.awaiting and not self.liveness.paused:
                self.refresh.awaiting = None
                out.append(self._abort("token refresh was not answered"))
                return out
        elif self.refresh.due is not None and now >= self.refresh.due:
            self.refresh.due = None
            self.refresh.awaiting = now + self.timing.auth_timeout
            out.append(FetchToken())
        for entry in self.subs:
            if entry.retry_at is not None and now >= entry.retry_at:
                entry.retry_at = None
                out += self._send_subscribe(entry, now, reconnect=True)
        return out

    # the app's calls

    def subscribe(
        self, pattern: str, presence: bool, now: float, since: Position | None = None
    ) -> tuple[Entry, int, list[Output]]:
        """Start a subscription (from ``since`` if given); the request id resolves on its first ``subscribed``."""
        if self.state is ClientState.CLOSED:
            raise self.error or ClientClosedError("the client is closed")
        if pattern in self.subs:
            raise ValueError(f"already subscribed to {pattern!r}; one subscription per pattern")
        if presence and not is_exact(pattern):
            raise ValueError("presence is only available on exact topics (no wildcards)")
        entry = Entry(pattern, presence)
        if since is not None:
            entry.cursor.epoch, entry.cursor.last = since.epoch, since.offset
        entry.waiter = self.requests.new_id()
        entry.machine.to(SubscriptionState.SUBSCRIBING)
        self.subs.add(entry)
        connected = self.state is ClientState.CONNECTED
        out = self._send_subscribe(entry, now, reconnect=since is not None) if connected else []
        return entry, entry.waiter, out

    def _send_subscribe(self, entry: Entry, now: float, *, reconnect: bool) -> list[Output]:
        point = self.subs.resume_point(entry, reconnect=reconnect)
        rid = self.requests.new_id()
        since = frames.Since(point.since.offset, point.since.epoch) if point is not None else UNSET
        frame = frames.Subscribe(topic=entry.pattern, id=rid, since=since, presence=True if entry.presence else UNSET)
        deadline = now + self.timing.request_timeout
        self.requests.add(rid, Request(Kind.SUBSCRIBE, frame, deadline, sent=True, pattern=entry.pattern))
        return [Send(frames.encode(frame))]

    def unsubscribe(self, pattern: str, now: float) -> tuple[int, list[Output]]:
        """End a subscription; the request id resolves on ``unsubscribed`` (at once when offline)."""
        rid = self.requests.new_id()
        entry = self.subs.get(pattern)
        if entry is None:
            return rid, [Resolve(rid, None)]
        out: list[Output] = []
        if entry.waiter is not None:
            out.append(Reject(entry.waiter, SubscriptionEndedError("unsubscribed before it was confirmed")))
            entry.waiter = None
        out += self.subs.end(pattern, None)
        if self.state is not ClientState.CONNECTED:
            return rid, [*out, Resolve(rid, None)]
        frame = frames.Unsubscribe(topic=pattern, id=rid)
        self.requests.add(rid, Request(Kind.UNSUBSCRIBE, frame, now + self.timing.request_timeout, True, pattern))
        return rid, [*out, Send(frames.encode(frame))]

    def publish(self, topic: str, data: Any, now: float) -> tuple[int, list[Output]]:
        """Publish; the id resolves with a :class:`PublishResult` (queued while reconnecting)."""
        rid = self.requests.new_id()
        return rid, self._request(rid, Kind.PUBLISH, frames.Publish(topic=topic, data=data, id=rid), now)

    def presence(self, topic: str, now: float) -> tuple[int, list[Output]]:
        """Ask who is subscribed to ``topic``; the id resolves with a :class:`PresenceSnapshot`."""
        rid = self.requests.new_id()
        return rid, self._request(rid, Kind.PRESENCE, frames.PresenceQuery(topic=topic, id=rid), now)

    def _request(self, rid: int, kind: Kind, frame: frames.ClientFrame, now: float) -> list[Output]:
        if self.state is ClientState.CLOSED:
            raise self.error or ClientClosedError("the client is closed")
        text = frames.encode(frame)  # data that is not JSON fails here, before anything is kept
        connected = self.state is ClientState.CONNECTED
        self.requests.add(rid, Request(kind, frame, now + self.timing.request_timeout, sent=connected))
        return [Send(text)] if connected else []
