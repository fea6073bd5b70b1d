"""Group commit: writes from many requests share one transaction and one fsync.

A durable commit waits for the disk (SQLite runs with ``synchronous=FULL``), and SQLite
has one writer at a time, so committing each POST on its own caps the api at one POST per
fsync. Here each write runs in its own savepoint inside a shared transaction: a write that
fails (a permission check, a constraint) is rolled back alone and its caller gets the
error, the others commit together, and every caller is answered only after the commit.
Requests arriving while a commit is in progress form the next batch. A store may run the
writes only at the commit (SQLite does, for the whole batch at once): a write failing
then is reported by its savepoint and answered to its caller alone in the same way.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from herald_api.storage.protocols import Savepoint, Storage, Transaction

log = logging.getLogger(__name__)

T = TypeVar("T")
Write = Callable[[Transaction], Awaitable[Any]]

#: Writes committed together at most; a larger backlog is committed in several batches.
MAX_BATCH = 256


class GroupCommit:
    def __init__(self, storage: Storage, max_batch: int = MAX_BATCH) -> None:
        self._storage = storage
        self._max_batch = max_batch
        self._queue: list[tuple[Write, asyncio.Future[Any], contextvars.Context]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit")

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        await self._task
        self._task = None

    async def write(self, op: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``op`` in the next shared transaction; returns once that transaction committed."""
        if self._task is None:  # not started (e.g. a tool using the service directly)
            async with self._storage.transaction() as tx:
                return await op(tx)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        # The write runs in the caller's context (its trace span, for the outbox row).
        self._queue.append((op, future, contextvars.copy_context()))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._commit(batch)
            if self._closing:
                return

    @staticmethod
    async def _in_savepoint(tx: Transaction, op: Write) -> tuple[Savepoint, Any]:
        async with tx.savepoint() as savepoint:
            return savepoint, await op(tx)

    async def _commit(self, batch: list[tuple[Write, asyncio.Future[Any], contextvars.Context]]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], Savepoint | None, Any]] = []
        loop = asyncio.get_running_loop()
        try:
            async with self._storage.transaction() as tx:
                for op, future, context in batch:
                    if future.cancelled():
                        continue
                    try:
                        done, value = await loop.create_task(self._in_savepoint(tx, op), context=context)
                    except Exception as exc:  # this write alone is rolled back
                        outcomes.append((future, None, exc))
                    else:
                        outcomes.append((future, done, value))
        except Exception as exc:  # the commit itself failed: nothing of the batch is stored
            log.warning("group commit of %d writes failed: %s", len(batch), type(exc).__name__)
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.commits += 1
        for future, kept, value in outcomes:
            if future.done():
                continue
            if kept is None:
                future.set_exception(value)
            elif kept.failure is not None:  # a deferred write failed: rolled back alone
                future.set_exception(kept.failure)
            else:
                future.set_result(value)
