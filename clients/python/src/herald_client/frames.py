"""Wire frames (msgspec Structs tagged on ``type``), one reused encoder and decoder.

Only the client's own copy of the protocol: this package does not depend on Herald's
services. Unknown fields are ignored and an unknown frame ``type`` decodes to None, so
the client keeps working with newer gateways.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType


class Since(msgspec.Struct, frozen=True):
    offset: int
    epoch: str


class Auth(msgspec.Struct, tag="auth", tag_field="type", frozen=True):
    token: str


class Subscribe(msgspec.Struct, tag="subscribe", tag_field="type", frozen=True, omit_defaults=True):
    topic: str
    id: int | UnsetType = UNSET
    since: Since | UnsetType = UNSET
    presence: bool | UnsetType = UNSET


class Unsubscribe(msgspec.Struct, tag="unsubscribe", tag_field="type", frozen=True, omit_defaults=True):
    topic: str
    id: int | UnsetType = UNSET


class Publish(msgspec.Struct, tag="message", tag_field="type", frozen=True, omit_defaults=True):
    topic: str
    data: Any
    id: int | UnsetType = UNSET


class PresenceQuery(msgspec.Struct, tag="presence", tag_field="type", frozen=True, omit_defaults=True):
    topic: str
    id: int | UnsetType = UNSET


class Ping(msgspec.Struct, tag="ping", tag_field="type", frozen=True):
    pass


ClientFrame = Auth | Subscribe | Unsubscribe | Publish | PresenceQuery | Ping


class AuthSuccess(msgspec.Struct, tag="auth_success", tag_field="type", rename="camel", frozen=True):
    user_id: str


class Subscribed(msgspec.Struct, tag="subscribed", tag_field="type", frozen=True):
    topic: str
    id: Any = None
    recovered: bool | None = None


class Unsubscribed(msgspec.Struct, tag="unsubscribed", tag_field="type", frozen=True):
    topic: str
    id: Any = None


class MessageFrame(msgspec.Struct, tag="message", tag_field="type", frozen=True):
    topic: str
    offset: int
    epoch: str
    data: Any = None
    event: str | None = None
    publisher: str | None = None


class Published(msgspec.Struct, tag="published", tag_field="type", frozen=True):
    topic: str
    offset: int
    id: Any = None


class Join(msgspec.Struct, tag="join", tag_field="type", rename="camel", frozen=True):
    topic: str
    user_id: str


class Leave(msgspec.Struct, tag="leave", tag_field="type", rename="camel", frozen=True):
    topic: str
    user_id: str


class PresenceAnswer(msgspec.Struct, tag="presence", tag_field="type", frozen=True):
    """``users`` may be left out above the gateway's cap; ``count`` is always given by
    gateways that send it."""

    topic: str
    users: list[str] | None = None
    count: int | None = None
    id: Any = None


class ErrorFrame(msgspec.Struct, tag="error", tag_field="type", frozen=True):
    code: str
    message: str = ""
    id: Any = None


class Pong(msgspec.Struct, tag="pong", tag_field="type", frozen=True):
    pass


ServerFrame = (
    AuthSuccess
    | Subscribed
    | Unsubscribed
    | MessageFrame
    | Published
    | Join
    | Leave
    | PresenceAnswer
    | ErrorFrame
    | Pong
)

KNOWN_TYPES = frozenset(
    {"auth_success", "subscribed", "unsubscribed", "message", "published", "join", "leave", "presence", "error", "pong"}
)


class _TypeProbe(msgspec.Struct):
    type: str = ""


_server_decoder = msgspec.json.Decoder(ServerFrame)
_probe_decoder = msgspec.json.Decoder(_TypeProbe)
_encoder = msgspec.json.Encoder()


class FrameError(ValueError):
    """A frame from the gateway that is not valid JSON or has a known type but a bad shape."""


def encode(frame: ClientFrame) -> str:
    return _encoder.encode(frame).decode()


def decode(data: str | bytes) -> ServerFrame | None:
    """Decode one gateway frame; None for a frame ``type`` this client does not know."""
    try:
        return _server_decoder.decode(data)
    except msgspec.ValidationError as exc:
        try:
            kind = _probe_decoder.decode(data).type
        except msgspec.MsgspecError:
            raise FrameError(f"invalid frame: {exc}") from None
        if kind not in KNOWN_TYPES:
            return None
        raise FrameError(f"invalid {kind!r} frame: {exc}") from None
    except msgspec.DecodeError as exc:
        raise FrameError(f"frame is not valid JSON: {exc}") from None
