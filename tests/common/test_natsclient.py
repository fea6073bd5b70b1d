"""The client's header parser gives what nats-py's own gives, for any header block."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

from herald_common import natsclient
from herald_common.natsclient import HeraldNatsClient, Inline

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


@given(st.lists(_PIECES, max_size=40).map(b"".join))
def test_a_block_without_a_status_parses_as_nats_py_parses_it(raw: bytes) -> None:
    block = b"NATS/1.0\r\n" + raw
    assert natsclient.plain_headers(block) == asyncio.run(Client()._process_headers(block))


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


def test_names_are_remembered_up_to_a_bound() -> None:
    """A peer that sends ever new header names does not grow the parser's cache without end."""
    for n in range(natsclient._NAMES_MAX + 100):
        assert HeraldNatsClient._parse_header_lines(b"X-%d: v\r\n" % n) == {f"X-{n}": "v"}
    assert len(natsclient._NAMES) == natsclient._NAMES_MAX


@pytest.mark.parametrize("client_class", [HeraldNatsClient, Client], ids=["herald", "nats-py"])
async def test_an_inline_subscription_hands_over_each_message_in_order(
    nats_url: str, client_class: type[Client]
) -> None:
    """On HeraldNatsClient the handler runs from the read loop (the subscription's queue stays
    empty); a handler that raises is reported and the next messages still arrive; on a plain
    nats-py client the same callback works through the queue."""
    errors: list[Exception] = []

    async def error_cb(exc: Exception) -> None:
        errors.append(exc)

    client = client_class()
    await client.connect(nats_url, error_cb=error_cb)
    publisher = HeraldNatsClient()
    await publisher.connect(nats_url)
    got: list[tuple[str, dict[str, str] | None, bytes]] = []
    done = asyncio.Event()

    def handle(subject: str, headers: dict[str, str] | None, data: bytes) -> None:
        if data == b"boom":
            raise RuntimeError("the handler failed")
        got.append((subject, headers, data))
        if len(got) == 500:
            done.set()

    try:
        sub = await client.subscribe("inline.>", cb=Inline(handle))
        await client.flush()
        if client_class is Client:
            # nats-py's flush may be answered before the server reads the SUB (see
            # herald_common.natsclient); by the second one the SUB has been sent.
            await client.flush()
        await publisher.publish("inline.a", b"boom")
        for n in range(500):
            await publisher.publish(f"inline.{n % 3}", str(n).encode(), headers={"N": str(n)} if n % 2 else None)
        await publisher.flush()
        await asyncio.wait_for(done.wait(), 10)
        assert [int(data) for _, _, data in got] == list(range(500))
        assert got[1] == ("inline.1", {"N": "1"}, b"1") and got[2] == ("inline.2", None, b"2")
        assert [type(e) for e in errors] == [RuntimeError]
        if client_class is HeraldNatsClient:
            assert sub.delivered == 501 and sub.pending_msgs == 0
        await sub.unsubscribe()
    finally:
        await publisher.close()
        await client.close()
