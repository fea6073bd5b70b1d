"""Herald's protocol parser dispatches what nats-py's does, however the bytes are split."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.errors import ProtocolError
from nats.protocol.parser import Parser

from herald_common.natsparser import HeraldParser


class _Recorder:
    """What a client sees of the parser: the calls, in order. Messages of ``inline_sids`` are
    taken by ``_deliver_inline`` (Herald's parser only), the rest go to ``_process_msg``."""

    def __init__(self, inline_sids: frozenset[int] = frozenset()) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._inline_sids = inline_sids

    def _deliver_inline(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> bool:
        if sid not in self._inline_sids:
            return False
        self.calls.append(("msg", sid, bytes(subject), bytes(reply), bytes(data), headers and bytes(headers)))
        return True

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        self.calls.append(("msg", sid, bytes(subject), bytes(reply), bytes(data), headers and bytes(headers)))

    async def _process_ping(self) -> None:
        self.calls.append(("ping",))

    async def _process_pong(self) -> None:
        self.calls.append(("pong",))

    async def _process_info(self, info: dict[str, Any]) -> None:
        self.calls.append(("info", info))

    async def _process_err(self, message: str) -> None:
        self.calls.append(("err", message))


_TOKEN = st.text("abcXYZ.>*_-0123456789", min_size=1, max_size=12).map(str.encode)
_BYTES = st.binary(max_size=60)


@st.composite
def _message(draw: st.DrawFn) -> bytes:
    subject, sid = draw(_TOKEN), draw(st.integers(1, 40))
    reply = draw(st.none() | _TOKEN)
    payload = draw(_BYTES)
    middle = b"" if reply is None else b" " + reply
    if draw(st.booleans()):
        return b"MSG %s %d%s %d\r\n%s\r\n" % (subject, sid, middle, len(payload), payload)
    headers = b"NATS/1.0" + draw(st.sampled_from([b"", b" 503", b" 408 Request Timeout"])) + b"\r\n"
    headers += b"".join(b"%s: %s\r\n" % pair for pair in draw(st.lists(st.tuples(_TOKEN, _TOKEN), max_size=3)))
    headers += b"\r\n"
    size = len(headers) + len(payload)
    return b"HMSG %s %d%s %d %d\r\n%s%s\r\n" % (subject, sid, middle, len(headers), size, headers, payload)


_OTHER = st.sampled_from(
    [
        b"PING\r\n",
        b"PONG\r\n",
        b"+OK\r\n",
        b'INFO {"server_id":"x","max_payload":1048576}\r\n',
        b"-ERR 'Stale Connection'\r\n",
    ]
)
_STREAM = st.lists(_message() | _OTHER, max_size=25).map(b"".join)


async def _feed(parser: Parser, stream: bytes, cuts: list[int]) -> None:
    start = 0
    for cut in sorted({c % (len(stream) + 1) for c in cuts}):
        await parser.parse(stream[start:cut])
        start = cut
    await parser.parse(stream[start:])


def _dispatched(parser_class: type[Parser], stream: bytes, cuts: list[int], inline: frozenset[int]) -> list[Any]:
    recorder = _Recorder(inline)
    parser = parser_class(recorder)
    asyncio.run(_feed(parser, stream, cuts))
    assert not parser.buf  # everything was complete
    return recorder.calls


@given(_STREAM, st.lists(st.integers(0, 10_000), max_size=8), st.frozensets(st.integers(1, 40)))
def test_the_same_calls_as_nats_py_for_any_split(stream: bytes, cuts: list[int], inline: frozenset[int]) -> None:
    assert _dispatched(HeraldParser, stream, cuts, inline) == _dispatched(Parser, stream, cuts, frozenset())


def test_a_message_split_across_reads_waits_for_its_end() -> None:
    recorder = _Recorder()
    parser = HeraldParser(recorder)

    async def feed() -> None:
        await parser.parse(b"HMSG live.a 7 12 17\r\nNATS/1.0\r\n")
        await parser.parse(b"\r\nhel")
        assert recorder.calls == []
        await parser.parse(b"lo\r\nPI")
        await parser.parse(b"NG\r\n")

    asyncio.run(feed())
    assert recorder.calls == [("msg", 7, b"live.a", b"", b"hello", b"NATS/1.0\r\n\r\n"), ("ping",)]


@pytest.mark.parametrize(
    "line",
    [
        b"MSG a 1\r\n",  # no size
        b"MSG a x 5\r\nhello\r\n",  # sid not a number
        b"MSG a 1 -5\r\n",
        b"HMSG a 1 9 5\r\nNATS/1.0\r\n\r\n",  # headers longer than the whole
        b"HMSG a 1 b c d e\r\n",
        b"BOGUS\r\n",
    ],
)
def test_malformed_lines_raise_protocol_errors(line: bytes) -> None:
    parser = HeraldParser(_Recorder())
    with pytest.raises(ProtocolError):
        asyncio.run(parser.parse(line))
