"""Driving the sans-I/O core in tests: a connected core, frames as JSON, outputs by type."""

from __future__ import annotations

import json
import random
from typing import Any

from herald_client.backoff import Backoff
from herald_client.core import Core, Timing
from herald_client.outputs import Output, Send
from tests.clients.test_tokens_frames import jwt

WALL = 1_000_000.0
TOKEN = jwt({"sub": "alice", "exp": WALL + 3600, "iat": WALL})


def sent(outputs: list[Output]) -> list[dict[str, Any]]:
    return [json.loads(o.text) for o in outputs if isinstance(o, Send)]


def of(kind: type[Any], outputs: list[Output]) -> list[Any]:
    return [o for o in outputs if isinstance(o, kind)]


def frame(**fields: Any) -> str:
    return json.dumps(fields)


def msg(topic: str, offset: int, epoch: str = "e1", **extra: Any) -> str:
    return frame(type="message", topic=topic, data={"n": offset}, offset=offset, epoch=epoch, **extra)


def new_core(refreshable: bool = False, **timing: float) -> Core:
    return Core(refreshable_token=refreshable, backoff=Backoff(rng=random.Random(0)), timing=Timing(**timing))


def connect(core: Core, now: float = 0.0, token: str = TOKEN) -> list[Output]:
    core.start()
    out = core.on_open(token, now, WALL + now)
    assert sent(out) == [{"type": "auth", "token": token}]
    return core.on_frame(frame(type="auth_success", userId="alice"), now)


def subscribed(core: Core, pattern: str, now: float = 0.0, **fields: Any) -> tuple[int, list[Output]]:
    """Subscribe and answer it; returns the app's request id and the outputs of the answer."""
    _, rid, out = core.subscribe(pattern, False, now)
    [request] = sent(out)
    return rid, core.on_frame(frame(type="subscribed", topic=pattern, id=request["id"], **fields), now)
