"""The JSON nesting limit, measured on raw bytes before any decoder runs."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald_common.errors import ErrorCode, HeraldError
from herald_common.jsondepth import MAX_JSON_DEPTH, check_json_depth


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def nested(levels: int) -> bytes:
    """``levels`` containers, objects and arrays in turn, around a number."""
    text = "1"
    for level in range(levels):
        text = f'{{"k":{text}}}' if level % 2 else f"[{text}]"
    return text.encode()


def refused(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    try:
        check_json_depth(raw, limit)
    except HeraldError as exc:
        assert exc.code is ErrorCode.BAD_REQUEST
        return True
    return False


def prefix_depth(skeleton: str) -> int:
    """How deep a decoder gets in a bracket string before its first stray closer."""
    level = deepest = 0
    for char in skeleton:
        level += 1 if char in "[{" else -1
        if level < 0:
            break
        deepest = max(deepest, level)
    return deepest


def test_the_limit_is_64() -> None:
    assert MAX_JSON_DEPTH == 64
    assert not refused(nested(64))
    assert refused(nested(65))


def test_brackets_inside_strings_do_not_count() -> None:
    raw = json.dumps({"text": "[" * 5000 + "{" * 5000, "quoted": '\\"[[' * 100, "slash": "\\"}).encode()
    assert not refused(raw)


def test_documents_far_too_deep_for_the_decoder_are_refused() -> None:
    for raw in (b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000, b"[" * 100_000):
        with pytest.raises(RecursionError):
            msgspec.json.decode(raw)
        assert refused(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 500_000 + b"]" * 500_000,
        (b"[" * 64 + b"]" * 64) * 7800,
        (b"[" * 8 + b"]" * 8) * 62_000,
        b"[]" * 500_000,
        b'["' + b'\\"[' * 200_000,
        json.dumps([[i, {"a": [i]}] for i in range(40_000)]).encode(),
    ],
    ids=["deep", "many-64-deep", "many-8-deep", "pairs", "escaped-quotes", "wide"],
)
def test_a_megabyte_is_measured_quickly(raw: bytes) -> None:
    started = time.perf_counter()
    refused(raw)
    assert time.perf_counter() - started < 0.5


keys = st.text(alphabet='[{"\\x', max_size=3)
json_values = st.recursive(
    st.none() | st.integers() | st.text(alphabet='ab[]{}"\\:,', max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.integers(min_value=0, max_value=10))
def test_a_valid_document_is_refused_exactly_when_too_deep(value: Any, limit: int) -> None:
    assert refused(json.dumps(value).encode(), limit) == (depth(value) > limit)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="[]{}", max_size=60), st.integers(min_value=0, max_value=10))
def test_nothing_accepted_lets_a_decoder_past_the_limit(skeleton: str, limit: int) -> None:
    if not refused(skeleton.encode(), limit):
        assert prefix_depth(skeleton) <= limit
