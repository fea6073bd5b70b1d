"""The JSON nesting limit, checked on raw text before decoding."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald_common.errors import ErrorCode, HeraldError
from herald_common.jsondepth import MAX_JSON_DEPTH, check_json_depth

relaxed = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=300)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


def nested(depth: int, leaf: str = "1") -> str:
    """``depth`` levels alternating arrays and objects around ``leaf``."""
    text = leaf
    for level in range(depth):
        text = f"[{text}]" if level % 2 else f'{{"k":{text}}}'
    return text


def refused(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    try:
        check_json_depth(raw, limit)
    except HeraldError as exc:
        assert exc.code is ErrorCode.BAD_REQUEST
        return True
    return False


def test_the_limit_is_64_levels() -> None:
    assert MAX_JSON_DEPTH == 64


@pytest.mark.parametrize("kind", [bytes, str])
def test_exactly_the_limit_passes_and_one_more_is_refused(kind: type) -> None:
    at_limit, beyond = nested(MAX_JSON_DEPTH), nested(MAX_JSON_DEPTH + 1)
    if kind is bytes:
        assert not refused(at_limit.encode())
        assert refused(beyond.encode())
    else:
        assert not refused(at_limit)
        assert refused(beyond)


def test_brackets_inside_strings_are_not_nesting() -> None:
    inside = json.dumps({"text": "[" * 10_000 + "{" * 10_000, "escaped": '\\"[[[[' * 100})
    assert not refused(inside.encode())
    assert not refused(inside)


def test_many_shallow_containers_pass() -> None:
    wide = json.dumps([[i, {"a": [i]}] for i in range(20_000)]).encode()
    assert not refused(wide)


def test_unbalanced_runs_are_refused() -> None:
    assert refused(b"[" * 100_000)
    assert refused(b"{" * 100 + b"}" * 99)


def test_a_deep_document_is_refused_quickly() -> None:
    raw = b"[" * 500_000 + b"]" * 500_000
    started = time.perf_counter()
    assert refused(raw)
    assert time.perf_counter() - started < 1.0


def test_unterminated_escaped_quotes_stay_linear() -> None:
    # Each quote could start a string that runs to the end; a backtracking scan of this is
    # quadratic.
    raw = b'["' + b'\\"[' * 200_000
    started = time.perf_counter()
    refused(raw)
    assert time.perf_counter() - started < 1.0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab[]{}"\\,:é', max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=40,
)


@relaxed
@given(json_values, st.integers(min_value=0, max_value=12))
def test_agrees_with_the_decoded_depth(value: Any, limit: int) -> None:
    raw = json.dumps(value, ensure_ascii=False)
    assert refused(raw.encode(), limit) == (depth_of(value) > limit)
    assert refused(raw, limit) == (depth_of(value) > limit)
