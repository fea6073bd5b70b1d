"""The TypeScript SDK (in Node, with the ws package) against real nats-server, api, bridge and gateway.

Each script subscribes with two overlapping patterns (``P.*`` and ``P.a``) while messages are
published over REST without pause, and reports what each subscription received: every
message once and in order, through whatever happens to the gateway meanwhile.
"""

from __future__ import annotations

import signal
import time
import uuid
from typing import Any

import pytest

from tests.clients.conftest import restart_gateway, run_script, stack_env
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def prefix() -> str:
    return f"ts{uuid.uuid4().hex[:8]}"


def assert_exact(result: dict[str, Any]) -> None:
    assert result["failedPublishes"] == 0, result
    for name in ("wide", "narrow", "topicA", "topicB"):
        audit = result[name]
        assert audit["expected"] > 0, (name, result)
        assert (audit["lost"], audit["duplicates"], audit["reordered"]) == (0, 0, 0), (name, result)
        assert audit["count"] == audit["expected"], (name, result)
    # the narrow pattern got exactly the messages of its topic, the wide one all of them
    assert result["narrow"]["count"] == result["topicA"]["count"]
    assert result["wide"]["count"] == result["topicA"]["count"] + result["topicB"]["count"]


def assert_replayed(result: dict[str, Any]) -> None:
    """Messages were published while the client was away: only the replay with ``since`` brings them."""
    assert result["publishedWhileDown"] is not None and result["publishedWhileDown"] >= 5, result


def test_gateway_sigkill_mid_stream_loses_nothing(node: str, stack: Stack) -> None:
    gw = stack.gateways[0]

    def kill_and_restart() -> None:
        gw.service.kill()
        time.sleep(0.5)
        restart_gateway(gw)

    run = run_script(node, "stack/stream.mjs", stack_env(stack, MODE="kill", TOPIC_PREFIX=prefix()), kill_and_restart)
    result = run.last("result")
    assert run.returncode == 0, run.stderr
    assert_exact(result)
    assert_replayed(result)
    assert result["receivedAfterReconnect"] >= 20
    assert 1006 in [d["code"] for d in result["disconnects"]], result["disconnects"]
    assert result["gaps"] == 0 and result["recovered"] == [True, True], result
    assert result["states"].count("connected") >= 2


def test_gateway_sigterm_closes_1001_and_the_client_resumes(node: str, stack: Stack) -> None:
    gw = stack.gateways[0]

    def stop_and_restart() -> None:
        assert gw.service.stop() == 0
        restart_gateway(gw)

    run = run_script(node, "stack/stream.mjs", stack_env(stack, MODE="term", TOPIC_PREFIX=prefix()), stop_and_restart)
    result = run.last("result")
    assert run.returncode == 0, run.stderr
    assert_exact(result)
    assert_replayed(result)
    assert result["disconnects"][0]["code"] == 1001, result["disconnects"]
    assert result["gaps"] == 0 and result["recovered"] == [True, True], result


def test_frozen_gateway_is_noticed_by_ping_and_the_client_resumes(node: str, stack: Stack) -> None:
    gw = stack.gateways[0]
    assert gw.service.proc is not None
    pid = gw.service.proc.pid

    def freeze() -> None:
        gw.service.signal(signal.SIGSTOP)
        try:
            time.sleep(3.5)  # ping every 1 s, dead after 1 s more without an answer
        finally:
            gw.service.signal(signal.SIGCONT)

    env = stack_env(stack, MODE="freeze", TOPIC_PREFIX=prefix(), PING_MS="1000", PONG_MS="1000")
    run = run_script(node, "stack/stream.mjs", env, freeze)
    result = run.last("result")
    assert run.returncode == 0, run.stderr
    assert_exact(result)
    assert_replayed(result)
    first = result["disconnects"][0]
    assert (first["code"], first["reason"]) == (4000, "no answer to ping"), result["disconnects"]
    assert result["deadNoticedAfterMs"] <= 2000 + 700, result
    assert gw.service.proc.pid == pid, "the same gateway process, frozen then resumed"


def test_short_lived_token_is_refreshed_without_a_disconnect(node: str, stack: Stack) -> None:
    env = stack_env(stack, MODE="refresh", TOPIC_PREFIX=prefix(), TOKEN_TTL="4", DURATION_MS="9000", MESSAGES="100")
    run = run_script(node, "stack/stream.mjs", env)
    result = run.last("result")
    assert run.returncode == 0, run.stderr
    assert_exact(result)
    assert result["disconnects"] == [], result
    assert result["states"] == ["connecting", "connected"], result["states"]
    # a 4 s token over 9+ s: refreshed on the live socket at least three times
    assert result["refreshes"] >= 3, result
    # one token per refresh plus the first (and perhaps one whose refresh was still in flight at the end)
    assert result["refreshes"] + 1 <= result["tokens"] <= result["refreshes"] + 2, result


def test_socket_publish_resolves_with_its_offset_and_errors_reject(node: str, stack: Stack) -> None:
    run = run_script(node, "stack/publish.mjs", stack_env(stack, TOPIC_PREFIX=prefix()))
    assert run.returncode == 0, run.stderr
    result = run.last("result")
    assert result["offsets"] == sorted(result["offsets"]) and len(set(result["offsets"])) == 3, result
    assert result["echoed"] == result["offsets"], "each publish's offset is the one its message carries"
    assert result["publisher"] == "ts-writer"
    assert result["reserved"] == {"name": "ServerError", "code": "forbidden"}
    assert result["ungranted"] == {"name": "ServerError", "code": "forbidden"}


def test_4003_keeps_the_client_down_while_1001_reconnects(node: str) -> None:
    run = run_script(node, "stack/operator.mjs", {})
    assert run.returncode == 0, run.stderr
    result = run.last("result")
    assert result["connections"] == 2, result
    assert result["codes"] == [1001, 4003], result
    assert result["state"] == "closed"
    assert result["closeError"] == {"name": "ClosedError", "code": "disconnected"}
    assert result["connectRejected"] is True


def test_4001_static_token_closes_and_get_token_renews(node: str, stack: Stack) -> None:
    run = run_script(node, "stack/auth.mjs", stack_env(stack))
    assert run.returncode == 0, run.stderr
    result = run.last("result")
    assert result["staticError"]["name"] == "AuthError", result
    assert "4001" in result["staticError"]["message"]
    assert result["staticState"] == "closed"
    assert result["fixedCodes"] == [4001]
    assert result["renewingCodes"] == [4001], "refused once, then connected with the fresh token"
    assert (result["renewedUser"], result["renewingState"], result["calls"]) == ("ts-renewed", "connected", 2)


def test_presence_when_the_gateway_supports_it(node: str, stack: Stack) -> None:
    run = run_script(node, "stack/presence.mjs", stack_env(stack, TOPIC_PREFIX=prefix()))
    assert run.returncode == 0, run.stderr
    if any(e.get("event") == "unsupported" for e in run.events):
        pytest.skip(f"this gateway has no presence yet: {run.last('unsupported')}")
    result = run.last("result")
    assert (result["count"], result["users"]) == (2, ["alice", "bob"]), result
    # a socket with presence hears its own user's join too; joins of two users may come in either order
    events = result["events"]
    assert sorted(events) == ["join alice", "join bob", "leave bob"], result
    assert events.index("join bob") < events.index("leave bob"), result
