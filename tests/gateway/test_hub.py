from __future__ import annotations

from herald_gateway.hub import Interest


def test_first_and_last_member_of_a_pattern_are_reported() -> None:
    interest: Interest[str] = Interest()
    assert interest.add("a.*", "c1") is True
    assert interest.add("a.*", "c2") is False
    assert interest.add("a.*", "c2") is False
    assert interest.total == 2
    assert set(interest.members("a.*")) == {"c1", "c2"}
    assert interest.remove("a.*", "c1") is False
    assert "a.*" in interest
    assert interest.remove("a.*", "c2") is True
    assert "a.*" not in interest
    assert interest.patterns() == []


def test_removing_an_unknown_member_changes_nothing() -> None:
    interest: Interest[str] = Interest()
    interest.add("a", "c1")
    assert interest.remove("a", "c9") is False
    assert interest.remove("b", "c1") is False
    assert set(interest.members("a")) == {"c1"}
    assert set(interest.members("b")) == set()
