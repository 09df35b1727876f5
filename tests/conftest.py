"""Shared helpers for the harness's own tests."""

from pathlib import Path

import pytest
from rapidocr import RapidOCR  # noqa: F401

from hil.machine import scaled

pytest_plugins = ["pytester"]  # the plugin and farm tests run pytest inside pytest
# rapidocr (and omegaconf, which holds its settings) imported before any in-process pytester run: such a run
# drops the modules first imported inside it, and an OCR engine made there (hil.vision.ocr keeps one per
# process) would then meet a re-imported omegaconf whose classes are not its own (RecursionError on its
# first read).

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "keyos-release-1.0.0"


@pytest.fixture
def release_1_0_0() -> Path:
    """The real KeyOS 1.0.0 files from ../shared; skipped where that folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data/keyos-release-1.0.0 is not present in this checkout")
    return SHARED_DATA


@pytest.fixture
def quick_hold(monkeypatch):
    """The PMIC's 10 s hard-off, shortened on both sides (an in-process emulator's and the relay's hold), so a
    power cycle through the relay takes a second and a half."""
    from hil.emulator import prime
    from hil.stimuli import boot_menu

    monkeypatch.setattr(prime, "HARD_OFF_SECONDS", 1.2)
    monkeypatch.setattr(boot_menu, "HARD_OFF_MS", 1500)


def run_minutes(item) -> float:
    """How long ``item`` runs, for ordering: a slow test's ``minutes`` (0 if none given), -1 for the others."""
    slow = item.get_closest_marker("slow")
    return -1 if slow is None else slow.kwargs.get("minutes", 0)


def pytest_collection_modifyitems(config, items):
    """The hang limits (pytest-timeout's, per test) were set on an idle machine: scale them by how busy
    this one is, so that load makes a test slower, never red. The slow tests go first, the longest of them
    (``slow(minutes=N)``, N as last measured in `make test`) first of all (a stable sort, so a module keeps its
    order where its tests carry the same mark): `make test`'s workers do not sit idle at the end while one of
    them finishes a long one."""
    items.sort(key=run_minutes, reverse=True)
    default = float(config.getoption("timeout", None) or config.getini("timeout") or 0)
    for item in items:
        marker = item.get_closest_marker("timeout")
        seconds = float(marker.args[0]) if marker and marker.args else default
        if seconds > 0:
            item.add_marker(pytest.mark.timeout(scaled(seconds), **(marker.kwargs if marker else {})), append=False)
