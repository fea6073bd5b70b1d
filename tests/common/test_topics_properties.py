"""Property-based checks of the topic grammar and matcher."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald_common.errors import ErrorCode, HeraldError
from herald_common.topics import covers, matches, validate_pattern, validate_topic

TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+\Z")
relaxed = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=300)

token = st.text(alphabet="abcXYZ019_-", min_size=1, max_size=8)
topic = st.lists(token, min_size=1, max_size=16).map(".".join).filter(lambda t: len(t) <= 255)
pattern_token = st.one_of(token, st.just("*"))
pattern = st.tuples(st.lists(pattern_token, min_size=1, max_size=15), st.booleans()).map(
    lambda p: ".".join(p[0] + (["**"] if p[1] else []))
)


def reference_valid_topic(value: str) -> bool:
    tokens = value.split(".")
    return 0 < len(value) <= 255 and len(tokens) <= 16 and all(TOKEN_RE.match(t) for t in tokens)


@relaxed
@given(st.text(max_size=300))
def test_validation_agrees_with_the_grammar(value: str) -> None:
    try:
        validate_topic(value)
    except HeraldError as exc:
        assert exc.code is ErrorCode.INVALID_TOPIC
        assert not reference_valid_topic(value)
    else:
        assert reference_valid_topic(value)


@relaxed
@given(topic)
def test_generated_topics_are_valid_and_match_themselves(t: str) -> None:
    assert validate_topic(t) == t
    assert matches(t, t)
    assert matches("**", t)
    assert covers(t, t)


@relaxed
@given(pattern, topic)
def test_matching_by_regex_model(p: str, t: str) -> None:
    validate_pattern(p)
    parts = []
    for tok in p.split("."):
        parts.append({"*": r"[^.]+", "**": r"[^.]+(\.[^.]+)*"}.get(tok, re.escape(tok)))
    assert matches(p, t) is bool(re.fullmatch(r"\.".join(parts), t))


@relaxed
@given(pattern, pattern, topic)
def test_covers_is_sound(outer: str, inner: str, t: str) -> None:
    """If ``outer`` covers ``inner``, every topic ``inner`` matches is matched by ``outer``."""
    if covers(outer, inner) and matches(inner, t):
        assert matches(outer, t)
