"""Shared helpers for the harness's own tests."""

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]  # the plugin and farm tests run pytest inside pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "keyos-release-1.0.0"


@pytest.fixture
def release_1_0_0() -> Path:
    """The real KeyOS 1.0.0 files from ../shared; skipped where that folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data/keyos-release-1.0.0 is not present in this checkout")
    return SHARED_DATA
