"""Outside programs some tests drive (Chromium, Claude Code, Codex, npm servers).

Where one is missing a test skips with one line saying how to get it, except in CI
(`CI` set, as `.ci/run` does), which installs them all: there a missing program is a
failure, so a broken install step cannot hide behind a skip.
"""

from __future__ import annotations

import os

import pytest


def missing(message: str) -> None:
    """Skip (or, in CI, fail) a test whose outside program is not installed."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI installs it: see .ci/run)")
    pytest.skip(message)
