"""Herald's Python client: subscribe, publish, reconnect and resume over WebSocket.

>>> client = Client("ws://127.0.0.1:8080/ws", token=token)
>>> await client.connect()
>>> sub = await client.subscribe("news.**")
>>> async for message in sub:
...     print(message.topic, message.data)
"""

from herald_client.backoff import Backoff
from herald_client.client import Client
from herald_client.errors import (
    AuthenticationError,
    ClientClosedError,
    ConnectionLostError,
    ConnectTimeoutError,
    DisconnectedByOperatorError,
    HeraldClientError,
    IllegalTransitionError,
    RequestTimeoutError,
    ServerError,
    SubscriptionEndedError,
)
from herald_client.messages import (
    Gap,
    GapReason,
    Message,
    PresenceEvent,
    PresenceKind,
    PresenceSnapshot,
    PublishResult,
)
from herald_client.resume import Position
from herald_client.states import ClientState, SubscriptionState
from herald_client.subscription import Subscription

__all__ = [
    "AuthenticationError",
    "Backoff",
    "Client",
    "ClientClosedError",
    "ClientState",
    "ConnectTimeoutError",
    "ConnectionLostError",
    "DisconnectedByOperatorError",
    "Gap",
    "GapReason",
    "HeraldClientError",
    "IllegalTransitionError",
    "Message",
    "Position",
    "PresenceEvent",
    "PresenceKind",
    "PresenceSnapshot",
    "PublishResult",
    "RequestTimeoutError",
    "ServerError",
    "Subscription",
    "SubscriptionEndedError",
    "SubscriptionState",
]
