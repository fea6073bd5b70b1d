"""Close-code policy, backoff bounds and jitter, state machines: pure data in, data out."""

from __future__ import annotations

import random

import pytest

from herald_client.backoff import Backoff
from herald_client.errors import IllegalTransitionError
from herald_client.policy import Next, after_close
from herald_client.states import (
    CLIENT_TRANSITIONS,
    SUBSCRIPTION_TRANSITIONS,
    ClientState,
    StateMachine,
    SubscriptionState,
)


@pytest.mark.parametrize("code", [1000, 1001, 1006, 1009, 1011, 4009, None, 4999])
def test_transient_closes_reconnect(code: int | None) -> None:
    for refreshable in (True, False):
        decision = after_close(code, refreshable_token=refreshable, closed_by_app=False)
        assert decision.next is Next.RECONNECT
        assert not decision.limited


def test_limit_close_reconnects_with_the_longer_backoff() -> None:
    decision = after_close(4008, refreshable_token=False, closed_by_app=False)
    assert decision.next is Next.RECONNECT and decision.limited


def test_refused_token_reconnects_only_when_it_can_be_refreshed() -> None:
    assert after_close(4001, refreshable_token=True, closed_by_app=False).next is Next.RECONNECT_WITH_FRESH_TOKEN
    stop = after_close(4001, refreshable_token=False, closed_by_app=False)
    assert stop.next is Next.STOP and "4001" in stop.reason


@pytest.mark.parametrize("code", [1001, 1006, 4001, 4003, 4008])
def test_operator_disconnect_and_app_close_never_reconnect(code: int) -> None:
    assert after_close(4003, refreshable_token=True, closed_by_app=False).next is Next.STOP
    assert after_close(code, refreshable_token=True, closed_by_app=True).next is Next.STOP


def test_backoff_stays_within_bounds_and_grows() -> None:
    backoff = Backoff(0.5, 20.0, rng=random.Random(1))
    ceilings = []
    for attempt in range(12):
        ceiling = backoff.ceiling(attempt)
        delay = backoff.next_delay()
        assert 0.5 <= delay <= ceiling <= 20.0
        ceilings.append(ceiling)
    assert ceilings[:4] == [1.0, 2.0, 4.0, 8.0]
    assert ceilings[-1] == 20.0
    backoff.reset()
    assert backoff.attempt == 0 and backoff.next_delay() <= 1.0


def test_backoff_is_jittered_over_the_whole_window() -> None:
    delays = [Backoff(0.5, 20.0, rng=random.Random(seed), attempt=5).next_delay() for seed in range(400)]
    assert min(delays) < 2.5 and max(delays) > 18.0  # spread over [0.5, 16 or 20]
    assert len({round(d, 3) for d in delays}) > 350


def test_limited_backoff_waits_at_least_the_floor() -> None:
    backoff = Backoff(0.5, 20.0, limited_floor=5.0, rng=random.Random(2))
    delays = [backoff.next_delay(limited=True) for _ in range(50)]
    assert all(5.0 <= d <= 20.0 for d in delays)
    tiny = Backoff(0.1, 2.0, limited_floor=5.0, rng=random.Random(3))
    assert tiny.next_delay(limited=True) == pytest.approx(2.0)  # never above max


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="min_delay"):
        Backoff(0, 1)
    with pytest.raises(ValueError, match="min_delay"):
        Backoff(5, 1)


def test_client_state_machine_guards_transitions() -> None:
    seen: list[tuple[ClientState, ClientState]] = []
    machine = StateMachine(ClientState.DISCONNECTED, CLIENT_TRANSITIONS)
    stop = machine.listen(lambda old, new: seen.append((old, new)))
    with pytest.raises(IllegalTransitionError, match="disconnected -> connected"):
        machine.to(ClientState.CONNECTED)
    machine.to(ClientState.CONNECTING)
    machine.to(ClientState.CONNECTED)
    machine.to(ClientState.DISCONNECTED)
    stop()
    machine.to(ClientState.CLOSED)
    assert seen == [
        (ClientState.DISCONNECTED, ClientState.CONNECTING),
        (ClientState.CONNECTING, ClientState.CONNECTED),
        (ClientState.CONNECTED, ClientState.DISCONNECTED),
    ]
    for state in ClientState:
        with pytest.raises(IllegalTransitionError):
            machine.to(state)  # CLOSED is final


def test_subscription_state_machine_guards_transitions() -> None:
    machine = StateMachine(SubscriptionState.UNSUBSCRIBED, SUBSCRIPTION_TRANSITIONS)
    with pytest.raises(IllegalTransitionError):
        machine.to(SubscriptionState.SUBSCRIBED)
    machine.to(SubscriptionState.SUBSCRIBING)
    machine.to(SubscriptionState.SUBSCRIBED)
    machine.to(SubscriptionState.SUBSCRIBING)  # connection lost, resubscribing
    with pytest.raises(IllegalTransitionError):
        machine.to(SubscriptionState.SUBSCRIBING)
    machine.to(SubscriptionState.UNSUBSCRIBED)
