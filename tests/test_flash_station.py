"""`hil flash --lab LAB --station NAME`: one station of the lab file flashed by the nightly's flasher, under its
lease, into SAM-BA by the station's own route (an emulated production unit: the jig's relay across the CD pads)."""

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hil.emulator.build import Build
from hil.flash import emulated
from hil.flash.cli import flash
from hil.lab.lease import FileLeases

ROOT = Path(__file__).resolve().parents[1]
HOLD = """
import sys
from hil.lab.lease import FileLeases, Holder
lease = FileLeases(sys.argv[1]).acquire("emu-1", Holder.me("nightly", "run-1"))
print("leased", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def lab(tmp_path):
    """The repository's emulated lab with one station, its paths absolute and its state under ``tmp_path``."""
    text = (ROOT / "lab_config.yaml").read_text()
    for key, val in (("state_dir: .hil", f"state_dir: {tmp_path / 'state'}"),
                     ("profiles_dir: device_profiles", f"profiles_dir: {ROOT / 'device_profiles'}"),
                     ("signoff_criteria: signoff_criteria.emulated.yaml",
                      f"signoff_criteria: {ROOT / 'signoff_criteria.emulated.yaml'}"),
                     ("samba_applet: firmware", f"samba_applet: {ROOT / 'firmware'}")):
        text = text.replace(key, val)
    text = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith(("emu-2", "emu-3", "emu-4")))
    (tmp_path / "lab.yaml").write_text(text + "\n")
    return tmp_path / "lab.yaml"


def _flash(*args: str):
    app = typer.Typer()
    app.command("flash")(flash)
    app.command("noop")(lambda: None)
    return CliRunner().invoke(app, ["flash", *args])


def _app(tmp_path: Path, version: str) -> Path:
    image = tmp_path / f"app-{version}.bin"
    image.write_bytes(emulated.app_image(Build(flavour="production", version=version)))
    return image


def test_unknown_station_wrong_options_and_a_leased_station_are_one_line_each(tmp_path, lab):
    image = _app(tmp_path, "1.0.1")
    r = _flash(str(image), "--lab", str(lab), "--station", "emu-9")
    assert r.exit_code == 1 and r.stderr.strip() == f"error: no station 'emu-9' in {lab}; stations: emu-1"
    r = _flash(str(image), "--lab", str(lab))
    assert r.exit_code == 1 and "pass --station NAME" in r.stderr and "emu-1" in r.stderr
    r = _flash(str(image), "--station", "emu-1", "--lab", str(lab), "--samba", "/dev/ttyACM0", "--force")
    assert r.exit_code == 1 and r.stderr.strip().count("\n") == 0 and "--samba, --force: not with --lab/--station" in r.stderr
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "state")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline() == "leased\n"  # another process (a nightly) has the station
        r = _flash(str(image), "--lab", str(lab), "--station", "emu-1")
    finally:
        holder.communicate("")
    assert r.exit_code == 1 and r.stderr.strip().count("\n") == 0
    assert "error: station emu-1 is leased by nightly (pid" in r.stderr


@pytest.mark.slow
def test_a_production_station_is_flashed_through_its_cd_relay_as_the_nightly_does(tmp_path, lab):
    """The emulated production unit refuses REBOOT_SAMBA: the station's relay shorts the CD pads through a power
    cycle (the route `hil.stimuli.boot_menu` gives its flavour), the nightly's flasher writes the app.bin, and the
    unit reports the new version (the flasher waits for it)."""
    r = _flash(str(_app(tmp_path, "1.0.1")), "--lab", str(lab), "--station", "emu-1")
    assert r.exit_code == 0, r.stderr
    assert f"flashed station emu-1: {tmp_path / 'app-1.0.1.bin'}" in r.stderr
    assert FileLeases(tmp_path / "state").holder("emu-1") is None  # the lease is given back
