"""The NATS protocol parser of Herald's client: nats-py's, with messages read in place.

nats-py 2.16 matches every ``MSG``/``HMSG`` control line against up to two regular
expressions, cuts each line and each message off the front of its buffer, copies the
payload twice and awaits a coroutine per message. At the gateway's tens of thousands of
live messages a second that was a fifth of its work. :class:`HeraldParser` reads what
arrived with one index instead: a message line is split at its spaces, the header block
and the payload are sliced once from the bytes read, the buffer is trimmed once per read,
and a message the client can hand over at once (an :class:`~herald_common.natsclient.Inline`
subscription's, see ``HeraldNatsClient._deliver_inline``) is handed over with a plain call.
Every other message still goes through the client's ``_process_msg``; every other line
(``+OK``, ``-ERR``, ``PING``, ``PONG``, ``INFO``) through nats-py's own expressions and
client methods; a message line nats-py would reject raises the same ``ProtocolError``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from nats.errors import ProtocolError
from nats.protocol.parser import (
    AWAITING_CONTROL_LINE,
    AWAITING_MSG_PAYLOAD,
    ERR_RE,
    INFO_RE,
    OK_RE,
    PING_RE,
    PONG_RE,
    Parser,
)

if TYPE_CHECKING:
    from herald_common.natsclient import HeraldNatsClient

_CRLF = b"\r\n"
_MSG = b"MSG"
_HMSG = b"HMSG"


def _message_line(args: list[bytes]) -> tuple[bytes, int, bytes, int, int]:
    """Subject, sid, reply (``b""`` without one), header size and total size of a
    ``MSG subject sid [reply] size`` or ``HMSG subject sid [reply] header-size size`` line."""
    try:
        if args[0] == _MSG:
            header_size = b"0"
            if len(args) == 4:
                subject, sid, size = args[1:]
                reply = b""
            else:
                subject, sid, reply, size = args[1:]
        elif len(args) == 5:
            subject, sid, header_size, size = args[1:]
            reply = b""
        else:
            subject, sid, reply, header_size, size = args[1:]
        if not (size.isdigit() and header_size.isdigit()):
            raise ValueError(size)
        needed, headers = int(size), int(header_size)
        if headers > needed:
            raise ValueError(header_size)
        return subject, int(sid), reply, headers, needed
    except ValueError:  # a wrong count of arguments too
        raise ProtocolError("nats: malformed MSG") from None


class HeraldParser(Parser):
    """nats-py's :class:`~nats.protocol.parser.Parser` for a :class:`HeraldNatsClient`."""

    nc: HeraldNatsClient

    async def parse(self, data: bytes = b"") -> None:
        """Dispatch every complete line and message in what was kept plus ``data``; keep the rest."""
        buf = self.buf
        if buf:
            buf += data
            chunk = bytes(buf)
        else:
            chunk = data
        end = len(chunk)
        pos = 0
        nc = self.nc
        # The message whose line is read and whose bytes are awaited: subject, sid, reply,
        # header size, total size (kept in the parser's fields between reads).
        pending: tuple[bytes, int, bytes, int, int] | None = None
        if self.state == AWAITING_MSG_PAYLOAD:
            arg = self.msg_arg
            pending = (arg["subject"], arg["sid"], arg["reply"], self.header_needed, self.needed)
        try:
            while True:
                if pending is None:
                    eol = chunk.find(_CRLF, pos)
                    if eol < 0:
                        break  # the rest of the line comes with the next read
                    args = chunk[pos:eol].split()
                    if not (args and (args[0] == _HMSG or args[0] == _MSG)):
                        line = chunk[pos : eol + 2]
                        pos = eol + 2
                        await self._control(line)
                        if self.buf is not buf:  # reset meanwhile (a reconnect): what was read is stale
                            return
                        continue
                    pending = _message_line(args)
                    pos = eol + 2
                subject, sid, reply, header_size, needed = pending
                stop = pos + needed
                if stop + 2 > end:
                    break  # the message comes with the next reads
                pending = None
                split = pos + header_size
                headers = chunk[pos:split] if header_size else None
                payload = chunk[split:stop]
                pos = stop + 2
                if not nc._deliver_inline(sid, subject, reply, payload, headers):
                    await nc._process_msg(sid, subject, reply, payload, headers)  # type: ignore[arg-type]  # nats-py annotates headers as bytes
                    if self.buf is not buf:
                        return
        finally:
            if self.buf is buf:
                buf[:] = chunk[pos:]
                if pending is None:
                    self.state = AWAITING_CONTROL_LINE
                    self.header_needed = 0
                else:
                    subject, sid, reply, self.header_needed, self.needed = pending
                    self.msg_arg = {"subject": subject, "sid": sid, "reply": reply}
                    self.state = AWAITING_MSG_PAYLOAD

    async def _control(self, line: bytes) -> None:
        """A line other than a message's, matched as nats-py matches it."""
        nc = self.nc
        if OK_RE.match(line):
            return
        if err := ERR_RE.match(line):
            await nc._process_err(err.groups()[0].decode().lower())
        elif PING_RE.match(line):
            await nc._process_ping()
        elif PONG_RE.match(line):
            await nc._process_pong()
        elif info := INFO_RE.match(line):
            await nc._process_info(json.loads(info.groups()[0].decode()))
        else:
            raise ProtocolError("nats: unknown protocol")
