"""The parent's handle on the load processes: start them, broadcast a command, gather answers.

:class:`Pool` is what the sections use; :class:`LoadPool` runs the load processes in
Python (:mod:`herald_bench.loadproc`, through ``multiprocessing``), and
:class:`herald_bench.nodepool.NodePool` runs them in Node, with the same commands.
"""

from __future__ import annotations

import abc
import asyncio
import multiprocessing
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from herald_bench import loadproc

COMMAND_TIMEOUT = 120.0


class PoolError(Exception):
    """A load process failed a command or did not answer in time."""


class Pool(abc.ABC):
    """Load processes that answer the commands of :mod:`herald_bench.loadproc`."""

    @property
    @abc.abstractmethod
    def size(self) -> int: ...

    @property
    @abc.abstractmethod
    def pids(self) -> list[int]: ...

    @abc.abstractmethod
    async def call(self, cmds: list[dict[str, Any]], timeout: float = COMMAND_TIMEOUT) -> list[dict[str, Any]]:
        """Send ``cmds[i]`` to process ``i`` and return the answers in the same order."""

    @abc.abstractmethod
    def shutdown(self) -> None: ...

    async def broadcast(self, cmd: dict[str, Any], timeout: float = COMMAND_TIMEOUT) -> list[dict[str, Any]]:
        return await self.call([cmd] * self.size, timeout)

    async def open(
        self,
        kind: str,
        endpoints: list[tuple[str, int, str]],
        count: int,
        topic: str,
        secret: str = "",
        first: int = 0,
    ) -> list[dict[str, Any]]:
        """Split ``count`` clients over the processes (user ids ``bench-<first>``… are distinct)."""
        cmds = []
        start = first
        for index in range(self.size):
            share = count // self.size + (1 if index < count % self.size else 0)
            cmds.append(
                {
                    "op": "open",
                    "kind": kind,
                    "endpoints": endpoints,
                    "first": start,
                    "count": share,
                    "topic": topic,
                    "secret": secret,
                    "grants": [topic],
                }
            )
            start += share
        return await self.call(cmds)

    @staticmethod
    def check(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for answer in answers:
            if "error" in answer:
                raise PoolError(answer["error"])
        return answers


class LoadPool(Pool):
    def __init__(self, processes: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._procs: list[BaseProcess] = []
        for index in range(processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=loadproc.main, args=(child, index), name=f"herald-bench-load-{index}", daemon=True
            )
            proc.start()
            child.close()
            self._pipes.append(parent)
            self._procs.append(proc)

    @property
    def size(self) -> int:
        return len(self._pipes)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    async def call(self, cmds: list[dict[str, Any]], timeout: float = COMMAND_TIMEOUT) -> list[dict[str, Any]]:
        """Send ``cmds[i]`` to process ``i`` and return the answers in the same order."""

        def roundtrip(pipe: Connection, cmd: dict[str, Any]) -> dict[str, Any]:
            pipe.send(cmd)
            if not pipe.poll(timeout):
                raise PoolError(f"no answer to {cmd['op']!r} within {timeout:.0f}s")
            answer: dict[str, Any] = pipe.recv()
            return answer

        answers = await asyncio.gather(
            *(asyncio.to_thread(roundtrip, pipe, cmd) for pipe, cmd in zip(self._pipes, cmds, strict=True))
        )
        return self.check(list(answers))

    def shutdown(self) -> None:
        for pipe in self._pipes:
            try:
                pipe.send({"op": "quit"})
                if pipe.poll(10):
                    pipe.recv()
            except (OSError, EOFError):
                pass
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        for pipe in self._pipes:
            pipe.close()
