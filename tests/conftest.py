"""Fixtures shared by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import SAMPLE_DIR, run_build


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory) -> Path:
    """One default build of the bundled sample, shared by read-only tests."""
    out = tmp_path_factory.mktemp("sample-build")
    run_build([SAMPLE_DIR], out)
    return out
