"""--device=/dev/ttyACM0 on a unit whose tty is its SAM-BA ROM: flash the build (or boot the eMMC), then
take the KeyOS debug interface that enumerates on the same USB port path (the emulated Prime's pyusb
backend)."""

import time

import pytest

from hil.emulator.build import Build
from hil.emulator.launcher import start_device
from hil.lab.first_contact import take_over
from hil.lab.station import Station
from hil.flash import emulated
from hil.link.resolve import open_client, SambaRom
from hil.profile import profile_named

KEYS = emulated.keyset("test")
PROFILE = profile_named("prime-emulated")


@pytest.fixture
def unit():
    d = start_device(1, 0, Build(version="1.0.0", flavour="development"))
    with d.prime.lock:
        d.prime.reboot_to_samba()  # as REBOOT_SAMBA does: the only tty left is the ROM's
    yield d
    d.stop()


def _rom(unit) -> SambaRom:
    return SambaRom("in SAM-BA", unit.endpoints["samba"], "1-1")  # the emulated backend's port path


def _station(unit) -> Station:
    return Station.from_endpoints("desk", PROFILE, unit.endpoints)


def test_a_samba_tty_boots_the_emmc_and_takes_keyos_on_the_same_port(unit):
    device = take_over(_rom(unit), _station(unit), emulated.APPLET.read_bytes(), KEYS, timeout=30)
    assert device == "usb:1-1"
    with open_client(device, PROFILE, station=_station(unit)) as client:
        assert client.version() == "1.0.0"
    from hil.lab.unit_state import UnitState, unit_state
    deadline = time.monotonic() + 30
    while (state := unit_state(_station(unit))) is UnitState.BOOTING and time.monotonic() < deadline:
        time.sleep(0.1)  # KeyOS answers, its GUI still starting
    assert state is UnitState.LOCKED


def test_a_samba_tty_is_flashed_with_the_build_given(unit, tmp_path):
    image = tmp_path / "boot-1.1.0.img"
    emulated.write_boot_image(image, Build(version="1.1.0", flavour="development"))
    device = take_over(_rom(unit), _station(unit), emulated.APPLET.read_bytes(), KEYS, firmware=image,
                       flavour="development", timeout=30)
    with open_client(device, PROFILE, station=_station(unit)) as client:
        assert client.version() == "1.1.0"


def test_unit_state_without_keyos_comes_from_the_rom_or_the_screen(unit):
    """SAM-BA answers on its port; the Boot Menu is read off the panel by the camera (no KeyOS either way)."""
    from hil.lab.unit_state import UnitState, unit_state

    station = _station(unit)
    assert unit_state(station, timeout=5) is UnitState.SAMBA
    with unit.prime.lock:
        unit.prime.firmware.monitor.leave()
        unit.prime.firmware.boot_menu()
        unit.prime.invalidate()
    assert unit_state(station, timeout=5) is UnitState.BOOT_MENU
