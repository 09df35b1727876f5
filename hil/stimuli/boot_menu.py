"""Into SAM-BA by the power button: the way a development unit that does not answer REBOOT_SAMBA (one
stuck on the bootloader's error page, or without a debug link) is reflashed (keyos.md §3.5: hold power
10 s, click it at the logo, Boot Menu → "SAM-BA mode"). A production unit's Boot Menu has no such entry
(``menu_page.rs``): ``route`` sends such a station through the CD pads (`hil.stimuli.cd_pads`) instead,
and a production station without that relay gets the one line saying so, never a Boot Menu attempt.

The hold lets the PMIC cut power whatever runs (KeyOS, the error page, the Boot Menu); the first
click powers the unit on and keyos-boot counts the next two at its logo (``boot_screen.rs``
``try_boot_menu``: two clicks, each within a second of the last). The Boot Menu is touch-driven: the
station's stylus robot taps the entry where the station's camera reads it ("(Debug) SAM-BA mode",
``menu_page.rs``); only a bench without a camera taps the device profile's ``touch.boot_menu_samba``,
a point measured on a unit. Nothing here waits for the monitor: the flasher does, with its timeout,
and a menu that never opened ends there as a broken run (or, watched, as `ControlNotFound`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import numpy as np

from hil.errors import ConfigError
from hil.machine import scaled
from hil.stimuli import cd_pads
from hil.stimuli.relay import PowerButtonRelay
from hil.stimuli.touch import Touch

HARD_OFF_MS = 10_500  # "hold power 10 s", with a margin
CLICKS = 3  # the first powers the unit on, the next two open the Boot Menu
CLICK_GAP_S = 0.2  # a physical release between presses, long enough for keyos-boot's 10 ms button polling
# boot/keyos-boot/src/menu_page.rs MenuPage::new: the entry a non-production bootloader adds to its menu
SAMBA_ENTRY = "(Debug) SAM-BA mode"
RECOVERY_ENTRY = "Recovery"  # menu_page.rs: an entry of every flavour's Boot Menu
MENU_TITLE = "BOOT MENU"  # menu_page.rs MenuPage::new
MENU_READ_S = 10.0  # the camera reads the menu until its entry shows (idle-machine seconds)


def enter_samba(relay: PowerButtonRelay, touch: Touch, samba_entry: tuple[int, int] | None,
                find_entry: Callable[[], tuple[int, int]] | None = None, blind_settle_s: float = 0.0) -> None:
    """Press the sequence: power off by the long hold, three clicks, tap "SAM-BA mode" where
    ``find_entry`` (the camera) reads it as soon as it shows, else, ``blind_settle_s`` (the profile's
    ``touch.boot_menu_settle_s``) after the clicks, at the profile's ``samba_entry``."""
    if find_entry is None and samba_entry is None:
        raise ConfigError("the device profile has no touch.boot_menu_samba (where the Boot Menu's "
                          "'SAM-BA mode' entry is) and no camera reads the menu; wire the station's camera, "
                          "or measure the point on a unit and add it to the profile")
    open_boot_menu(relay)
    if find_entry is not None:
        touch.tap(*find_entry())  # waits on the camera until the entry shows, with its deadline
        return
    touch.tap(*blind_samba_entry(samba_entry, blind_settle_s))


def blind_samba_entry(entry: tuple[int, int], settle_s: float) -> tuple[int, int]:
    """Where a bench without a camera taps the Boot Menu's SAM-BA entry: the profile's point ``entry``
    (``touch.boot_menu_samba``), once ``settle_s`` (``touch.boot_menu_settle_s``) has passed since the last
    click. Nothing can report the menu to such a bench, so it waits out the drawing."""
    time.sleep(settle_s)
    return entry


def panel_view(display) -> np.ndarray:
    """The display's next frame, rectified; an empty image while the panel is dark or redrawing."""
    from hil.vision.locate import ScreenNotFound

    try:
        return display.rectified(fresh=True)[0]
    except ScreenNotFound:  # nothing to read yet
        return np.zeros((1, 1, 3), np.uint8)


def samba_entry_on(display, timeout: float = MENU_READ_S) -> tuple[int, int]:
    """Where the camera's ``display`` (`hil.vision.display.Display`) reads the Boot Menu's SAM-BA entry,
    in display points; `ControlNotFound` when it is not read once (no menu, or a bootloader without it)."""
    from hil.vision.controls import wait_control

    return wait_control(lambda: panel_view(display), SAMBA_ENTRY, timeout)


def samba_entry_shown(display, timeout: float = MENU_READ_S) -> bool:
    """Whether the Boot Menu the camera's ``display`` reads has its SAM-BA entry. Its absence is judged only on a
    frame where the "Recovery" entry every flavour draws is read (the menu is up and readable); its presence on
    any frame with the menu's title, so a menu that offers SAM-BA and lost Recovery still counts as offering it.
    Any line with "SAM-BA" or "Debug" in it counts as the entry, so a partly misread one still counts;
    `ControlNotFound` when no readable menu comes within ``timeout``."""
    from hil.vision.controls import ControlNotFound, find_control, normal
    from hil.vision.display import read_image

    deadline = time.monotonic() + scaled(timeout)
    while True:
        lines = read_image(panel_view(display)).lines
        shown = any(word in normal(ln.text).replace("-", "") for ln in lines for word in ("samba", "debug"))
        try:
            find_control(lines, RECOVERY_ENTRY)
            return shown
        except ControlNotFound:
            if shown and any(normal(ln.text) == normal(MENU_TITLE) for ln in lines):
                return True
            if time.monotonic() > deadline:
                raise
            continue


def open_boot_menu(relay: PowerButtonRelay) -> None:
    """Power off by the long hold, then the three clicks that open the Boot Menu; returns at the last click,
    before the menu is drawn (a camera waits for it, a blind bench waits its profile's settle time)."""
    relay.press(hold_ms=HARD_OFF_MS)
    time.sleep(CLICK_GAP_S)
    for _ in range(CLICKS):
        relay.press()
        time.sleep(CLICK_GAP_S)


def power_cycle(relay: PowerButtonRelay) -> None:
    """Off by the long hold, on by one click: KeyOS boots as usual (no clicks at the logo), whatever ran
    (the Boot Menu, SAM-BA, a hung KeyOS)."""
    relay.press(hold_ms=HARD_OFF_MS)
    time.sleep(CLICK_GAP_S)
    relay.press()


def robot_calibration(station):
    """The station's display-to-robot map: the points its lab entry (or emulated bench) records, else
    the file `hil touch calibrate` stored for it."""
    from hil.stimuli.robot import CALIBRATION_DIR, Calibration, calibration_path

    if station.robot_calibration is not None:
        return Calibration.fit(station.robot_calibration.points)
    return Calibration.load(calibration_path(station.name, CALIBRATION_DIR))


def route(station) -> str:
    """How the station's unit reaches SAM-BA when it answers no REBOOT_SAMBA: ``"cd-pads"`` where its
    bootloader's Boot Menu has no SAM-BA entry (the profile's ``samba_in_boot_menu`` for the station's
    flavour), or the flavour is unknown and the jig has the CD relay (the ROM route works on every flavour);
    else ``"boot-menu"``."""
    in_menu = station.profile.samba_in_boot_menu(station.flavour)
    return "cd-pads" if in_menu is False or (in_menu is None and station.cd_relay) else "boot-menu"


def can_enter_samba(station) -> str | None:
    """Why the station cannot take its unit into SAM-BA itself (one line naming what to wire), or None."""
    if route(station) == "cd-pads":
        missing = [what for what, have in (("power-button relay (`relay`)", station.relay),
                                           ("relay across the CD pads (`cd_relay`)", station.cd_relay),
                                           ("SAM-BA port (`samba`)", station.samba)) if not have]
        lead = (f"a {station.flavour} bootloader's Boot Menu has no SAM-BA entry (keyos-boot menu_page.rs), so only "
                f"the CD pads reach SAM-BA" if station.cd_relay is None else "its jig reaches SAM-BA by the CD pads")
        fix = ("wire a channel of its relay board across the CD pads and name it as `cd_relay` in lab_config.yaml"
               if station.cd_relay is None else "wire it and name it in lab_config.yaml")
        return f"station {station.name}: {lead}, and the station has no {' or '.join(missing)}; {fix}" if missing else None
    missing = [what for what, have in (("power-button relay", station.relay), ("stylus robot", station.robot),
                                       ("SAM-BA port", station.samba)) if not have]
    if missing:
        return f"station {station.name} has no {' or '.join(missing)} to reach SAM-BA through the Boot Menu"
    if station.profile.touch.boot_menu_samba is None and not station.camera:
        return (f"station {station.name} has no camera to read the Boot Menu by, and device profile "
                f"{station.profile.name} has no touch.boot_menu_samba")
    return None


def by_cd_pads(station, relay: PowerButtonRelay) -> None:
    """The station's unit into SAM-BA by its CD pads: ``relay`` (the power button's, open) power-cycles it while
    the same board's ``cd_relay`` channel shorts them."""
    cd_pads.enter_samba(relay.sibling(station.cd_relay), lambda: power_cycle(relay), station.profile.cd_pads_hold_s)


def flasher_route(station, otherwise: str | None = None) -> contextlib.AbstractContextManager[Callable[[], None]]:
    """The ``press`` of `hil.flash.samba_entry.reach_samba` for ``station``, as a context: its route pressed by its
    jig where it can; else a call that fails with the one line naming what to wire, and ``otherwise``, what else
    the caller offers (`hil flash --operator`), when given (made only when REBOOT_SAMBA is not answered: a
    development unit that answers it needs no jig)."""
    why = can_enter_samba(station)
    if why is None:
        return station_enter_samba(station)

    def refuse() -> None:
        raise ConfigError(f"{why}; {otherwise}" if otherwise else why)
    return contextlib.nullcontext(refuse)


@contextlib.contextmanager
def station_enter_samba(station, relay: PowerButtonRelay | None = None, touch: Touch | None = None,
                        camera=None) -> Iterator[Callable[[], None]]:
    """``enter_samba`` for a station, as the flasher takes it (no arguments), by the station's ``route``.
    The relay, robot and camera are opened on first use only (a unit that answers REBOOT_SAMBA never needs
    them), or given already open (the pytest session's own) and then left open. A station with a camera
    taps the Boot Menu's entry where the camera reads it."""
    why = can_enter_samba(station)
    if why:
        raise ConfigError(why)
    opened: list = []

    def press() -> None:
        nonlocal relay, touch, camera
        from hil.stimuli.robot import StylusRobot
        from hil.stimuli.touch import RobotTouch

        if relay is None:
            relay = PowerButtonRelay.open(station.relay)
            opened.append(relay)
        if route(station) == "cd-pads":
            by_cd_pads(station, relay)
            return
        if touch is None:
            robot = StylusRobot.open(station.robot, robot_calibration(station))
            opened.append(robot)
            touch = RobotTouch(robot, relay, station.profile.touch.home_button.centre)
        if camera is None and station.camera:
            camera = station.open_camera()
            opened.append(camera)
        find = (lambda: samba_entry_on(station.display(camera))) if camera is not None else None
        enter_samba(relay, touch, station.profile.touch.boot_menu_samba, find, station.profile.touch.boot_menu_settle_s)

    try:
        yield press
    finally:
        for device in opened:
            device.close()
