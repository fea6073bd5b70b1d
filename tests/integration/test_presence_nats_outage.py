"""Presence through a NATS outage longer than the presence timeout: real nats-server, two gateways.

While NATS is away each gateway drops the other's users (leaves to its watchers); once NATS
is back the heartbeats and snapshots bring them back (joins), and both views agree again.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support.presence import fresh, member, next_presence, query, until
from tests.support.procs import gateway_process, running_nats
from tests.support.stack import SECRET, Gateway

pytestmark = pytest.mark.integration

TIMEOUT = 3.0
ENV = {
    "HERALD_PRESENCE_GRACE": "1",
    "HERALD_PRESENCE_HEARTBEAT": "1",
    "HERALD_PRESENCE_TIMEOUT": str(TIMEOUT),
}


def test_users_leave_during_a_long_outage_and_join_again_after_it(tmp_path: Path) -> None:
    topic = fresh()
    for i in range(2):
        (tmp_path / f"g{i}").mkdir()
    with running_nats() as nats, ExitStack() as held:
        procs = [held.enter_context(gateway_process(nats.url, tmp_path / f"g{i}", SECRET, **ENV)) for i in range(2)]
        gw0, gw1 = (Gateway(p.service, p.port, p.metrics_port) for p in procs)
        w = held.enter_context(member(gw0, "watcher", topic, presence=True))
        assert next_presence(w, 3)[0]["userId"] == "watcher"
        held.enter_context(member(gw1, "olga", topic))
        assert next_presence(w, 5)[0] == {"type": "join", "topic": topic, "userId": "olga"}

        nats.stop()
        # gw0 hears nothing from gw1 for longer than the timeout: olga leaves.
        assert next_presence(w, TIMEOUT + 3)[0] == {"type": "leave", "topic": topic, "userId": "olga"}
        nats.start()  # same port and store
        assert next_presence(w, 15)[0] == {"type": "join", "topic": topic, "userId": "olga"}
        assert until(lambda: query(w, topic).get("users") == ["olga", "watcher"], 5)
        with member(gw1, "pia", topic) as probe:
            assert until(lambda: query(probe, topic).get("users") == ["olga", "pia", "watcher"], 5)
