"""PostgreSQL for the tests: ``TEST_POSTGRES_URL`` if set, else a throwaway cluster of our own.

The throwaway cluster is what CI uses too (``.ci/postgres.sh``: initdb in a temp folder, a
free loopback port, trust auth, fsync off), so a developer's ``make test`` covers the
PostgreSQL cases without any set-up. It is started on first use and stopped when the test
session ends. When it cannot start, the PostgreSQL cases are skipped with a loud reason on
a developer's machine and fail under ``CI=true``: CI must never go green without them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

ENV = "TEST_POSTGRES_URL"
SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "postgres.sh"


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL could be found or started."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a private cluster with ``.ci/postgres.sh``, yield its URL, stop and remove it."""
    with tempfile.NamedTemporaryFile("r", prefix="herald-pg-stop-", delete=False) as stop_file:
        stop_path = Path(stop_file.name)
    try:
        done = subprocess.run(
            ["bash", str(SCRIPT)],
            env={**os.environ, "PG_STOP_FILE": str(stop_path)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0 or not done.stdout.strip():
            raise PostgresUnavailableError(
                f"{SCRIPT.name} exited with {done.returncode}: {done.stderr.strip()[-2000:]}"
            )
        yield done.stdout.strip().splitlines()[-1]
    finally:
        stop = stop_path.read_text().strip() if stop_path.exists() else ""
        if stop:
            subprocess.run(["bash", "-c", stop], capture_output=True, timeout=60, check=False)
        stop_path.unlink(missing_ok=True)


async def _create_database(url: str, name: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def fresh_database(url: str) -> str:
    """A new, empty database on the server of ``url``; returns its URL."""
    name = f"herald_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(url, name))
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"
