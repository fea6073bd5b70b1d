"""Load processes in Node (``node/loadproc.mjs``): the same commands as :mod:`herald_bench.loadproc`.

The benchmark's load processes share the two cores with the servers they measure, so
what a load process spends the servers do not get. Receiving a frame or writing a POST
costs a Node process about half what the asyncio one spends (measured: 10 sockets and
4,500 POSTs/s took 27–30 % of a core in Node, about 62 % in Python), so Node is the
default (``--load-runtime``) and the Python processes remain for comparison.

Each process gets a JSON command per line on stdin and writes a JSON answer per line on
stdout; the byte fields of an answer come base64-encoded and are decoded here, so the
sections see the same answers from either kind of pool.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import IO, Any

from herald_bench.pool import COMMAND_TIMEOUT, Pool, PoolError
from herald_bench.procs import raise_open_files

SCRIPT = Path(__file__).with_name("node") / "loadproc.mjs"
#: answer fields that hold bytes (base64 on the wire)
BYTE_FIELDS = ("samples", "hits", "answers_us", "accepted_local")
#: the longest answer line (a window's latency samples, 8 bytes each, base64)
LINE_LIMIT = 1 << 30


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise PoolError("node is not installed: install Node 20+ or run with --load-runtime python")
    return node


def decode_answer(line: bytes) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(line)
    for name in BYTE_FIELDS:
        if isinstance(answer.get(name), str):
            answer[name] = base64.b64decode(answer[name])
    return answer


class NodePool(Pool):
    def __init__(self, processes: int) -> None:
        node = node_binary()
        raise_open_files()  # the Node processes inherit it
        self._procs: list[subprocess.Popen[bytes]] = [
            subprocess.Popen([node, str(SCRIPT), str(index)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            for index in range(processes)
        ]

    @property
    def size(self) -> int:
        return len(self._procs)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    async def call(self, cmds: list[dict[str, Any]], timeout: float = COMMAND_TIMEOUT) -> list[dict[str, Any]]:
        """Send ``cmds[i]`` to process ``i`` and return the answers in the same order."""

        async def roundtrip(proc: subprocess.Popen[bytes], cmd: dict[str, Any]) -> dict[str, Any]:
            try:
                line = await asyncio.wait_for(asyncio.to_thread(_exchange, proc, cmd), timeout)
            except TimeoutError:
                raise PoolError(f"no answer to {cmd['op']!r} within {timeout:.0f}s") from None
            if not line:
                raise PoolError(f"the Node load process exited ({proc.poll()}) during {cmd['op']!r}")
            return decode_answer(line)

        answers = await asyncio.gather(*(roundtrip(p, c) for p, c in zip(self._procs, cmds, strict=True)))
        return self.check(list(answers))

    def shutdown(self) -> None:
        for proc in self._procs:
            with contextlib.suppress(OSError, ValueError):
                _exchange(proc, {"op": "quit"})
        for proc in self._procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


def _exchange(proc: subprocess.Popen[bytes], cmd: dict[str, Any]) -> bytes:
    """Write one command line and read one answer line (blocking; run in a thread)."""
    stdin: IO[bytes] | None = proc.stdin
    stdout: IO[bytes] | None = proc.stdout
    if stdin is None or stdout is None:
        raise PoolError("the Node load process has no pipes")
    try:
        stdin.write(json.dumps(cmd).encode() + b"\n")
        stdin.flush()
    except (BrokenPipeError, ValueError):
        return b""
    return stdout.readline(LINE_LIMIT)
