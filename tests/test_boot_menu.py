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
from hil.stimuli.boot_menu import can_enter_samba, enter_samba, flasher_route, route, station_enter_samba
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


def _unit(monkeypatch, seed: int, flavour: str):
    d = start_device(1, seed, Build(flavour=flavour))
    clock = Clock()
    monkeypatch.setattr(prime_module, "time", clock)
    with d.prime.lock:
        d.prime.reboot()  # boot again on the test's clock
    return d, clock


@pytest.fixture
def unit(monkeypatch, request):
    """A production unit (its bootloader's Boot Menu has no SAM-BA entry)."""
    d, clock = _unit(monkeypatch, getattr(request, "param", 0), "production")
    yield d.prime, clock
    d.stop()


@pytest.fixture
def dev_unit(monkeypatch, request):
    """A development unit (its Boot Menu has the "(Debug) SAM-BA mode" entry)."""
    d, clock = _unit(monkeypatch, getattr(request, "param", 0), "development")
    yield d.prime, clock
    d.stop()


def click(prime, clock, hold: float = 0.2, gap: float = 0.2) -> None:
    prime.power_button(down=True)
    clock.now += hold
    prime.power_button(down=False)
    clock.now += gap


def shown(prime, image) -> bool:
    return ImageChops.difference(prime.framebuffer().convert("RGB"), image.convert("RGB")).getbbox() is None


def test_hold_then_three_clicks_opens_the_boot_menu_and_its_samba_entry(dev_unit):
    prime, clock = dev_unit
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


def test_a_production_boot_menu_has_no_samba_entry(unit):
    """menu_page.rs adds "(Debug) SAM-BA mode" only cfg(not(feature = "production")): a production unit's menu
    draws System Information and Recovery alone, and a tap where a development menu has the entry does nothing."""
    prime, clock = unit
    for _ in range(2):
        click(prime, clock)  # at the logo of the boot the fixture started
    assert prime.firmware.mode == "menu"
    assert shown(prime, bootloader.menu_page(prime.seed, "production"))
    assert not shown(prime, bootloader.menu_page(prime.seed, "development"))
    assert "samba" not in bootloader.menu_buttons(prime.seed, "production")
    prime.touch(*SAMBA_ENTRY)
    x0, y0, x1, y1 = bootloader.menu_buttons(prime.seed, "production")["recovery"][0]
    prime.touch((x0 + x1) // 2, (y0 + y1) // 2)  # Recovery: logged, no recovery image emulated
    assert prime.firmware.mode == "menu" and not prime.firmware.monitor.active


def test_cd_pads_shorted_at_power_on_start_samba_on_any_flavour(unit):
    """The ROM, not keyos-boot: with the CD pads shorted it skips the eMMC (DEVELOPMENT.md "Recovering a Bricked
    Device"); the short lifted, the next power-on boots KeyOS again."""
    prime, clock = unit
    clock.now += 2
    prime.cd_pads_shorted = True
    click(prime, clock, hold=10.5)
    click(prime, clock)
    assert prime.firmware.mode == "samba" and prime.firmware.monitor.active and not prime.keyos_running
    assert "ERROR:boot: the CD pads are shorted: the ROM skips the eMMC" in prime.logs_since(0)[0]
    prime.cd_pads_shorted = False
    click(prime, clock, hold=10.5)
    click(prime, clock)
    clock.now += 2
    assert prime.firmware.mode == "keyos" and prime.keyos_running


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


@pytest.mark.parametrize("dev_unit", [2, 3, 4], indirect=True)
def test_other_seeds_move_the_samba_entry_off_the_profile_point(dev_unit):
    """A point remembered from one unit's Boot Menu taps something else on another's: only reading the
    entry off the screen finds it."""
    prime, clock = dev_unit
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


class Page:
    """A camera's `Display` that sees one bootloader page, rectified (what `samba_entry_shown` reads)."""

    def __init__(self, image):
        import cv2
        import numpy as np

        self.image = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)

    def rectified(self, fresh: bool = False):
        return self.image, None


@pytest.mark.parametrize("flavour, has_entry", [("production", False), ("development", True)])
def test_the_camera_tells_a_production_boot_menu_by_its_missing_entry(flavour, has_entry):
    from hil.stimuli.boot_menu import samba_entry_shown

    assert samba_entry_shown(Page(bootloader.menu_page(3, flavour)), timeout=5) is has_entry


def test_a_menu_that_offers_samba_without_recovery_offers_it(monkeypatch):
    """A production menu drawn with the SAM-BA entry alone is read as offering it, not as unreadable."""
    from hil.stimuli.boot_menu import samba_entry_shown

    monkeypatch.setattr(bootloader, "PRODUCTION_ENTRIES", ("samba",))
    assert samba_entry_shown(Page(bootloader.menu_page(3, "production")), timeout=5) is True


def test_no_readable_menu_is_never_taken_for_a_missing_entry():
    """Fail closed: a frame without the menu's Recovery entry (here the error page) says nothing about the entry."""
    from hil.stimuli.boot_menu import samba_entry_shown
    from hil.vision.controls import ControlNotFound

    with pytest.raises(ControlNotFound):
        samba_entry_shown(Page(bootloader.error_page()), timeout=0)


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


def _station(d, flavour: str | None, **update) -> Station:
    profile = PROFILE.model_copy(update={"cd_pads_hold_s": 0.2})
    return Station.from_endpoints("emu", profile, d.endpoints, flavour=flavour).model_copy(update=update)


def test_flasher_updates_a_production_unit_through_the_cd_pads(tmp_path, quick_hold):
    """Production refuses REBOOT_SAMBA and its Boot Menu has no SAM-BA entry: the jig's relay shorts the CD
    pads through a power cycle, the ROM starts SAM-BA, the flasher writes and then reads GET_VERSION. No
    robot, camera or Boot Menu takes part."""
    d = start_device(1, 0, Build(flavour="production", version="1.0.0"))
    try:
        station = _station(d, "production", camera=None, robot=None)
        assert station.cd_relay == 2  # the emulated jig announces its CD relay
        app = tmp_path / "app.bin"
        app.write_bytes(emulated.app_image(Build(flavour="production", version="1.0.1")))
        keys = emulated.keyset(PROFILE.firmware_keys)
        with flasher_route(station) as press:
            result = Flasher(station.samba, emulated.APPLET.read_bytes(), keys, timeout=30, enter_samba=press,
                             link=lambda: open_client(station.debug, station.profile)).flash(load_firmware(app, keys))
        assert (result.action, result.version) == ("updated", "1.0.1")
        logs = d.prime.logs_since(0)[0]
        assert "ERROR:boot: the CD pads are shorted: the ROM skips the eMMC" in logs
        assert not any("Boot Menu" in line for line in logs)
        assert not d.prime.cd_pads_shorted  # the jig let go of the pads
    finally:
        d.stop()


def test_a_production_station_without_the_cd_relay_is_told_what_to_wire(tmp_path):
    """No Boot Menu attempt on a production unit: the flasher's call into SAM-BA fails with one line naming the
    missing relay and the fix, and the unit is left running KeyOS."""
    d = start_device(1, 0, Build(flavour="production", version="1.0.0"))
    try:
        station = _station(d, "production", cd_relay=None)
        why = can_enter_samba(station)
        assert why is not None and "\n" not in why
        assert "relay across the CD pads (`cd_relay`)" in why and "name it as `cd_relay` in lab_config.yaml" in why
        assert "menu_page.rs" in why
        app = tmp_path / "app.bin"
        app.write_bytes(emulated.app_image(Build(flavour="production", version="1.0.1")))
        keys = emulated.keyset(PROFILE.firmware_keys)
        with flasher_route(station) as press, pytest.raises(ConfigError) as e:
            Flasher(station.samba, emulated.APPLET.read_bytes(), keys, timeout=30, enter_samba=press,
                    link=lambda: open_client(station.debug, station.profile)).flash(load_firmware(app, keys))
        assert str(e.value).startswith("the device refused REBOOT_SAMBA") and str(e.value).endswith(f"; {why}")
        assert not any("Boot Menu" in line for line in d.prime.logs_since(0)[0])
        assert d.prime.keyos_running and d.prime.firmware.mode == "keyos"
    finally:
        d.stop()


def test_routes_follow_the_profile_and_the_flavour():
    """Development: the Boot Menu (after REBOOT_SAMBA); production: the CD pads; unknown: the CD pads where the
    jig has them (the ROM route works on every flavour), else the Boot Menu as before."""
    wired = Station(name="bench-1", profile=profile_named("prime-rev-b"), samba="/dev/ttyACM1", relay="/dev/ttyACM2",
                    robot="/dev/ttyUSB0", camera="/dev/video0")
    assert route(wired.model_copy(update={"flavour": "development", "cd_relay": 2})) == "boot-menu"
    assert route(wired.model_copy(update={"flavour": "production"})) == "cd-pads"
    assert route(wired.model_copy(update={"cd_relay": 2})) == "cd-pads"
    assert route(wired) == "boot-menu"
    assert can_enter_samba(wired.model_copy(update={"flavour": "production", "cd_relay": 2, "robot": None,
                                                    "camera": None})) is None  # no robot or camera needed


def test_relay_sequence_recovers_a_unit_from_the_error_page(tmp_path):
    """Development, unchanged: on a layout the profile's point misses (seed 2), the robot taps the Boot Menu's
    entry where the camera reads it, although the jig also has the CD relay."""
    d = start_device(1, 2, Build(flavour="development"))
    try:
        station = Station.from_endpoints("emu", PROFILE, d.endpoints, flavour="development")
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
    assert "no REBOOT_SAMBA: debug link unavailable" in accepted.stderr  # past the image check: no device there
    assert "to reach SAM-BA through the Boot Menu" in accepted.stderr  # and the station has no jig to press it
    assert "or pass --operator" in accepted.stderr  # which a person can do instead


def test_reach_samba_asks_reboot_samba_first_and_presses_the_route_only_when_refused():
    """The one way into SAM-BA (the flasher's and first contact's): REBOOT_SAMBA where the build answers it, the
    jig only when it does not, and a jig that cannot press says so after why REBOOT_SAMBA did not do."""
    import contextlib

    from hil.link.client import DeviceError
    from hil.link.transport import LinkError
    from hil.flash.samba_entry import SambaUnreachable, reach_samba

    asked, presses = [], []

    class Client:
        def __init__(self, answer):
            self.answer = answer

        def reboot_to_samba(self):
            asked.append(1)
            if self.answer:
                raise self.answer

    def link(answer=None):
        return lambda: contextlib.nullcontext(Client(answer))

    reach_samba(link(), lambda: presses.append(1))
    assert (asked, presses) == ([1], [])  # a development build answered: no jig
    refused = DeviceError("usb:1-2", "REBOOT_SAMBA")
    reach_samba(link(refused), lambda: presses.append(1))
    assert (len(asked), presses) == (2, [1])  # production refused: the jig pressed the route

    def refuse():
        raise ConfigError("station s has no relay across the CD pads (`cd_relay`)")
    with pytest.raises(ConfigError, match=r"^the device refused REBOOT_SAMBA \(usb:1-2, REBOOT_SAMBA: device answered "
                                          r"Err\); station s has no"):
        reach_samba(link(refused), refuse)
    with pytest.raises(SambaUnreachable, match="debug link unavailable.*have a person take it there"):
        reach_samba(link(LinkError("usb:1-2", "no device")), None)


@pytest.mark.slow(minutes=1.3)
@pytest.mark.timeout(600)
@pytest.mark.parametrize("defects", [(), ("bootloader-menu-offers-samba", "bootloader-accepts-third-party")])
def test_the_firmware_checks_run_on_a_production_build_without_the_debug_link(defects):
    """Issue 14 point 7: the production lane runs on camera, robot and relay alone where the build has no usb-debug
    (rev B's profile says so of its production build). The Boot Menu check needs only relay and camera, the image
    checks the CD pads, SAM-BA and the camera: they run there, pass on a good build and fail (not broken, not
    skipped) on the seeded defects. One run per build, the two checks in it (one image variant: the one a defect
    turns red)."""
    from tests.test_seeded_defects import failed_not_broken, run_suites

    checks = {"suites/security/test_firmware.py::test_boot_menu_offers_samba_only_on_a_development_bootloader",
              "suites/security/test_firmware.py::test_device_refuses_bad_firmware[developer-signed]"}
    args = [arg for defect in defects for arg in ("--emulator-defect", defect)]
    code, out = run_suites("--emulator-flavour", "production", "--profile", "prime-rev-b", "--firmware-keys", "test",
                           *args, *sorted(checks))
    assert f"2 {'failed' if defects else 'passed'}" in out and "no debug link" not in out, out[-3000:]
    assert failed_not_broken(out) == (checks if defects else set()) and code == (1 if defects else 0), out[-3000:]
