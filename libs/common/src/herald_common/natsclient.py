"""nats-py's client with a header parser that costs what it should.

Every message a gateway receives carries eight or so headers (the stream's ``Nats-Stream``,
``Nats-Sequence``, ``Nats-Time-Stamp``, ``Nats-Subject``, ``Nats-Last-Sequence`` and the
publisher's ``Nats-Msg-Id`` and batch headers). nats-py 2.16 parses them line by line, but
checks each name for inner whitespace with a generator over its characters; at tens of
thousands of messages a second that check was the gateway's largest single cost, more
than the fan-out itself. :class:`HeraldNatsClient` parses the same way with the check done
by ``str.split`` (the same definition of whitespace, ``str.isspace``), and every Herald
service connects with it (:mod:`herald_common.natsconn`).
"""

from __future__ import annotations

from nats.aio.client import Client

_CRLF = b"\r\n"


class HeraldNatsClient(Client):
    """A nats-py :class:`~nats.aio.client.Client`; only header parsing differs (not its result)."""

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        """The headers of a message block (``Name: Value`` per line) as nats-py returns them:
        names split at the first ``:`` and stripped; a line with no ``:``, a name that is
        not ASCII or that holds whitespace is skipped; values stripped and decoded as UTF-8
        with replacement characters; a later repeat of a name wins."""
        out: dict[str, str] = {}
        for line in raw.split(_CRLF):
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            try:
                key = name.strip().decode("ascii")
            except UnicodeDecodeError:
                continue
            if key and key.split() != [key]:  # whitespace in the name, as str.isspace has it
                continue
            out[key] = value.strip().decode("utf-8", "replace")
        return out
