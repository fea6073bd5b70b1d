"""The TypeScript SDK's own unit tests (node --test over the built output) and its type checks."""

from __future__ import annotations

import re
import subprocess

from tests.clients.conftest import SDK


def test_unit_tests_pass(node: str) -> None:
    done = subprocess.run(
        [node, "--test", "test/unit/"], cwd=SDK, capture_output=True, text=True, timeout=120, check=False
    )
    passed = re.search(r"^# pass (\d+)$", done.stdout, re.M)
    failed = re.search(r"^# fail (\d+)$", done.stdout, re.M)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert passed is not None and failed is not None, done.stdout[-2000:]
    assert int(failed.group(1)) == 0
    assert int(passed.group(1)) >= 30, "the unit tests were not all found"


def test_browser_bundle_within_budget(node: str) -> None:
    import gzip

    bundle = (SDK / "dist" / "herald.min.js").read_bytes()
    assert len(gzip.compress(bundle, 9)) <= 8 * 1024
    # one self-contained file exposing the SDK as a global, no imports left over
    assert b"Herald" in bundle
    assert b"import " not in bundle and b"require(" not in bundle
