"""nats-py's client with a header parser that costs what it should.

Every message a gateway receives carries eight or so headers (the stream's ``Nats-Stream``,
``Nats-Sequence``, ``Nats-Time-Stamp``, ``Nats-Subject``, ``Nats-Last-Sequence`` and the
publisher's ``Nats-Msg-Id`` and batch headers). nats-py 2.16 parses them line by line, but
checks each name for inner whitespace with a generator over its characters; at tens of
thousands of messages a second that check was the gateway's largest single cost, more
than the fan-out itself. :class:`HeraldNatsClient` parses the same way with the check done
by ``str.split`` (the same definition of whitespace, ``str.isspace``), and every Herald
service connects with it (:mod:`herald_common.natsconn`).

It also hands the messages of an :class:`Inline` subscription straight to their handler as
the read loop parses them. nats-py puts every message of a callback subscription in the
subscription's queue, wraps it in a ``Msg`` and switches to the subscription's task to await
the callback; for the gateway's live feeds, tens of thousands of messages a second, that
hand-over cost about as much as handling them.
"""

from __future__ import annotations

from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg

#: What an inline handler is given per message: subject, headers (None without any), payload.
InlineHandle = Callable[[str, "dict[str, str] | None", bytes], None]


class Inline:
    """A subscription callback run inline: pass it as ``cb`` to ``subscribe``.

    :class:`HeraldNatsClient` calls ``handle`` synchronously from its read loop, in the order
    the messages arrive, and reports an exception it raises to the error callback, as nats-py
    does for callbacks. ``handle`` must not block; what needs to wait it hands to a task of
    its own (keeping the order itself). Any other nats-py client awaits this object like any
    callback, through the subscription's queue, with the same result.
    """

    __slots__ = ("func", "handle")

    def __init__(self, handle: InlineHandle) -> None:
        self.handle = handle
        #: nats-py accepts a callback that is a coroutine function or has one as ``func``
        #: (as a ``functools.partial`` of one has).
        self.func = self._forward

    async def __call__(self, msg: Msg) -> None:
        await self._forward(msg)

    async def _forward(self, msg: Msg) -> None:
        self.handle(msg.subject, msg.headers, msg.data)


_CRLF = b"\r\n"
#: the head line of a header block without an inline status (``NATS/1.0 503`` has one)
_PLAIN_HEAD = b"NATS/1.0\r\n"
_PLAIN_HEAD_SIZE = len(_PLAIN_HEAD)
#: Header names seen so far, raw → as parsed (None: a name nats-py skips). Messages carry
#: the same few names over and over; the cache is bounded against a peer that varies them.
_NAMES: dict[bytes, str | None] = {}
_NAMES_MAX = 1024


def _header_name(raw: bytes) -> str | None:
    """A header name as nats-py keeps it (stripped ASCII without inner whitespace), else None."""
    try:
        key = raw.strip().decode("ascii")
    except UnicodeDecodeError:
        return None
    if key and key.split() != [key]:  # whitespace in the name, as str.isspace has it
        return None
    return key


def plain_headers(block: bytes) -> dict[str, str] | None:
    """What nats-py's ``_process_headers`` makes of a block with no inline status (one that
    starts ``NATS/1.0`` and a line end), without a coroutine per message."""
    if len(block) <= _PLAIN_HEAD_SIZE:
        return None
    return HeraldNatsClient._parse_header_lines(block[_PLAIN_HEAD_SIZE:]) or None


class HeraldNatsClient(Client):
    """A nats-py :class:`~nats.aio.client.Client` with a faster header parser (same result)
    and :class:`Inline` subscriptions."""

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
        sub = self._subs.get(sid)
        inline = sub._cb if sub is not None else None
        if not isinstance(inline, Inline) or sub is None:
            await super()._process_msg(sid, subject, reply, data, headers)
            return
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        sub._received += 1
        if not headers:
            parsed = None
        elif headers.startswith(_PLAIN_HEAD):
            parsed = plain_headers(headers)
        else:
            parsed = await self._process_headers(headers)
        try:
            inline.handle(subject.decode(), parsed, data)
        except Exception as exc:
            await self._error_cb(exc)

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        """The headers of a message block (``Name: Value`` per line) as nats-py returns them:
        names split at the first ``:`` and stripped; a line with no ``:``, a name that is
        not ASCII or that holds whitespace is skipped; values stripped and decoded as UTF-8
        with replacement characters; a later repeat of a name wins."""
        out: dict[str, str] = {}
        names = _NAMES
        for line in raw.split(_CRLF):
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            try:
                key = names[name]
            except KeyError:
                key = _header_name(name)
                if len(names) < _NAMES_MAX:
                    names[name] = key
            if key is None:
                continue
            out[key] = value.strip().decode("utf-8", "replace")
        return out
