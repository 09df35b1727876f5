"""The bootloader's Boot Menu by the power button (keyos.md §3.5), the harness's ``enter_samba`` through
the station's relay and robot, and the bootloader's seeded defects."""

from __future__ import annotations

import pytest
from PIL import ImageChops

from hil.emulator import bootloader
from hil.emulator import prime as prime_module
from hil.emulator.build import Build
from hil.emulator.defects import Defects
from hil.emulator.emmc import Emmc
from hil.emulator.launcher import start_device
from hil.errors import ConfigError
from hil.lab.station import Station
from hil.flash import bootimg, cosign2, emulated
from hil.flash.flasher import Flasher, load_firmware
from hil.flash.samba import Samba
from hil.link.resolve import open_client
from hil.profile import profile_named
from hil.stimuli.boot_menu import can_enter_samba, enter_samba, station_enter_samba
from tests.test_flash_boot import install

PROFILE = profile_named("prime-emulated")
SAMBA_ENTRY = PROFILE.touch.boot_menu_samba
SIGNERS = cosign2.load_keyset(emulated.TEST_SIGNERS)
KNOWN = emulated.keyset("test").pubkeys


class Clock:
    """The Prime's clock, moved by the test (the button's timing without waiting for it)."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def unit(monkeypatch, request):
    d = start_device(1, getattr(request, "param", 0), Build(flavour="production"))
    clock = Clock()
    monkeypatch.setattr(prime_module, "time", clock)
    with d.prime.lock:
        d.prime.reboot()  # boot again on the test's clock
    yield d.prime, clock
    d.stop()


def click(prime, clock, hold: float = 0.2, gap: float = 0.2) -> None:
    prime.power_button(down=True)
    clock.now += hold
    prime.power_button(down=False)
    clock.now += gap


def shown(prime, image) -> bool:
    return ImageChops.difference(prime.framebuffer().convert("RGB"), image.convert("RGB")).getbbox() is None


def test_hold_then_three_clicks_opens_the_boot_menu_and_its_samba_entry(unit):
    prime, clock = unit
    clock.now += 2  # booted, KeyOS running
    assert prime.keyos_running
    click(prime, clock, hold=10.5)
    assert not prime.powered  # the PMIC cut power
    for _ in range(3):
        click(prime, clock)
    assert prime.firmware.mode == "menu" and not prime.keyos_running and not prime.debug_available()
    assert shown(prime, bootloader.menu_page())
    prime.touch(*SAMBA_ENTRY)
    assert prime.firmware.mode == "samba" and prime.firmware.monitor.active
    assert "INFO:boot: Boot Menu: SAM-BA mode" in prime.logs_since(0)[0]


def test_the_boot_menu_is_reachable_from_the_error_page(unit):
    prime, clock = unit
    prime.firmware.anti_rollback.raise_to(2**32 - 1)  # what is installed is now a rollback
    prime.reboot()
    clock.now += 2
    assert prime.firmware.mode == "error" and shown(prime, bootloader.error_page())
    click(prime, clock, hold=10.5)
    for _ in range(3):
        click(prime, clock)
    assert prime.firmware.mode == "menu"


def test_two_clicks_from_off_boot_keyos(unit):
    prime, clock = unit
    click(prime, clock, hold=10.5)
    click(prime, clock)  # powers on: its release comes before keyos-boot watches the button
    click(prime, clock)
    clock.now += 2
    assert prime.firmware.mode == "keyos" and prime.keyos_running and not prime.booting


def test_clicks_after_the_logo_are_keyos_presses(unit):
    prime, clock = unit
    clock.now += 2
    click(prime, clock)
    click(prime, clock)
    assert prime.firmware.mode == "keyos" and prime.keyos_running
    assert prime.screen_on  # short press: off, then on again (KeyOS's, not the bootloader's)
    click(prime, clock, hold=3.0)
    assert prime.powered and prime.ui.control_center_open  # long press under 10 s: the control center


@pytest.mark.parametrize("entry, mode", [("continue", "keyos"), ("shut_down", None)])
def test_other_boot_menu_entries(unit, entry, mode):
    prime, clock = unit
    for _ in range(2):
        click(prime, clock)  # at the logo of the boot the fixture started
    assert prime.firmware.mode == "menu"
    x0, y0, x1, y1 = bootloader.menu_buttons(prime.seed)[entry][0]
    prime.touch((x0 + x1) // 2, (y0 + y1) // 2)
    if mode is None:
        assert not prime.powered
    else:
        assert prime.firmware.mode == mode and prime.keyos_running


@pytest.mark.parametrize("unit", [2, 3, 4], indirect=True)
def test_other_seeds_move_the_samba_entry_off_the_profile_point(unit):
    """A point remembered from one unit's Boot Menu taps something else on another's: only reading the
    entry off the screen finds it."""
    prime, clock = unit
    for _ in range(2):
        click(prime, clock)
    assert prime.firmware.mode == "menu" and shown(prime, bootloader.menu_page(prime.seed))
    prime.touch(*SAMBA_ENTRY)
    assert prime.firmware.mode == "menu" and not prime.firmware.monitor.active
    x0, y0, x1, y1 = bootloader.menu_buttons(prime.seed)["samba"][0]
    prime.touch((x0 + x1) // 2, (y0 + y1) // 2)
    assert prime.firmware.mode == "samba"


def test_the_menu_reads_as_keyos_boot_draws_it():
    """boot/keyos-boot/src/menu_page.rs: the title, the three entries, the two buttons, as OCR reads them."""
    import cv2
    import numpy as np

    from hil.stimuli.boot_menu import SAMBA_ENTRY as LABEL
    from hil.vision.controls import normal
    from hil.vision.display import read_image

    image = cv2.cvtColor(np.asarray(bootloader.menu_page(3).convert("RGB")), cv2.COLOR_RGB2BGR)
    read = {normal(line.text) for line in read_image(image).lines}
    for label in (PROFILE.bootloader_titles["menu"], "System Information", "Recovery", LABEL, "Start KeyOS",
                  "Shut Down"):
        assert normal(label) in read, (label, read)


# ------------------------------------------------------------ the harness side

def test_enter_samba_needs_the_profile_coordinate():
    with pytest.raises(ConfigError, match="touch.boot_menu_samba"):
        enter_samba(relay=None, touch=None, samba_entry=None)


class Pressed:
    """What the relay and the robot were asked to do, and every pause in between (none taken)."""

    def __init__(self):
        self.log: list = []

    def press(self, hold_ms=None):
        self.log.append(("press", hold_ms))

    def tap(self, x, y):
        self.log.append(("tap", (x, y)))

    def sleep(self, seconds):
        self.log.append(("sleep", seconds))


@pytest.mark.parametrize("watched", [True, False], ids=["camera", "blind"])
def test_only_a_blind_bench_waits_for_the_boot_menu_to_draw(monkeypatch, watched):
    """With a camera the tap waits on the menu showing (find_entry's own deadline): no pause after the clicks
    but the relay's physical gaps; without one, the profile's settle time, then the profile's point."""
    from hil.stimuli import boot_menu

    bench = Pressed()
    monkeypatch.setattr(boot_menu, "time", bench)
    find = (lambda: bench.log.append(("read", None)) or (11, 22)) if watched else None
    enter_samba(bench, bench, SAMBA_ENTRY, find, blind_settle_s=PROFILE.touch.boot_menu_settle_s)
    clicks = [("press", boot_menu.HARD_OFF_MS), ("sleep", boot_menu.CLICK_GAP_S)] + \
        [("press", None), ("sleep", boot_menu.CLICK_GAP_S)] * boot_menu.CLICKS
    wait = [("read", None), ("tap", (11, 22))] if watched else \
        [("sleep", PROFILE.touch.boot_menu_settle_s), ("tap", SAMBA_ENTRY)]
    assert bench.log == clicks + wait


def test_stations_without_relay_or_robot_say_why():
    station = Station(name="bench-1", profile=profile_named("prime-rev-b"), samba="/dev/ttyACM1")
    assert can_enter_samba(station) == ("station bench-1 has no power-button relay or stylus robot to reach "
                                        "SAM-BA through the Boot Menu")
    wired = Station(name="bench-1", profile=profile_named("prime-rev-b"), samba="/dev/ttyACM1",
                    relay="/dev/ttyACM2", robot="/dev/ttyUSB0")
    assert can_enter_samba(wired) == ("station bench-1 has no camera to read the Boot Menu by, and device profile "
                                      "prime-rev-b has no touch.boot_menu_samba")
    assert can_enter_samba(wired.model_copy(update={"camera": "/dev/video0"})) is None  # it reads the entry
    with pytest.raises(ConfigError):
        with station_enter_samba(station):
            pass


def test_flasher_updates_a_production_unit_through_the_boot_menu(tmp_path):
    """Production refuses REBOOT_SAMBA: the relay and robot press the sequence, then GET_VERSION. This bench
    has no camera: the robot taps the profile's point, measured on this (classic) layout."""
    d = start_device(1, 0, Build(flavour="production", version="1.0.0"))
    try:
        station = Station.from_endpoints("emu", PROFILE, d.endpoints).model_copy(update={"camera": None})
        app = tmp_path / "app.bin"
        app.write_bytes(emulated.app_image(Build(flavour="production", version="1.0.1")))
        keys = emulated.keyset(PROFILE.firmware_keys)
        with station_enter_samba(station) as press:
            result = Flasher(station.samba, emulated.APPLET.read_bytes(), keys, timeout=30, enter_samba=press,
                             link=lambda: open_client(station.debug, station.profile)).flash(load_firmware(app, keys))
        assert (result.action, result.version) == ("updated", "1.0.1")
        assert "INFO:boot: Boot Menu: SAM-BA mode" in d.prime.logs_since(0)[0]
    finally:
        d.stop()


def test_relay_sequence_recovers_a_unit_from_the_error_page(tmp_path):
    """On a layout the profile's point misses (seed 2), the robot taps the entry where the camera reads it."""
    d = start_device(1, 2, Build(flavour="development"))
    try:
        station = Station.from_endpoints("emu", PROFILE, d.endpoints)
        with d.prime.lock:
            d.prime.firmware.anti_rollback.raise_to(2**32 - 1)
            d.prime.reboot()
        assert d.prime.firmware.mode == "error"
        with station_enter_samba(station) as press:
            press()
            with Samba.open(station.samba, timeout=5) as samba:
                samba.connect(timeout=10)  # the ROM monitor answers: the unit is in SAM-BA
        assert "INFO:boot: Boot Menu: SAM-BA mode" in d.prime.logs_since(0)[0]
    finally:
        d.stop()


# ------------------------------------------------------------ the bootloader's seeded defects

@pytest.fixture
def emmc(tmp_path):
    path = tmp_path / "emmc.img"
    emulated.write_boot_image(path, Build(version="1.0.0"))
    e = Emmc(path, bootimg.EMULATED.total_bytes)
    yield e
    e.close()


def _signed(payload: bytes, both: bool = True, **fields) -> bytes:
    image = cosign2.sign(payload, SIGNERS.signer("test-signer-1").private_key(), version="1.0.0", **fields)
    return cosign2.add_second_signature(image, SIGNERS.signer("test-signer-2").private_key()) if both else image


@pytest.mark.parametrize("defect, image", [
    ("bootloader-accepts-partially-trusted", lambda p, ts: _signed(p, both=False, timestamp=ts)),
    ("bootloader-ignores-chip", lambda p, ts: _signed(p, timestamp=ts, magic=cosign2.Magic.NRF52_BLE)),
    ("bootloader-ignores-anti-rollback", lambda p, ts: _signed(p, timestamp=ts - 60)),
])
def test_each_bootloader_defect_removes_exactly_its_check(emmc, tmp_path, defect, image):
    ts = emulated.default_timestamp("1.0.0")
    install(emmc, image(Build(version="1.0.0").payload(), ts))
    ar = bootloader.AntiRollback(tmp_path / "ts")
    ar.raise_to(ts)
    assert bootloader.boot(emmc, KNOWN, ar).mode == "error"
    assert bootloader.boot(emmc, KNOWN, ar, Defects.of([defect])).mode == "keyos"
    others = [d for d in ("bootloader-accepts-partially-trusted", "bootloader-ignores-chip",
                          "bootloader-ignores-anti-rollback") if d != defect]
    assert bootloader.boot(emmc, KNOWN, ar, Defects.of(others)).mode == "error"


def test_hil_flash_checks_images_against_the_profiles_trust_set(tmp_path):
    """Test-signed: refused for a rev B unit (production signers) before it is touched."""
    import typer
    from typer.testing import CliRunner

    from hil.flash.cli import flash

    app = typer.Typer()
    app.command("flash")(flash)
    app.command("noop")(lambda: None)
    image = tmp_path / "app.bin"
    image.write_bytes(emulated.app_image(Build(version="1.0.1")))
    refused = CliRunner().invoke(app, ["flash", str(image), "--device", "tcp:127.0.0.1:9", "--samba", "/dev/null",
                                       "--profile", "prime-rev-b"])
    assert refused.exit_code == 1 and "unknown pubkey1" in refused.stderr
    accepted = CliRunner().invoke(app, ["flash", str(image), "--device", "tcp:127.0.0.1:9", "--samba", "/dev/null",
                                        "--profile", "prime-emulated"])
    assert "cannot put the device in SAM-BA mode" in accepted.stderr  # past the image check: no device there
