"""The exceptions the client raises; every one is a :class:`HeraldClientError`."""

from __future__ import annotations

from typing import Any


class HeraldClientError(Exception):
    """Base class of every error raised by ``herald_client``."""


class IllegalTransitionError(HeraldClientError, RuntimeError):
    """A state change that the client's or a subscription's state machine does not allow."""


class ServerError(HeraldClientError):
    """The gateway answered a request with an ``error`` frame (``code`` as in the protocol)."""

    def __init__(self, code: str, message: str, frame_id: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.frame_id = frame_id


class RequestTimeoutError(HeraldClientError, TimeoutError):
    """A request (publish, subscribe, presence) got no answer in time."""


class ConnectionLostError(HeraldClientError):
    """The socket closed while a request was in flight; whether it took effect is unknown."""


class ClientClosedError(HeraldClientError):
    """The client is closed: by :meth:`Client.close`, or for good after a final close code."""


class AuthenticationError(ClientClosedError):
    """The gateway refused the token (close 4001) and no fresh one can be obtained."""


class DisconnectedByOperatorError(ClientClosedError):
    """An operator disconnected this user (close 4003); the client does not reconnect."""


class ConnectTimeoutError(HeraldClientError, TimeoutError):
    """:meth:`Client.connect` could not reach an authenticated connection in time."""


class SubscriptionEndedError(HeraldClientError):
    """The subscription ended without the app asking (e.g. the gateway ended it, or it timed out)."""
