"""WebSocket wire types (msgspec Structs, a tagged union on ``type``).

Client frames are decoded by one reused decoder (:func:`decode_client_frame`); every way a
frame can be wrong becomes a :class:`~herald_common.errors.HeraldError` with
``bad_request``, so callers have exactly one failure to handle. Unknown fields are ignored
so that newer clients can talk to older gateways.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, Raw, UnsetType

from herald_common.errors import ErrorCode, HeraldError

#: Stream sequences are unsigned 64-bit.
MAX_OFFSET = 2**64 - 1


class Since(msgspec.Struct, frozen=True):
    """Position a client last saw on a topic: replay what came after it."""

    #: A stream sequence: unsigned 64-bit. msgspec cannot express ``le=2**64-1`` in
    #: ``Meta`` (its bounds must fit in an int64), so the upper bound is checked in
    #: ``__post_init__``, which decoding reports as a validation error.
    offset: Annotated[int, Meta(ge=0)]
    epoch: str

    def __post_init__(self) -> None:
        if self.offset > MAX_OFFSET:
            raise ValueError("`offset` must be at most 2**64-1")


class Auth(msgspec.Struct, tag="auth", tag_field="type", frozen=True):
    token: str


class Subscribe(msgspec.Struct, tag="subscribe", tag_field="type", frozen=True, omit_defaults=True):
    topic: str
    id: Any | UnsetType = UNSET
    since: Since | None = None


class Unsubscribe(msgspec.Struct, tag="unsubscribe", tag_field="type", frozen=True, omit_defaults=True):
    topic: str
    id: Any | UnsetType = UNSET


class Publish(msgspec.Struct, tag="message", tag_field="type", frozen=True, omit_defaults=True):
    """A client publishing to a topic (needs a ``publish`` grant)."""

    topic: str
    data: Raw
    id: Any | UnsetType = UNSET


class Ping(msgspec.Struct, tag="ping", tag_field="type", frozen=True):
    pass


ClientFrame = Auth | Subscribe | Unsubscribe | Publish | Ping


class AuthSuccess(msgspec.Struct, tag="auth_success", tag_field="type", rename="camel", frozen=True):
    user_id: str


class Subscribed(msgspec.Struct, tag="subscribed", tag_field="type", frozen=True, omit_defaults=True):
    topic: str
    id: Any | UnsetType = UNSET
    recovered: bool | UnsetType = UNSET


class Unsubscribed(msgspec.Struct, tag="unsubscribed", tag_field="type", frozen=True, omit_defaults=True):
    topic: str
    id: Any | UnsetType = UNSET


class Message(msgspec.Struct, tag="message", tag_field="type", frozen=True, omit_defaults=True):
    """A delivered message; ``data`` is kept as raw JSON so it is never decoded twice."""

    topic: str
    data: Raw
    offset: int
    epoch: str
    event: str | UnsetType = UNSET


class Error(msgspec.Struct, tag="error", tag_field="type", frozen=True, omit_defaults=True):
    code: str
    message: str
    id: Any | UnsetType = UNSET


class Pong(msgspec.Struct, tag="pong", tag_field="type", frozen=True):
    pass


ServerFrame = AuthSuccess | Subscribed | Unsubscribed | Message | Error | Pong


class Publication(msgspec.Struct, frozen=True, omit_defaults=True):
    """The body of a message on a topic subject (what the bridge and publishers send).

    ``data`` stays raw: a gateway re-emits it byte for byte inside the ``message`` frame.
    """

    data: Raw
    event: str | UnsetType = UNSET
    id: str | UnsetType = UNSET
    #: The ``sub`` of whoever published it, when the writer records one.
    publisher: str | UnsetType = UNSET


_client_decoder = msgspec.json.Decoder(ClientFrame)
_publication_decoder = msgspec.json.Decoder(Publication)
_encoder = msgspec.json.Encoder()


def decode_client_frame(data: bytes | str) -> ClientFrame:
    """Decode one client frame or raise ``HeraldError(bad_request)`` saying what is wrong."""
    try:
        return _client_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise HeraldError(ErrorCode.BAD_REQUEST, f"invalid frame: {exc}") from None
    except msgspec.DecodeError as exc:
        raise HeraldError(ErrorCode.BAD_REQUEST, f"frame is not valid JSON: {exc}") from None
    except RecursionError:
        raise HeraldError(ErrorCode.BAD_REQUEST, "frame is nested too deeply") from None
    except (UnicodeError, ValueError) as exc:
        raise HeraldError(ErrorCode.BAD_REQUEST, f"frame is not valid UTF-8 JSON: {exc}") from None


def decode_publication(data: bytes) -> Publication:
    """Decode a topic message body; raises ``msgspec`` errors on garbage."""
    return _publication_decoder.decode(data)


def encode(frame: ServerFrame | Publication) -> bytes:
    return _encoder.encode(frame)


def encode_text(frame: ServerFrame) -> str:
    """A server frame as ``str`` for a WebSocket text frame."""
    return _encoder.encode(frame).decode()
