"""`hil station commission`: each assumption about a bench checked on the unit; a miswired bench (camera
watching another unit, robot calibration 5 mm off) is named, not passed."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.lab.commission import commission
from hil.lab.config import RobotCalibration, load_lab
from hil.lab.station import bring_up
from farm_helpers import lab_in

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def lab(tmp_path):
    """The shipped lab with emu-2 a development unit: commissioning drives Settings' Developer Mode row."""
    path = lab_in(tmp_path)
    path.write_text(path.read_text().replace("seed: 2, flavour: production", "seed: 2, flavour: development"))
    return path


@pytest.mark.slow
def test_an_emulated_station_is_commissioned_and_its_calibration_stored(lab):
    r = CliRunner().invoke(app, ["station", "commission", "emu-2", "--lab", str(lab)])
    assert r.exit_code == 0, r.output
    for what in ("link and version", "camera mode and panel location", "camera watches this unit",
                 "robot calibration", "power-button relay", "Boot Menu", "NFC reader modes"):
        assert f"verified  {what}" in r.output
    assert "brought up SAM-BA on" in r.output and "booted KeyOS again" in r.output
    assert "the camera read it and its entry at" in r.output  # seed 2 moves the entry off the profile's point
    assert "could not verify: pixel order" in r.output and "could not verify: pixel order," not in r.output
    stored = json.loads((lab.parent / "state" / "commission" / "emu-2.json").read_text())
    assert stored["measured"]["version"] == "1.0.0" and len(stored["measured"]["camera_corners"]) == 4


@pytest.mark.slow(minutes=1)
def test_a_miswired_station_is_named(lab):
    cfg = load_lab(lab)
    with bring_up(cfg, "emu-2") as st, bring_up(cfg, "emu-3") as other:
        off = RobotCalibration(points=tuple((px, (mm[0], mm[1] + 5.0)) for px, mm in st.robot_calibration.points))
        miswired = st.model_copy(update={"camera": other.camera, "robot_calibration": off, "samba": other.samba})
        found = {f.what: f for f in commission(miswired, cfg.state_dir, "123456")}
    assert found["camera watches this unit"].verified is False
    assert "shows serial EMU-0201 but the camera reads none: the camera points elsewhere" in \
        found["camera watches this unit"].detail  # the other unit shows its lock screen
    assert found["robot calibration"].verified is False
    assert "missed its" in found["robot calibration"].detail and "hil touch calibrate" in found["robot calibration"].detail
    assert found["Boot Menu"].verified is False
    assert f"SAM-BA does not answer on {other.samba}" in found["Boot Menu"].detail, found["Boot Menu"].detail
    assert "then KeyOS did not answer" not in found["Boot Menu"].detail  # the relay's power cycle brought it back


@pytest.mark.slow
def test_a_production_station_reports_its_boot_menu_and_reaches_samba_by_the_cd_pads(tmp_path, quick_hold):
    """A production unit: the camera reads its Boot Menu without a SAM-BA entry (a device fact, stored), and the
    CD relay's short at power-on brings up SAM-BA; KeyOS answers again after each."""
    from hil.emulator.build import Build
    from hil.emulator.launcher import start_device
    from hil.lab.station import Station
    from hil.profile import profile_named

    d = start_device(1, 3, Build(flavour="production"))
    try:
        profile = profile_named("prime-emulated").model_copy(update={"cd_pads_hold_s": 0.2})
        station = Station.from_endpoints("emu-p", profile, d.endpoints, flavour="production")
        found = {f.what: f for f in commission(station, tmp_path, "123456")}
        logs = d.prime.logs_since(0)[0]
    finally:
        d.stop()
    menu, pads = found["production Boot Menu has no SAM-BA entry"], found["SAM-BA by the CD pads"]
    assert menu.verified is True, menu.detail
    assert pads.verified is True and f"SAM-BA answered on {station.samba}" in pads.detail, pads.detail
    assert "Boot Menu" not in found  # no attempt at the development route
    assert "ERROR:boot: the CD pads are shorted: the ROM skips the eMMC" in logs
    stored = json.loads((tmp_path / "commission" / "emu-p.json").read_text())
    assert stored["measured"]["boot_menu_samba_entry"] is False


@pytest.mark.slow
def test_a_boot_menu_with_the_samba_entry_on_a_production_station_is_wrong(tmp_path, quick_hold):
    """The device fact can fail: a station declared production whose unit's Boot Menu shows the SAM-BA entry
    (a development bootloader) is named, with the fix."""
    from hil.emulator.build import Build
    from hil.emulator.launcher import start_device
    from hil.lab.commission import Commissioning
    from hil.lab.station import Station
    from hil.profile import profile_named

    d = start_device(1, 3, Build(flavour="development"))
    try:
        station = Station.from_endpoints("emu-p", profile_named("prime-emulated"), d.endpoints, flavour="production")
        walk = Commissioning(station, tmp_path, "123456")
        walk.note("link and version", True, "KeyOS answers")  # what the walk found before the Boot Menu step
        walk._production_boot_menu()
    finally:
        d.stop()
    menu = walk.findings[-1]
    assert (menu.what, menu.verified) == ("production Boot Menu has no SAM-BA entry", False), menu.detail
    assert "this unit's bootloader is not production" in menu.detail and walk.measured["boot_menu_samba_entry"] is True
