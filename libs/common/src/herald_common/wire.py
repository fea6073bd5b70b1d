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
from herald_common.jsondepth import check_json_depth

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
    """``presence``: also receive ``join``/``leave`` frames (exact topics only)."""

    topic: str
    id: Any | UnsetType = UNSET
    since: Since | None = None
    presence: bool = False


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


class PresenceQuery(msgspec.Struct, tag="presence", tag_field="type", frozen=True, omit_defaults=True):
    """Who is subscribed to the exact ``topic`` now (on any gateway)."""

    topic: str
    id: Any | UnsetType = UNSET


ClientFrame = Auth | Subscribe | Unsubscribe | Publish | Ping | PresenceQuery


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
    """A delivered message; ``data`` is kept as raw JSON so it is never decoded twice.

    ``publisher`` is the ``sub`` of the socket that published it (absent for messages
    from the api).
    """

    topic: str
    data: Raw
    offset: int
    epoch: str
    event: str | UnsetType = UNSET
    publisher: str | UnsetType = UNSET


class Published(msgspec.Struct, tag="published", tag_field="type", frozen=True, omit_defaults=True):
    """A socket publish was stored: ``offset`` is its stream sequence."""

    topic: str
    offset: int
    id: Any | UnsetType = UNSET


class Error(msgspec.Struct, tag="error", tag_field="type", frozen=True, omit_defaults=True):
    code: str
    message: str
    id: Any | UnsetType = UNSET


class Pong(msgspec.Struct, tag="pong", tag_field="type", frozen=True):
    pass


class Join(msgspec.Struct, tag="join", tag_field="type", rename="camel", frozen=True):
    """A user's first socket subscribed to ``topic`` (on any gateway)."""

    topic: str
    user_id: str


class Leave(msgspec.Struct, tag="leave", tag_field="type", rename="camel", frozen=True):
    """A user's last socket left ``topic`` (on every gateway), after the grace period."""

    topic: str
    user_id: str


class Presence(msgspec.Struct, tag="presence", tag_field="type", frozen=True, omit_defaults=True):
    """The answer to a ``presence`` query: ``users`` (sorted) is left out above the cap, ``count`` never is."""

    topic: str
    count: int
    users: list[str] | UnsetType = UNSET
    id: Any | UnsetType = UNSET


ServerFrame = AuthSuccess | Subscribed | Unsubscribed | Message | Published | Error | Pong | Join | Leave | Presence


class Publication(msgspec.Struct, frozen=True, omit_defaults=True):
    """The body of a message on a topic subject (what the bridge and publishers send).

    ``data`` stays raw: a gateway re-emits it byte for byte inside the ``message`` frame.
    ``publisher`` is set by a gateway on what one of its sockets published (the token's
    ``sub``), so a raw socket publication always says who sent it.
    """

    data: Raw
    event: str | UnsetType = UNSET
    id: str | UnsetType = UNSET
    publisher: str | UnsetType = UNSET


_client_decoder = msgspec.json.Decoder(ClientFrame)
_publication_decoder = msgspec.json.Decoder(Publication)
_encoder = msgspec.json.Encoder()


def decode_client_frame(data: bytes | str) -> ClientFrame:
    """Decode one client frame or raise ``HeraldError(bad_request)`` saying what is wrong.

    A frame nested more than :data:`~herald_common.jsondepth.MAX_JSON_DEPTH` levels deep
    is refused before it is decoded.
    """
    check_json_depth(data)
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
    """Decode a topic message body; raises ``msgspec.DecodeError`` (a ``ValueError``) on garbage.

    That includes a body nested too deeply for the decoder (stored before any limit
    applied, or published around one), so one such message is dropped like any other
    garbage instead of raising ``RecursionError`` into whoever reads the stream.
    """
    try:
        return _publication_decoder.decode(data)
    except RecursionError:
        raise msgspec.DecodeError("publication is nested too deeply to decode") from None


def encode(frame: ServerFrame | Publication) -> bytes:
    return _encoder.encode(frame)


def encode_text(frame: ServerFrame) -> str:
    """A server frame as ``str`` for a WebSocket text frame."""
    return _encoder.encode(frame).decode()
