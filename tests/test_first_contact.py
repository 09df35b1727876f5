"""--device=/dev/ttyACM0 on a unit whose tty is its SAM-BA ROM: flash the build (or boot the eMMC), then
take the KeyOS debug interface that enumerates on the same USB port path (the emulated Prime's pyusb
backend)."""

import pytest

from hil.emulator.build import Build
from hil.emulator.launcher import start_device
from hil.farm.first_contact import take_over
from hil.farm.station import Station
from hil.flash import emulated
from hil.link.resolve import SambaRom, open_client, profile_named

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


def test_a_samba_tty_is_flashed_with_the_build_given(unit, tmp_path):
    image = tmp_path / "boot-1.1.0.img"
    emulated.write_boot_image(image, Build(version="1.1.0", flavour="development"))
    device = take_over(_rom(unit), _station(unit), emulated.APPLET.read_bytes(), KEYS, firmware=image,
                       flavour="development", timeout=30)
    with open_client(device, PROFILE, station=_station(unit)) as client:
        assert client.version() == "1.1.0"
