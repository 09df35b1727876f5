"""The firmware lane reads the unit's own build in the first case's trip into SAM-BA (issue 19: no trip of its own),
and never leaves the unit in the monitor: a case that ends before its write boots it back, and a read build that is
not the one KeyOS reported is broken. Scripted unit (no emulator): what the lane asks of SAM-BA and of KeyOS."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import coincurve
import pytest

from hil.flash import cosign2
from hil.flash.flasher import FlashFailed
from hil.flash.samba import SambaError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "suites" / "security"))
with warnings.catch_warnings():  # its markers are registered by the suites' conftest, not loaded here
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    import test_firmware as lane  # noqa: E402

GOOD = cosign2.sign(b"keyos" * 100, coincurve.PrivateKey(), version="1.2.0", timestamp=1_700_000_000)


class FakeKeyOS:
    def __init__(self, running: str | None, log: list[str]):
        self.running, self.log, self.client = running, log, object()

    def version(self):
        return self.running

    def leave(self):
        self.log.append("leave")

    def wait(self, version):
        self.log.append(f"wait {version}")

    def rejoin(self):
        self.log.append("rejoin")


class FakeSamba:
    def __init__(self, log: list[str]):
        self.log = log

    def connect(self, timeout=None):
        self.log.append("connect")

    def reboot_to_normal(self):
        self.log.append("reboot")

    def close(self):
        self.log.append("close")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def log(monkeypatch) -> list[str]:
    log: list[str] = []

    def read(station, enter_samba, applet):
        enter_samba()
        log.append("read")
        return GOOD
    monkeypatch.setattr(lane, "_read_installed", read)
    monkeypatch.setattr(lane.Samba, "open", classmethod(lambda cls, url, timeout=0: FakeSamba(log)))
    return log


def unit_with(running: str | None, log: list[str]) -> lane.Unit:
    station = type("Station", (), {"samba": "pty", "name": "s1"})()
    return lane.Unit(station, FakeKeyOS(running, log), lambda: log.append("enter"), b"", None, "production")


def test_the_first_case_reads_the_build_in_its_own_trip_and_leaves_the_monitor_up(log):
    unit = unit_with("1.2.0", log)
    assert unit.leave_with(lambda good: good[::-1]) == GOOD[::-1]
    assert log == ["leave", "enter", "read"] and unit.good == GOOD  # no reboot: the case writes in this trip
    log.clear()
    assert unit.leave_with(lambda good: good) == GOOD
    assert log == ["leave"]  # read once per unit


def test_a_case_that_ends_before_its_write_boots_the_unit_back(log):
    unit = unit_with("1.2.0", log)

    def skipped(good):
        pytest.skip("no lab signers")
    with pytest.raises(pytest.skip.Exception):
        unit.leave_with(skipped)
    assert log == ["leave", "enter", "read", "connect", "reboot", "wait 1.2.0", "close", "rejoin"]  # port held till KeyOS
    assert unit.good == GOOD


def test_a_read_build_that_is_not_the_running_one_is_broken(log):
    unit = unit_with("1.1.0", log)
    with pytest.raises(FlashFailed, match=r"reports KeyOS 1\.1\.0, but its eMMC's keyos/app\.bin is 1\.2\.0"):
        unit.leave_with(lambda good: good)
    assert log[-5:] == ["connect", "reboot", "wait 1.1.0", "close", "rejoin"] and unit.good is None


def test_a_unit_that_does_not_leave_the_monitor_is_broken(log, monkeypatch):
    unit = unit_with(None, log)  # no debug link: nothing reports a version

    def no_monitor(self, timeout=None):
        raise SambaError("pty: no SAM-BA monitor answered N#")
    monkeypatch.setattr(FakeSamba, "connect", no_monitor)
    with pytest.raises(FlashFailed, match="after Skipped: no lab signers, the unit did not leave SAM-BA"):
        unit.leave_with(lambda good: pytest.skip("no lab signers"))


def test_a_build_that_cannot_be_read_is_broken_once_for_every_case(log, monkeypatch):
    """A unit whose eMMC holds no app.bin is a lab fault (FlashFailed: broken), not a device that failed a check;
    the module's later cases end broken on it without another trip into SAM-BA."""
    def unreadable(station, enter_samba, applet):
        enter_samba()
        raise FlashFailed("the unit's eMMC holds no keyos/app.bin: no build to vary")
    monkeypatch.setattr(lane, "_read_installed", unreadable)
    unit = unit_with("1.2.0", log)
    with pytest.raises(FlashFailed, match="no keyos/app.bin"):
        unit.leave_with(lambda good: good)
    log.clear()
    with pytest.raises(FlashFailed, match="no keyos/app.bin"):
        unit.leave_with(lambda good: good)
    assert log == []
