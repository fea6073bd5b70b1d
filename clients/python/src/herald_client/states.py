"""The client's and a subscription's life cycles: Enums with guarded transitions.

An illegal step raises :class:`~herald_client.errors.IllegalTransitionError`; it never
passes silently. Listeners hear every change as ``(old, new)``.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from herald_client.errors import IllegalTransitionError


class ClientState(enum.Enum):
    #: Not connected: before :meth:`Client.connect`, or waiting to reconnect.
    DISCONNECTED = "disconnected"
    #: Opening the socket and authenticating.
    CONNECTING = "connecting"
    #: Authenticated (``auth_success`` received); subscriptions are (re)sent.
    CONNECTED = "connected"
    #: Closed for good: by the app, or after a close code that forbids reconnecting.
    CLOSED = "closed"


class SubscriptionState(enum.Enum):
    #: Not held: not yet sent, or ended (by the app, the server, or the client closing).
    UNSUBSCRIBED = "unsubscribed"
    #: Wanted and sent (or waiting for a connection to be sent); no ``subscribed`` yet.
    SUBSCRIBING = "subscribing"
    #: The gateway answered ``subscribed`` on the current connection.
    SUBSCRIBED = "subscribed"


CLIENT_TRANSITIONS: Mapping[ClientState, frozenset[ClientState]] = {
    ClientState.DISCONNECTED: frozenset({ClientState.CONNECTING, ClientState.CLOSED}),
    ClientState.CONNECTING: frozenset({ClientState.CONNECTED, ClientState.DISCONNECTED, ClientState.CLOSED}),
    ClientState.CONNECTED: frozenset({ClientState.DISCONNECTED, ClientState.CLOSED}),
    ClientState.CLOSED: frozenset(),
}

SUBSCRIPTION_TRANSITIONS: Mapping[SubscriptionState, frozenset[SubscriptionState]] = {
    SubscriptionState.UNSUBSCRIBED: frozenset({SubscriptionState.SUBSCRIBING}),
    SubscriptionState.SUBSCRIBING: frozenset({SubscriptionState.SUBSCRIBED, SubscriptionState.UNSUBSCRIBED}),
    SubscriptionState.SUBSCRIBED: frozenset({SubscriptionState.SUBSCRIBING, SubscriptionState.UNSUBSCRIBED}),
}

log = logging.getLogger("herald_client")

S = TypeVar("S", bound=enum.Enum)

Listener = Callable[[S, S], None]


class StateMachine(Generic[S]):
    """A current state, the allowed steps from each state, and listeners of every change."""

    __slots__ = ("_listeners", "_state", "_transitions")

    def __init__(self, initial: S, transitions: Mapping[S, frozenset[S]]) -> None:
        self._state = initial
        self._transitions = transitions
        self._listeners: list[Callable[[S, S], None]] = []

    @property
    def state(self) -> S:
        return self._state

    def can(self, new: S) -> bool:
        return new in self._transitions[self._state]

    def to(self, new: S) -> None:
        """Move to ``new``; raises :class:`IllegalTransitionError` if that step is not allowed."""
        old = self._state
        if new not in self._transitions[old]:
            raise IllegalTransitionError(f"{old.value} -> {new.value}")
        self._state = new
        for listener in list(self._listeners):
            try:
                listener(old, new)
            except Exception:  # an application's callback must not break the life cycle
                log.exception("state listener failed")

    def listen(self, listener: Callable[[S, S], None]) -> Callable[[], None]:
        """Call ``listener(old, new)`` on every change; returns a function that stops it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove
