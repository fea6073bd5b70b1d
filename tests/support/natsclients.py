"""The tests' own NATS connections.

They use Herald's client, as the services do: its ``flush`` returns once the server has
every subscription sent before it, which a test needs before it makes another connection
publish or ask (nats-py 2.16's may return first; see :mod:`herald_common.natsclient`).
"""

from __future__ import annotations

from typing import Any

from herald_common.natsclient import HeraldNatsClient


async def connect_nats(servers: str | list[str], **options: Any) -> HeraldNatsClient:
    """Connect like ``nats.connect(servers, **options)``, with :class:`HeraldNatsClient`."""
    nc = HeraldNatsClient()
    await nc.connect(servers, **options)
    return nc
