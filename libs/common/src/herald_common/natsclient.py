"""nats-py's client with protocol and header parsers that cost what they should.

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
hand-over cost about as much as handling them. Its protocol parser
(:mod:`herald_common.natsparser`) calls the handler without a coroutine per message.

And its ``flush`` means what nats-py documents: once it returns, the server has everything
sent before it, subscriptions included. nats-py 2.16 writes the flush's PING straight to
the socket while the commands before it (a ``SUB``) still wait for its flusher task, so the
server could answer the PING before it had read the ``SUB``: a request sent from another
connection at once found nobody subscribed. Here the PING goes out behind them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from nats.aio.client import PING_PROTO, Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from herald_common.natsparser import HeraldParser

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
    """A nats-py :class:`~nats.aio.client.Client` with a faster protocol parser
    (:class:`~herald_common.natsparser.HeraldParser`) and header parser (same results),
    :class:`Inline` subscriptions, and a ``flush`` that covers what was sent before it."""

    def __init__(self) -> None:
        super().__init__()
        self._ps = HeraldParser(self)
        #: error callbacks of inline handlers, running
        self._reports: set[asyncio.Future[None]] = set()

    async def _send_ping(self, future: asyncio.Future[bool] | None = None) -> None:
        """Send a PING behind whatever is pending, so its PONG covers all of it."""
        if future is None:
            future = asyncio.get_running_loop().create_future()
        self._pongs.append(future)
        await self._send_command(PING_PROTO)
        await self._flush_pending()

    def _deliver_inline(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> bool:
        """Hand a message to its :class:`Inline` handler at once, if it has one and its
        headers parse without a wait; False: the parser awaits ``_process_msg`` instead."""
        sub = self._subs.get(sid)
        if sub is None:
            return False
        inline = sub._cb
        if not isinstance(inline, Inline):
            return False
        if not headers:
            parsed = None
        elif headers.startswith(_PLAIN_HEAD):
            parsed = plain_headers(headers)
        else:
            return False
        self._hand_over(sub, inline, subject, parsed, data)
        return True

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
        sub = self._subs.get(sid)
        inline = sub._cb if sub is not None else None
        if not isinstance(inline, Inline) or sub is None:
            await super()._process_msg(sid, subject, reply, data, headers)
            return
        parsed = await self._process_headers(headers) if headers else None
        self._hand_over(sub, inline, subject, parsed, data)

    def _hand_over(
        self, sub: Subscription, inline: Inline, subject: bytes, headers: dict[str, str] | None, data: bytes
    ) -> None:
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        sub._received += 1
        try:
            inline.handle(subject.decode(), headers, data)
        except Exception as exc:
            # nats-py awaits the error callback; here it runs as a task of its own.
            report = asyncio.ensure_future(self._error_cb(exc))
            self._reports.add(report)
            report.add_done_callback(self._reports.discard)

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
