"""The node table (which processes are live, their delivery rate) and the merging of gateway answers."""

from __future__ import annotations

import pytest

from herald_api.domain.operators.services import merge_topics, page_of
from herald_api.nodetable import NodeTable
from herald_common import nodes
from herald_common.config import ConfigError, load_settings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def beat(node_id: str, sent: float, deliveries: int | None = None, service: nodes.Service = "gateway") -> nodes.Beat:
    figures = None if deliveries is None else nodes.GatewayFigures(1, 2, 2, deliveries)
    return nodes.Beat(
        id=node_id,
        service=service,
        version="0.1.0",
        host="h",
        pid=1,
        started=0.0,
        sent=sent,
        nats_server="127.0.0.1:4222",
        nats_reconnects=0,
        gateway=figures,
    )


def test_silent_processes_are_forgotten_after_the_timeout_and_a_bye_at_once() -> None:
    clock = Clock()
    table = NodeTable(timeout=6.0, clock=clock)
    table.observe(beat("g1", 1.0, 0))
    table.observe(beat("a1", 1.0, service="api"))
    clock.now += 5.9
    assert [s.beat.id for s in table.live()] == ["a1", "g1"]
    table.observe(beat("a1", 7.0, service="api"))
    clock.now += 0.2
    assert [s.beat.id for s in table.live()] == ["a1"]
    assert table.gateway_ids() == set()
    table.forget("a1")
    assert table.live() == []


def test_deliveries_per_second_come_from_the_last_two_beats() -> None:
    table = NodeTable(timeout=6.0, clock=Clock())
    table.observe(beat("g1", 10.0, 100))
    assert table.live()[0].deliveries_per_second is None
    table.observe(beat("g1", 12.0, 300))
    assert table.live()[0].deliveries_per_second == pytest.approx(100.0)
    table.observe(beat("g1", 12.0, 300))  # the same instant again: the rate is kept
    assert table.live()[0].deliveries_per_second == pytest.approx(100.0)
    assert table.gateway_ids() == {"g1"}


def test_answers_are_merged_and_paged_by_name() -> None:
    answers = [
        nodes.TopicsAnswer("g1", [nodes.HeldPattern("a.x", 2), nodes.HeldPattern("a.*", 1)]),
        nodes.TopicsAnswer("g2", [nodes.HeldPattern("a.x", 3), nodes.HeldPattern("b", 1)]),
    ]
    merged = merge_topics(answers)
    assert merged == {"a.x": (5, 2), "a.*": (1, 1), "b": (1, 1)}
    assert page_of(list(merged), "", 2) == (["a.*", "a.x"], "a.x")
    assert page_of(list(merged), "a.x", 2) == (["b"], None)
    assert page_of(list(merged), "b", 2) == ([], None)


def test_the_node_timeout_must_cover_two_heartbeats() -> None:
    with pytest.raises(ConfigError, match="HERALD_NODE_TIMEOUT"):
        load_settings({"HERALD_NODE_HEARTBEAT": "2", "HERALD_NODE_TIMEOUT": "3"})
    assert load_settings({"HERALD_NODE_HEARTBEAT": "1", "HERALD_NODE_TIMEOUT": "2"}).node_timeout == 2.0
