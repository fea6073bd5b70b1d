"""Shared helpers for the gateway's pure tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from herald_common.config import load_settings
from herald_common.tokens import TokenVerifier, issue_token
from herald_gateway.actions import Action, Send
from herald_gateway.session import Limits, Session

SECRET = "gateway-test-secret-of-at-least-32-bytes"
VERIFIER = TokenVerifier(load_settings({}, jwt_secret=SECRET))
LIMITS = Limits(auth_timeout=5.0, refresh_grace=30.0, max_subscriptions=3)
T0 = 1_000_000.0


def token(sub: str = "alice", **kwargs: Any) -> str:
    return issue_token(SECRET, sub, **kwargs)


def frames(actions: Iterable[Action]) -> list[dict[str, Any]]:
    """The JSON frames the actions send, decoded."""
    return [json.loads(a.frame) for a in actions if isinstance(a, Send)]


def text(frame: dict[str, Any]) -> str:
    return json.dumps(frame)


def new_session(limits: Limits = LIMITS) -> Session:
    return Session(VERIFIER, limits, T0)


def authed(sub: str = "alice", limits: Limits = LIMITS, **token_kwargs: Any) -> Session:
    session = new_session(limits)
    out = frames(session.on_text(text({"type": "auth", "token": token(sub, **token_kwargs)}), T0))
    assert out == [{"type": "auth_success", "userId": sub}]
    return session
