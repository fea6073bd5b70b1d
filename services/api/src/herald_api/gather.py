"""Asking every gateway at once over NATS and gathering their answers (scatter-gather).

One request goes to a subject every gateway subscribes to, with a reply inbox of its own;
answers are collected until each gateway the api knows of (from the node heartbeats) has
answered, or until the timeout. A gateway the api does not know of yet still gets the
request and may answer in time; a known one that does not is reported as missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

log = logging.getLogger(__name__)


class FromGateway(Protocol):
    @property
    def gateway(self) -> str: ...


A = TypeVar("A", bound=FromGateway)


@dataclass(frozen=True)
class Gathered(Generic[A]):
    answers: list[A]
    #: known gateways that did not answer in time
    missing: list[str]


async def gather(
    nc: Client,
    subject: str,
    payload: bytes,
    decoder: msgspec.json.Decoder[A],
    expected: set[str],
    timeout: float,
) -> Gathered[A]:
    answers: dict[str, A] = {}
    done = asyncio.Event()

    async def on_answer(msg: Msg) -> None:
        try:
            answer = decoder.decode(msg.data)
        except msgspec.DecodeError:
            log.warning("ignored a malformed answer on %s", subject)
            return
        answers[answer.gateway] = answer
        if expected <= answers.keys():
            done.set()

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_answer)
    try:
        await nc.publish(subject, payload, reply=inbox)
        if expected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout)
        else:
            # No gateway known: nobody to wait for (a request such as a disconnect still
            # reached every gateway subscribed, known or not).
            await nc.flush(timeout=max(1, round(timeout)))
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    ordered = [answers[g] for g in sorted(answers)]
    return Gathered(ordered, sorted(expected - answers.keys()))
