"""--device=/dev/ttyACM0 on a unit whose tty is its SAM-BA ROM: flash the build (or boot the eMMC), then
take the KeyOS debug interface that enumerates on the same USB port path, and back (the emulated Prime
re-enumerates on one port of its emulated host: sysfs, /dev/serial/by-path, its pyusb backend)."""

import os
import time
from pathlib import Path

import pytest

from hil.emulator.build import Build
from hil.emulator.launcher import start_device
from hil.emulator import usb_host
from hil.lab.first_contact import back_to_samba, take_over
from hil.lab.station import Station
from hil.flash import emulated
from hil.link.resolve import DeviceNotFound, SambaRom, open_client, resolve_tty, transport_for
from hil.link.transport import LinkClosed
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
    """What --device=<the ROM's tty> resolves to, through the emulated host's sysfs."""
    with pytest.raises(SambaRom) as e:
        transport_for(unit.endpoints["samba"], PROFILE)
    return e.value


def _by_path(unit) -> Path:
    """udev's stable name for the tty on the unit's port (dummy_hcd.K carries bus K+1)."""
    bus = int(unit.endpoints["usb_port"].split("-")[0])
    return usb_host.DEV / "serial" / "by-path" / f"platform-dummy_hcd.{bus - 1}-usb-0:1:1.0"


def _devnum(unit) -> int:
    return int((usb_host.SYS / "bus" / "usb" / "devices" / unit.endpoints["usb_port"] / "devnum").read_text())


def test_the_rom_tty_names_the_units_port_path(unit):
    """The pty and its by-path link both resolve, through sysfs's dev/char/MAJOR:MINOR, to the ROM at the
    unit's port path; in KeyOS the tty, the link and the ROM are gone and 1307:0165 is there instead."""
    port = unit.endpoints["usb_port"]
    assert _rom(unit).port == port and _rom(unit).tty == unit.endpoints["samba"]
    with pytest.raises(SambaRom, match=f"03eb:6124 'unnamed' at {port}") as e:
        resolve_tty(str(_by_path(unit)), usb_host.SYS)
    assert e.value.port == port and os.path.realpath(_by_path(unit)) == unit.endpoints["samba"]
    with pytest.raises(LinkClosed, match=f"no Prime at port {port}"):  # the ROM is no Prime to pyusb
        open_client(f"usb:{port}", PROFILE, station=_station(unit)).open()
    with unit.prime.lock:
        unit.prime.firmware.monitor.leave()
        unit.prime.reboot()  # boots the eMMC: KeyOS enumerates on the same port
    assert not _by_path(unit).exists()
    with pytest.raises(DeviceNotFound, match="sysfs has no device behind it"):
        transport_for(unit.endpoints["samba"], PROFILE)
    sysdir = usb_host.SYS / "bus" / "usb" / "devices" / port
    assert (sysdir / "idVendor").read_text().strip() + ":" + (sysdir / "idProduct").read_text().strip() == "1307:0165"


def test_keyos_and_samba_take_turns_on_one_port_path(unit):
    """ROM -> KeyOS (eMMC boot) -> REBOOT_SAMBA -> ROM -> KeyOS, each enumeration a fresh devnum, one port."""
    station, port = _station(unit), unit.endpoints["usb_port"]
    rom_devnum = _devnum(unit)
    assert take_over(_rom(unit), station, emulated.APPLET.read_bytes(), KEYS, timeout=30) == f"usb:{port}"
    assert _devnum(unit) > rom_devnum
    rom = back_to_samba(port, station, timeout=30)
    assert rom.port == port
    with pytest.raises(SambaRom) as e:
        resolve_tty(rom.tty, usb_host.SYS)
    assert e.value.port == port
    assert take_over(rom, station, emulated.APPLET.read_bytes(), KEYS, timeout=30) == f"usb:{port}"
    with open_client(f"usb:{port}", PROFILE, station=station) as client:
        assert client.version() == "1.0.0"


def test_pytest_device_is_the_roms_tty(unit, pytester, tmp_path):
    """`pytest --device=/dev/serial/by-path/… --firmware boot.img`: the plugin flashes the build through the
    ROM and the test runs against the KeyOS that enumerates on that port, over its USB debug interface."""
    image = tmp_path / "boot-1.2.0.img"
    emulated.write_boot_image(image, Build(version="1.2.0", flavour="development"))
    pytester.makepyfile("""
        def test_version(device_under_test):
            assert device_under_test.station.debug.startswith("usb:")
            assert device_under_test.client.version() == "1.2.0"
    """)
    result = pytester.runpytest("-p", "no:labgrid", "-p", "no:cacheprovider", "--device", str(_by_path(unit)),
                                "--profile", "prime-emulated", "--firmware", str(image), "--flavour", "development")
    result.assert_outcomes(passed=1)


def _station(unit) -> Station:
    return Station.from_endpoints("desk", PROFILE, unit.endpoints)


def test_a_samba_tty_boots_the_emmc_and_takes_keyos_on_the_same_port(unit):
    device = take_over(_rom(unit), _station(unit), emulated.APPLET.read_bytes(), KEYS, timeout=30)
    assert device == f"usb:{unit.endpoints['usb_port']}"
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


def test_error_page_and_off_are_told_apart_and_enumerate_nothing(unit):
    """keyos-boot's error page (an app.bin it cannot verify) and a unit without power: neither KeyOS nor the
    ROM answers; the camera tells them apart, and the port path shows no device either way."""
    from hil.flash import bootimg
    from hil.lab.unit_state import UnitState, unit_state

    station = _station(unit)
    sysdir = usb_host.SYS / "bus" / "usb" / "devices" / unit.endpoints["usb_port"]
    with unit.prime.lock, open(unit.prime.firmware.emmc.path, "r+b") as fp:
        system = bootimg.partition_table(fp.read(512))[1]
        with bootimg.mount(fp, system) as fs:
            fs.remove(bootimg.APP_IMAGE)
            fs.writebytes(bootimg.APP_IMAGE, b"\x7fELF" + bytes(5000))  # no cosign2 header
        unit.prime.firmware.monitor.leave()
        unit.prime.reboot()
    assert unit_state(station, timeout=3) is UnitState.BOOTLOADER_ERROR
    assert not sysdir.exists()
    with unit.prime.lock:
        unit.prime.power_cut()
    assert unit_state(station, timeout=3) is UnitState.OFF
    assert not sysdir.exists()


def test_the_flasher_follows_the_by_path_name_from_keyos_into_the_rom(unit, tmp_path):
    """A station wired by its stable name (/dev/serial/by-path/…): absent while KeyOS runs, it appears when
    REBOOT_SAMBA brings the ROM up on that port, and the Flasher flashes through it and sees KeyOS back."""
    from hil.flash.flasher import Flasher, boot_policy, load_firmware

    station, port = _station(unit), unit.endpoints["usb_port"]
    take_over(_rom(unit), station, emulated.APPLET.read_bytes(), KEYS, timeout=30)  # the unit runs KeyOS
    assert not _by_path(unit).exists()
    image = tmp_path / "boot-1.3.0.img"
    emulated.write_boot_image(image, Build(version="1.3.0", flavour="development"))
    firmware = load_firmware(image, KEYS, boot_policy(PROFILE.boots("development")))

    def link():
        return open_client(f"usb:{port}", PROFILE, station=station)

    result = Flasher(str(_by_path(unit)), emulated.APPLET.read_bytes(), KEYS, link=link, timeout=30).flash(firmware)
    assert result.version == "1.3.0" and not _by_path(unit).exists()


def test_back_to_samba_takes_a_production_unit_by_its_cd_pads(quick_hold):
    """Production refuses REBOOT_SAMBA and its Boot Menu has no SAM-BA entry: `back_to_samba` goes the
    station's route, the jig's relay across the CD pads, and finds the ROM on the same port path; a station
    without that relay is told so in one line, and its unit is left in KeyOS."""
    from hil.errors import ConfigError

    d = start_device(1, 0, Build(version="1.0.0", flavour="production"))
    try:
        profile = PROFILE.model_copy(update={"cd_pads_hold_s": 0.2})
        station = Station.from_endpoints("desk", profile, d.endpoints, flavour="production")
        port = d.endpoints["usb_port"]
        with pytest.raises(ConfigError, match=r"REBOOT_SAMBA.*`cd_relay` in lab_config.yaml") as e:
            back_to_samba(port, station.model_copy(update={"cd_relay": None}), timeout=30)
        assert "\n" not in str(e.value) and d.prime.keyos_running
        rom = back_to_samba(port, station, timeout=30)
        assert rom.port == port and rom.tty == d.endpoints["samba"]
        logs = d.prime.logs_since(0)[0]
        assert "ERROR:boot: the CD pads are shorted: the ROM skips the eMMC" in logs
        assert not any("Boot Menu" in line for line in logs)
    finally:
        d.stop()


def test_hil_flash_finds_the_rom_from_the_device_without_samba(unit, tmp_path):
    """`hil flash --device <the ROM's tty>` flashes there; `--device usb:BUS-PORT` on a unit running KeyOS takes
    it to its ROM on that port path (REBOOT_SAMBA on this development unit): no --samba either way."""
    import typer
    from typer.testing import CliRunner

    from hil.flash.cli import flash

    app = typer.Typer()
    app.command("flash")(flash)
    app.command("noop")(lambda: None)
    port = unit.endpoints["usb_port"]
    image = tmp_path / "boot-1.1.0.img"
    emulated.write_boot_image(image, Build(version="1.1.0", flavour="development"))
    common = ["--profile", "prime-emulated", "--flavour", "development", "--keys", "test"]
    r = CliRunner().invoke(app, ["flash", str(image), "--device", str(_by_path(unit)), *common])
    assert r.exit_code == 0 and "flashed" in r.output and "KeyOS 1.1.0" in r.output, r.output
    app_bin = tmp_path / "app.bin"
    app_bin.write_bytes(emulated.app_image(Build(version="1.2.0", flavour="development")))
    r = CliRunner().invoke(app, ["flash", str(app_bin), "--device", f"usb:{port}", *common])
    assert r.exit_code == 0 and "updated" in r.output and "KeyOS 1.2.0" in r.output, r.output
    with open_client(f"usb:{port}", PROFILE, station=_station(unit)) as client:
        assert client.version() == "1.2.0"


def test_hil_flash_without_the_link_holds_the_rom_until_keyos_enumerates_on_its_port(tmp_path, monkeypatch):
    """A production build without usb-debug (issue 14 point 7) reports no version to wait for; the reset out
    of SAM-BA is never answered, and a bench's ser2net drops a client's last bytes when it hangs up at once.
    `hil flash` holds the monitor's port until the unit's KeyOS identity enumerates on its port path, and never
    waits on a link the build does not have."""
    import typer
    from typer.testing import CliRunner

    from hil.flash.cli import flash
    from hil.flash.samba import Samba
    from hil.profile import Profile

    d = start_device(1, 0, Build(version="1.0.0", flavour="production"))
    try:
        port = d.endpoints["usb_port"]
        with d.prime.lock:
            d.prime.set_developer_mode(False)  # no vendor interface: KeyOS shows mass storage and CTAP HID only
            d.prime.reboot_to_samba()
        monkeypatch.setattr(Profile, "link_missing", lambda self, flavour: "no usb-debug in this build"
                            if flavour == "production" else None)
        sysdir, at_close = usb_host.SYS / "bus" / "usb" / "devices" / port, []

        def enumerated() -> str:  # what the port shows as the monitor's port is let go
            return ":".join((sysdir / n).read_text().strip() if (sysdir / n).exists() else "-"
                            for n in ("idVendor", "idProduct"))
        close = Samba.close
        monkeypatch.setattr(Samba, "close", lambda self: (at_close.append(enumerated()), close(self))[1])
        image = tmp_path / "boot-1.1.0.img"
        emulated.write_boot_image(image, Build(version="1.1.0", flavour="production"))
        app = typer.Typer()
        app.command("flash")(flash)
        app.command("noop")(lambda: None)
        r = CliRunner().invoke(app, ["flash", str(image), "--device", str(_by_path(d)), "--profile", "prime-emulated",
                                     "--flavour", "production", "--keys", "test"])
        assert r.exit_code == 0 and "flashed" in r.output and "KeyOS 1.1.0" in r.output, r.output
        assert at_close[-1] == PROFILE.usb.keyos, at_close  # KeyOS was there before the port was let go
        assert d.prime.keyos_running and d.prime.build.version == "1.1.0"
    finally:
        d.stop()
