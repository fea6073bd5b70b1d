"""What the NATS side may ask of the local connections (the contract only).

The NATS side (:mod:`herald_gateway.natsside` and what it holds) never sees a socket or
a session: it learns whether a pattern is held, hands over each message once per
pattern, and asks for room or for the holders to be closed.
:class:`~herald_gateway.delivery.Delivery` is the implementation the gateway runs.
"""

from __future__ import annotations

from typing import Protocol


class Holders(Protocol):
    def holds(self, pattern: str) -> bool:
        """Whether some local connection holds ``pattern`` right now."""
        ...

    def fan_out(self, pattern: str, subject: str, headers: dict[str, str] | None, data: bytes, epoch: str) -> int:
        """Deliver one stored publication (``data`` from ``live.<topic>`` ``subject``) to the holders of ``pattern``.

        ``headers`` carries its ``Nats-Sequence`` (the offset); ``epoch`` is the stream's.
        Returns how many connections got it; one that is over its byte bound is closed
        with 4009 instead. Called once per message and pattern, never per recipient.
        """
        ...

    async def make_room(self, pattern: str, size: int) -> None:
        """Wait until every live holder of ``pattern`` can take ``size`` more bytes; close the stalled (4009)."""
        ...

    def drop(self, pattern: str, topic: str | None) -> None:
        """Close (4009) the holders of ``pattern`` that receive ``topic`` through it (all of them if None)."""
        ...
