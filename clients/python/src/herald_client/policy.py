"""What the client does after the socket closed, by close code (a pure table).

| code | meaning | the client |
| --- | --- | --- |
| 1001 | gateway shutting down | reconnects with backoff, resumes with ``since`` |
| 1006 | connection dropped, no close frame (crash, network) | same |
| 1011 | keepalive timeout / server error | same |
| 4009 | slow consumer | same |
| 4008 | rate or connection limit | reconnects, waiting at least the limited floor |
| 4001 | token refused or expired | reconnects with a fresh token from the callback; a fixed string token: closes |
| 4003 | disconnected by an operator | never reconnects; closes for good |
| other | (1000 from the server, 1009, protocol errors, no handshake) | reconnects with backoff |

A close the app asked for (:meth:`Client.close`) never reconnects, whatever the code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

NORMAL = 1000
GOING_AWAY = 1001
ABNORMAL = 1006
TOO_LARGE = 1009
INTERNAL_ERROR = 1011
AUTH_FAILED = 4001
OPERATOR = 4003
LIMITED = 4008
SLOW_CONSUMER = 4009


class Next(enum.Enum):
    RECONNECT = "reconnect"
    #: Reconnect, but only with a token fetched again from the callback.
    RECONNECT_WITH_FRESH_TOKEN = "reconnect_with_fresh_token"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class Decision:
    next: Next
    #: Wait at least the backoff's limited floor (after 4008).
    limited: bool = False
    #: Why the client stops (only for ``Next.STOP``).
    reason: str = ""


def after_close(code: int | None, *, refreshable_token: bool, closed_by_app: bool) -> Decision:
    """The step after a close with ``code`` (None: the socket never opened or closed without a code)."""
    if closed_by_app:
        return Decision(Next.STOP, reason="closed by the application")
    if code == OPERATOR:
        return Decision(Next.STOP, reason="disconnected by an operator (4003)")
    if code == AUTH_FAILED:
        if refreshable_token:
            return Decision(Next.RECONNECT_WITH_FRESH_TOKEN)
        return Decision(Next.STOP, reason="the gateway refused the token (4001) and it cannot be refreshed")
    if code == LIMITED:
        return Decision(Next.RECONNECT, limited=True)
    return Decision(Next.RECONNECT)
