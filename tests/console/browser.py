"""Chromium for the console's tests: Debian's binary driven by the PyPI ``playwright`` package.

No browser is downloaded: ``executable_path`` is the ``chromium`` on PATH. Without it (or
without playwright) the tests are skipped with the reason on a developer's machine and fail
under ``CI=true``, where ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.postgres import in_ci

if TYPE_CHECKING:
    from playwright.sync_api import Browser

#: Screenshots land here (git-ignored), one per page.
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"

ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: CI must never go green without the browser tests."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: not skipping)")
    pytest.skip(reason)


def launch() -> Iterator[Browser]:
    found = shutil.which("chromium")
    if found is None:
        unavailable("console NOT TESTED in a browser: no chromium on PATH (.ci/run installs Debian's)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("console NOT TESTED in a browser: the playwright package is missing (`make venv` installs it)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # Chromium's sandbox needs user namespaces that root in a container does not get.
    args = [*ARGS, "--no-sandbox"] if os.geteuid() == 0 else ARGS
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=found, headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()
