"""Presence across gateways, with real processes: nats-server, api, bridge, three gateways.

Short timings for the test (grace 1 s, heartbeat 1 s, timeout 4 s, cap 5 users), so
every wait below is bounded and a late or missing frame fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.presence import (
    fresh,
    grant,
    member,
    metric,
    next_presence,
    presence_frames,
    query,
    rest,
    stored_events,
    until,
)
from tests.support.stack import Client, Stack, client, stack_on_nats, token

pytestmark = pytest.mark.integration

GRACE = 1.0
HEARTBEAT = 1.0
TIMEOUT = 4.0
CAP = 5
PRESENCE_ENV = {
    "HERALD_PRESENCE_GRACE": str(GRACE),
    "HERALD_PRESENCE_HEARTBEAT": str(HEARTBEAT),
    "HERALD_PRESENCE_TIMEOUT": str(TIMEOUT),
    "HERALD_PRESENCE_MAX_USERS": str(CAP),
    "HERALD_CONNECT_BURST_PER_IP": "10000",
    "HERALD_CONNECT_RATE_PER_IP": "10000",
    "HERALD_MAX_CONNECTIONS_PER_IP": "10000",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack_on_nats(Path(tmp_path_factory.mktemp("presence"))) as s:
        s.start_api(**PRESENCE_ENV)
        s.start_bridge()
        s.start_gateway(**PRESENCE_ENV)
        s.start_gateway(**PRESENCE_ENV)
        time.sleep(HEARTBEAT + 0.5)  # each has heard the other's heartbeat
        yield s


def test_join_and_leave_reach_watchers_on_the_other_gateway(stack: Stack) -> None:
    gw0, gw1 = stack.gateways[:2]
    topic = fresh()
    with member(gw0, "watcher", topic, presence=True) as w:
        assert next_presence(w, 3)[0] == {"type": "join", "topic": topic, "userId": "watcher"}
        with member(gw1, "alice", topic):
            assert next_presence(w, 3)[0] == {"type": "join", "topic": topic, "userId": "alice"}
            gone = time.monotonic()
        frame, at = next_presence(w, GRACE + 3)
        assert frame == {"type": "leave", "topic": topic, "userId": "alice"}
        assert at - gone >= GRACE - 0.2  # held back for the grace period
        assert presence_frames(w, 0.5) == []


def test_a_join_is_not_held_back_behind_a_pending_leave(stack: Stack) -> None:
    gw0, gw1 = stack.gateways[:2]
    topic = fresh()
    with member(gw0, "watcher", topic, presence=True) as w:
        next_presence(w, 3)
        with member(gw1, "kate", topic):
            assert next_presence(w, 3)[0]["userId"] == "kate"
        # kate's leave now waits out the grace on gw1; leo's join there must not wait with it.
        time.sleep(0.3)
        started = time.monotonic()
        with member(gw1, "leo", topic):
            frame, at = next_presence(w, 3)
            assert frame == {"type": "join", "topic": topic, "userId": "leo"}
            assert at - started < GRACE / 2
            assert next_presence(w, GRACE + 3)[0] == {"type": "leave", "topic": topic, "userId": "kate"}


def test_two_sockets_of_one_user_join_once_and_leave_with_the_last(stack: Stack) -> None:
    gw0, gw1 = stack.gateways[:2]
    topic = fresh()
    with member(gw0, "watcher", topic, presence=True) as w:
        next_presence(w, 3)
        first = Client(gw0.url)
        second = Client(gw1.url)
        try:
            for c in (first, second):
                c.auth(token("bob", **grant(topic)))
                assert c.subscribe(topic)["type"] == "subscribed"
            assert presence_frames(w, 1.0) == [{"type": "join", "topic": topic, "userId": "bob"}]
            first.close()
            assert presence_frames(w, GRACE + 1.5) == []  # bob still has a socket on gw1
            second.close()
            assert next_presence(w, GRACE + 3)[0] == {"type": "leave", "topic": topic, "userId": "bob"}
        finally:
            first.close()
            second.close()


def test_a_reload_within_the_grace_sends_no_leave_and_no_second_join(stack: Stack) -> None:
    gw0, gw1 = stack.gateways[:2]
    topic = fresh()
    with member(gw0, "watcher", topic, presence=True) as w:
        next_presence(w, 3)
        with member(gw1, "carol", topic):
            assert next_presence(w, 3)[0]["type"] == "join"
        # The page reloads and lands on the other gateway.
        with member(gw0, "carol", topic):
            assert presence_frames(w, GRACE + 1.5) == []
            assert query(w, topic)["users"] == ["carol", "watcher"]
        assert next_presence(w, GRACE + 3)[0] == {"type": "leave", "topic": topic, "userId": "carol"}


def test_presence_query_on_each_gateway_and_over_rest(stack: Stack) -> None:
    gw0, gw1 = stack.gateways[:2]
    topic = fresh()
    with member(gw0, "dave", topic), member(gw1, "dave", topic), member(gw1, "erin", topic):
        for gw in (gw0, gw1):
            with client(gw.url, "frank", **grant(topic)) as c:
                answer = until(lambda c=c: (a := query(c, topic, "q")) and a.get("count") == 2 and a)
                assert answer == {"type": "presence", "topic": topic, "count": 2, "users": ["dave", "erin"], "id": "q"}
        resp = rest(stack, topic, "frank", **grant(topic))
        assert resp.status_code == 200, resp.text
        assert resp.json() == {
            "topic": topic,
            "count": 2,
            "users": [{"userId": "dave", "connections": 2}, {"userId": "erin", "connections": 1}],
        }
    body = until(lambda: (r := rest(stack, topic, "frank", **grant(topic)).json())["count"] == 0 and r, GRACE + 4)
    assert body == {"topic": topic, "count": 0, "users": []}


def test_presence_is_forbidden_to_whoever_may_not_subscribe(stack: Stack) -> None:
    gw0 = stack.gateways[0]
    topic = fresh()
    with member(gw0, "gina", topic):
        with client(gw0.url, "mallory") as c:
            assert query(c, topic)["code"] == "forbidden"
            c.send({"type": "subscribe", "topic": topic, "presence": True, "id": 2})
            assert c.recv(5) == {
                "type": "error",
                "code": "forbidden",
                "message": f"not allowed to subscribe to {topic!r}",
                "id": 2,
            }
            assert presence_frames(c, 0.5) == []
        assert rest(stack, topic, "mallory").status_code == 403
        assert rest(stack, "news.*", "gina", **grant(topic)).status_code == 400


def test_channel_presence_follows_membership(stack: Stack) -> None:
    gw0 = stack.gateways[0]
    made = stack.post("/api/channels", {"name": "presence"}, token("owner"))
    assert made.status_code == 201, made.text
    topic = f"messages.channel.{made.json()['id']}"
    with client(gw0.url, "owner") as owner:
        assert owner.subscribe(topic, presence=True)["type"] == "subscribed"
        assert next_presence(owner, 3)[0] == {"type": "join", "topic": topic, "userId": "owner"}
        assert query(owner, topic)["users"] == ["owner"]
        with client(gw0.url, "outsider") as c:
            assert query(c, topic)["code"] == "forbidden"
        assert rest(stack, topic, "owner").json()["users"] == [{"userId": "owner", "connections": 1}]
        assert rest(stack, topic, "outsider").status_code == 403


def test_presence_on_a_pattern_is_invalid_topic(stack: Stack) -> None:
    with client(stack.gateways[0].url, "henry", topics=["news.**"]) as c:
        c.send({"type": "subscribe", "topic": "news.*", "presence": True, "id": 7})
        assert c.recv(5) == {
            "type": "error",
            "code": "invalid_topic",
            "message": "presence needs an exact topic, not a pattern",
            "id": 7,
        }
        assert query(c, "news.*")["code"] == "invalid_topic"


def test_above_the_cap_only_the_count_is_given(stack: Stack) -> None:
    gw0, gw1 = stack.gateways[:2]
    topic = fresh()
    with contextlib.ExitStack() as held:
        w = held.enter_context(member(gw0, "u0", topic, presence=True))
        for i in range(1, CAP + 2):
            held.enter_context(member(gw1 if i % 2 else gw0, f"u{i}", topic))
        frames = presence_frames(w, 1.5)
        # Joins up to the cap, u0's own among them, none beyond. Joins of users taken by one
        # gateway in the same flush have no order between them (u0's and u2's, both on gw0).
        assert len(frames) == CAP and all(f["type"] == "join" for f in frames), frames
        joined = [f["userId"] for f in frames]
        assert len(set(joined)) == CAP and "u0" in joined, joined
        answer = query(w, topic)
        assert answer == {"type": "presence", "topic": topic, "count": CAP + 2, "id": 1}
        assert rest(stack, topic, "u0", **grant(topic)).json() == {"topic": topic, "count": CAP + 2}


def test_a_killed_gateway_s_users_leave_within_the_timeout(stack: Stack) -> None:
    gw0 = stack.gateways[0]
    doomed = stack.start_gateway(**PRESENCE_ENV)
    topic = fresh()
    with member(gw0, "watcher", topic, presence=True) as w:
        next_presence(w, 3)
        victim = Client(doomed.url)
        try:
            victim.auth(token("ivan", **grant(topic)))
            assert victim.subscribe(topic)["type"] == "subscribed"
            assert next_presence(w, 3)[0] == {"type": "join", "topic": topic, "userId": "ivan"}
            killed = time.monotonic()
            doomed.service.kill()
            frame, at = next_presence(w, TIMEOUT + 4)
        finally:
            with contextlib.suppress(Exception):
                victim.close()
        assert frame == {"type": "leave", "topic": topic, "userId": "ivan"}
        # Documented bound: HERALD_PRESENCE_TIMEOUT + 1 s (plus a little for a loaded machine).
        assert at - killed <= TIMEOUT + 1.5


def test_a_stopped_gateway_s_users_leave_after_the_grace_and_are_stored(stack: Stack) -> None:
    gw0 = stack.gateways[0]
    leaving = stack.start_gateway(**PRESENCE_ENV)
    topic = fresh()
    with member(gw0, "watcher", topic, presence=True) as w:
        next_presence(w, 3)
        c = Client(leaving.url)
        try:
            c.auth(token("judy", **grant(topic)))
            assert c.subscribe(topic)["type"] == "subscribed"
            assert next_presence(w, 3)[0]["userId"] == "judy"
            stopped = time.monotonic()
            assert leaving.service.stop() == 0
            frame, at = next_presence(w, TIMEOUT + 4)
        finally:
            c.close()
        assert frame == {"type": "leave", "topic": topic, "userId": "judy"}
        # The goodbye: after the grace (and the once-a-second check), before a crash's timeout.
        assert at - stopped < TIMEOUT
    events = asyncio.run(stored_events(stack, topic, 3))
    assert [(e.type, e.user_id) for e in events][:3] == [("join", "watcher"), ("join", "judy"), ("leave", "judy")]


def test_a_join_flood_stays_bounded(stack: Stack) -> None:
    gw0, gw1 = stack.gateways[:2]
    topic = fresh()
    entries = [metric(gw, "herald_gateway_presence_entries") for gw in (gw0, gw1)]
    with member(gw0, "watcher", topic, presence=True) as w:
        next_presence(w, 3)
        # One user flapping: subscribe/unsubscribe 40 times within the grace is one join, no leave,
        # and one or two NATS batches from its gateway, not eighty.
        batches = metric(gw1, "herald_gateway_presence_batches_total")
        with client(gw1.url, "flap", **grant(topic)) as c:
            for _ in range(40):
                c.send({"type": "subscribe", "topic": topic})
                c.send({"type": "unsubscribe", "topic": topic})
            c.send({"type": "subscribe", "topic": topic, "id": "last"})
            while c.recv(5).get("id") != "last":
                pass
            assert presence_frames(w, GRACE + 1) == [{"type": "join", "topic": topic, "userId": "flap"}]
            assert metric(gw1, "herald_gateway_presence_batches_total") - batches <= 2
            # Many users at once: the watcher gets joins up to the cap only.
            with contextlib.ExitStack() as crowd:
                for i in range(40):
                    crowd.enter_context(member(gw1 if i % 2 else gw0, f"crowd{i}", topic))
                assert len(presence_frames(w, 1.5)) == CAP - 2
                assert query(w, topic)["count"] == 42
            frames = presence_frames(w, GRACE + 2)
            # Leaves come back under the cap only: 42 -> 2 users, the last 3 leaves are sent.
            assert len(frames) == CAP - 2 and all(f["type"] == "leave" for f in frames)

    # Every entry of the flood is gone again on both gateways (nothing grows with the churn;
    # the count before may still have held earlier tests' users in their grace).
    def settled() -> bool:
        now = [metric(gw, "herald_gateway_presence_entries") for gw in (gw0, gw1)]
        return all(n <= before for n, before in zip(now, entries, strict=True))

    assert until(settled, GRACE + 4), [metric(gw, "herald_gateway_presence_entries") for gw in (gw0, gw1)]


def test_who_may_see_presence_is_who_may_subscribe(stack: Stack) -> None:
    gw1 = stack.gateways[1]
    topics = ["messages.user.kim", "messages.user.lou", "messages", "orders.eu", "orders.us"]
    allowed = {
        "kim": {"messages.user.kim", "orders.eu"},
        "lou": {"messages.user.lou"},
        "root": set(topics),
    }
    claims: dict[str, dict[str, Any]] = {"kim": {"topics": ["orders.eu"]}, "lou": {}, "root": {}}
    with member(stack.gateways[0], "kim", "orders.eu"):
        for user, may in allowed.items():
            roles = ("admin",) if user == "root" else ()
            with client(gw1.url, user, *roles, **claims[user]) as c:
                for topic in topics:
                    answer = query(c, topic, topic)
                    if topic in may:
                        assert answer["type"] == "presence" and answer["id"] == topic, (user, answer)
                    else:
                        assert (answer["type"], answer["code"], answer["id"]) == ("error", "forbidden", topic), user
                if "orders.eu" in may:
                    assert until(lambda c=c: query(c, "orders.eu").get("users") == ["kim"]), user


def test_a_watcher_hears_subscribed_and_its_replay_before_its_own_join(stack: Stack) -> None:
    gw0 = stack.gateways[0]
    topic = fresh()
    with client(gw0.url, "nina", **grant(topic)) as c:
        since = {"offset": 0, "epoch": "not-this-one"}
        c.send({"type": "subscribe", "topic": topic, "presence": True, "since": since, "id": 1})
        assert c.recv(5) == {"type": "subscribed", "topic": topic, "id": 1, "recovered": False}
        assert next_presence(c, 3)[0] == {"type": "join", "topic": topic, "userId": "nina"}
