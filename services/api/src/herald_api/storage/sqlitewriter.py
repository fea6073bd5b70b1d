"""SQLite write transactions on a thread of their own, many statements per thread hop.

SQLite has one writer at a time, so one connection on one thread serves every write
transaction of the process, one transaction after another. Going through an async driver
costs a round trip between the event loop and the driver's thread for every statement,
and each round trip waits for both threads to get the GIL: a group-commit batch of N
writes (savepoint, two inserts, release each) took 4N of them. Here statements whose
result nobody needs are queued and sent with the next statement that returns something,
or with the commit: a batch of plain inserts is one hop and one fsync.

Queued statements run in order, each inside the savepoints that were open when it was
queued. When one fails, the innermost of those savepoints is rolled back and marked
failed (:class:`~herald_api.storage.protocols.Savepoint`), everything else queued for it
is skipped, and the rest of the transaction goes on; a failure outside any savepoint
fails the transaction.
"""

from __future__ import annotations

import asyncio
import enum
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection, Engine, Executable, Insert, RootTransaction
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError

from herald_api.storage.protocols import Savepoint

T = TypeVar("T")
Params = Mapping[str, Any] | None


class _Op(enum.Enum):
    EXECUTE = enum.auto()
    SAVEPOINT = enum.auto()
    RELEASE = enum.auto()
    ROLLBACK = enum.auto()


@dataclass(frozen=True, slots=True)
class _Command:
    op: _Op
    statement: Executable | None = None
    params: Params = None
    savepoint: Savepoint | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of the statement a hop was made for."""

    rows: list[Row[Any]]
    rowcount: int


@dataclass(slots=True)
class _Open:
    handle: Savepoint
    #: The SQL name of the savepoint; None once it failed (or was opened inside one that had).
    nested: str | None


@dataclass(slots=True)
class _ThreadState:
    """One transaction as the writer thread sees it."""

    root: RootTransaction | None = None
    stack: list[_Open] = field(default_factory=list)
    failures: list[tuple[Savepoint, BaseException]] = field(default_factory=list)

    @property
    def skipping(self) -> bool:
        return any(entry.nested is None for entry in self.stack)


class SqliteWriter:
    """Runs write transactions on one SQLite connection owned by one thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="herald-sqlite-writer")
        self._lock = asyncio.Lock()
        self._conn: Connection | None = None  # used on the writer thread only
        #: Driver SQL of plain inserts, by statement and columns (False: not plain).
        self._plans: dict[tuple[int, tuple[str, ...]], tuple[str, tuple[str, ...]] | Literal[False]] = {}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[WriterSession]:
        """Commits when the block exits normally, rolls back when it raises."""
        async with self._lock:
            session = WriterSession(self)
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def close(self) -> None:
        await self._call(self._close)
        self._executor.shutdown(wait=True)
        self._engine.dispose()

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        # Submitted at once: even if the caller is cancelled while waiting, the thread runs
        # it, in submission order with what comes next (a rollback, the next transaction).
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # Everything below runs on the writer thread.

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            if self._conn is not None:
                self._conn.close()
            self._conn = self._engine.connect()
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(
        self, state: _ThreadState, commands: Sequence[_Command], final: Executable | None
    ) -> tuple[list[tuple[Savepoint, BaseException]], Outcome | None]:
        conn = self._connection()
        if state.root is None:
            state.root = conn.begin()
        for command in commands:
            self._apply(conn, state, command)
        outcome = None
        if final is not None and not state.skipping:
            try:
                result = conn.execute(final)
                outcome = Outcome(list(result.all()) if result.returns_rows else [], result.rowcount)
            except Exception as exc:
                self._fail(state, exc)
        failures, state.failures = state.failures, []
        return failures, outcome

    def _apply(self, conn: Connection, state: _ThreadState, command: _Command) -> None:
        if command.op is _Op.EXECUTE:
            if state.skipping:
                return
            assert command.statement is not None
            try:
                self._execute(conn, command.statement, command.params)
            except Exception as exc:
                self._fail(state, exc)
        elif command.op is _Op.SAVEPOINT:
            assert command.savepoint is not None
            # Savepoints go straight to the driver: SQLAlchemy's nested transactions cost
            # more than the inserts they guard, two of them per write of a batch. The root
            # transaction is SQLAlchemy's (BEGIN IMMEDIATE, see engine.py), so these are
            # always nested inside it.
            name = None
            if not state.skipping:
                name = f"herald_sp{len(state.stack)}"
                _driver(conn).execute(f"SAVEPOINT {name}")
            state.stack.append(_Open(command.savepoint, name))
        else:
            entry = state.stack.pop()
            if entry.handle is not command.savepoint:
                raise RuntimeError("savepoints closed out of order")
            if entry.nested is not None:
                if command.op is _Op.RELEASE:
                    _driver(conn).execute(f"RELEASE {entry.nested}")
                else:
                    _roll_back_to(conn, entry.nested)

    def _execute(self, conn: Connection, statement: Executable, params: Params) -> None:
        """Run a write whose result nobody needs; plain inserts go straight to the driver
        with SQL compiled once per statement and set of columns (SQLAlchemy's per-call
        execution machinery costs several times what SQLite spends on such an insert)."""
        if params is None or not isinstance(statement, Insert):
            conn.execute(statement, params)
            return
        key = (id(statement), tuple(params))
        plan = self._plans.get(key)
        if plan is None:
            compiled = statement.compile(dialect=conn.dialect, column_keys=list(params))
            order = compiled.positiontup
            plain = order is not None and not getattr(compiled, "_bind_processors", None)
            plan = (str(compiled), tuple(order)) if plain and order is not None else False
            self._plans[key] = plan
        if plan is False:
            conn.execute(statement, params)
            return
        sql, names = plan
        values = tuple(params[name] for name in names)
        try:
            _driver(conn).execute(sql, values)
        except sqlite3.Error as exc:  # as SQLAlchemy would raise it (IntegrityError, ...)
            raise DBAPIError.instance(sql, values, exc, sqlite3.Error) from exc

    def _fail(self, state: _ThreadState, exc: Exception) -> None:
        if not state.stack:
            raise exc
        entry = state.stack[-1]
        assert entry.nested is not None
        assert self._conn is not None
        _roll_back_to(self._conn, entry.nested)
        entry.nested = None
        state.failures.append((entry.handle, exc))

    def _commit(self, state: _ThreadState, commands: Sequence[_Command]) -> list[tuple[Savepoint, BaseException]]:
        failures, _ = self._run(state, commands, None)
        if state.stack:
            raise RuntimeError("commit with a savepoint still open")
        assert state.root is not None
        state.root.commit()
        return failures

    def _rollback(self, state: _ThreadState) -> None:
        if state.root is None or self._conn is None:
            return
        try:
            if state.root.is_active:
                state.root.rollback()
            raw = self._conn.connection.driver_connection
            if raw is not None and raw.in_transaction:  # e.g. a COMMIT that failed
                raw.execute("ROLLBACK")
        except Exception:
            # The connection is in an unknown state: the next transaction gets a new one.
            self._conn.invalidate()
            raise


def _driver(conn: Connection) -> Any:
    """The sqlite3 connection under ``conn`` (autocommit mode: statements run as given)."""
    return conn.connection.driver_connection


def _roll_back_to(conn: Connection, name: str) -> None:
    driver = _driver(conn)
    driver.execute(f"ROLLBACK TO {name}")
    driver.execute(f"RELEASE {name}")


class WriterSession:
    """One write transaction, as the event loop sees it (see the module docstring)."""

    def __init__(self, writer: SqliteWriter) -> None:
        self._writer = writer
        self._state = _ThreadState()
        self._pending: list[_Command] = []
        self._open: list[Savepoint] = []
        self._started = False

    def _check_open(self) -> None:
        for handle in self._open:
            if handle.failure is not None:
                raise handle.failure

    def _noted(self, failures: list[tuple[Savepoint, BaseException]]) -> None:
        for handle, exc in failures:
            handle.failure = exc
        self._check_open()

    def defer(self, statement: Executable, params: Params = None) -> None:
        """Queue a statement whose result is not needed."""
        self._check_open()
        self._pending.append(_Command(_Op.EXECUTE, statement, params))

    async def execute(self, statement: Executable) -> Outcome:
        """Run what is queued, then ``statement``; returns its rows and row count."""
        self._check_open()
        commands, self._pending = self._pending, []
        self._started = True
        failures, outcome = await self._writer._call(self._writer._run, self._state, commands, statement)
        self._noted(failures)
        assert outcome is not None  # a failure of ``statement`` itself was raised by _noted
        return outcome

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[Savepoint]:
        self._check_open()
        handle = Savepoint()
        self._pending.append(_Command(_Op.SAVEPOINT, savepoint=handle))
        self._open.append(handle)
        try:
            yield handle
        except BaseException:
            self._open.pop()
            self._pending.append(_Command(_Op.ROLLBACK, savepoint=handle))
            raise
        self._open.pop()
        self._pending.append(_Command(_Op.RELEASE, savepoint=handle))

    async def commit(self) -> None:
        commands, self._pending = self._pending, []
        if not commands and not self._started:
            return
        self._started = True
        failures = await self._writer._call(self._writer._commit, self._state, commands)
        for handle, exc in failures:
            handle.failure = exc

    async def rollback(self) -> None:
        self._pending = []
        if self._started:
            await self._writer._call(self._writer._rollback, self._state)
