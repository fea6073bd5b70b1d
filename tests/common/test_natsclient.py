"""The client's header parser gives what nats-py's own gives, for any header block."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

from herald_common.natsclient import HeraldNatsClient

# Bytes that make header parsing interesting: separators, whitespace of every kind
# (including the ASCII separators str.isspace counts), non-ASCII and invalid UTF-8.
_PIECES = st.sampled_from(
    [
        b"Nats-Msg-Id",
        b"a",
        b"X",
        b":",
        b": ",
        b" ",
        b"\t",
        b"\x0b",
        b"\x1c",
        b"\r\n",
        b"\r",
        b"\n",
        b"1",
        b"\xc3\xa9",
        b"\xff",
    ]
)


@given(st.lists(_PIECES, max_size=40).map(b"".join))
def test_same_headers_as_nats_py(raw: bytes) -> None:
    assert HeraldNatsClient._parse_header_lines(raw) == Client._parse_header_lines(raw)


def test_a_stored_message_s_headers() -> None:
    raw = (
        b"Nats-Msg-Id: e82c\r\nNats-Stream: HERALD_TOPICS\r\nNats-Sequence: 189475\r\n"
        b"Nats-Time-Stamp: 2026-12-01T11:59:26.94040467Z\r\nBad Name: x\r\nNats-Last-Sequence:189474\r\n\r\n"
    )
    assert HeraldNatsClient._parse_header_lines(raw) == {
        "Nats-Msg-Id": "e82c",
        "Nats-Stream": "HERALD_TOPICS",
        "Nats-Sequence": "189475",
        "Nats-Time-Stamp": "2026-12-01T11:59:26.94040467Z",
        "Nats-Last-Sequence": "189474",
    }
