"""Into SAM-BA by the power button: the way a production unit, or one stuck on the bootloader's
error page, is reflashed (keyos.md §3.5: hold power 10 s, click it at the logo, Boot Menu →
"SAM-BA mode").

The hold lets the PMIC cut power whatever runs (KeyOS, the error page, the Boot Menu); the first
click powers the unit on and keyos-boot counts the next two at its logo (``boot_screen.rs``
``try_boot_menu``: two clicks, each within a second of the last). The Boot Menu is touch-driven, so
the entry is tapped at the device profile's ``touch.boot_menu_samba`` by the station's stylus robot
(or a person). Nothing here waits for the monitor: the flasher does, with its timeout, and a menu
that never opened ends there as a broken run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from hil.errors import ConfigError
from hil.stimuli.relay import PowerButtonRelay
from hil.stimuli.touch import Touch

HARD_OFF_MS = 10_500  # "hold power 10 s", with a margin
CLICKS = 3  # the first powers the unit on, the next two open the Boot Menu
CLICK_GAP_S = 0.2  # a physical release between presses, long enough for keyos-boot's 10 ms button polling
# assumed: the time keyos-boot takes to draw its menu after the last click. A real pause, not a poll: in this step
# nothing can report the menu (no debug link, and the sequence has no camera), and a tap before it lands nowhere.
MENU_SETTLE_S = 0.5


def enter_samba(relay: PowerButtonRelay, touch: Touch, samba_entry: tuple[int, int] | None) -> None:
    """Press the sequence: power off by the long hold, three clicks, tap "SAM-BA mode"."""
    if samba_entry is None:
        raise ConfigError("the device profile has no touch.boot_menu_samba (where the Boot Menu's "
                          "'SAM-BA mode' entry is); measure it on a unit and add it to the profile")
    open_boot_menu(relay)
    touch.tap(*samba_entry)


def open_boot_menu(relay: PowerButtonRelay) -> None:
    """Power off by the long hold, then the three clicks that open the Boot Menu."""
    relay.press(hold_ms=HARD_OFF_MS)
    time.sleep(CLICK_GAP_S)
    for _ in range(CLICKS):
        relay.press()
        time.sleep(CLICK_GAP_S)
    time.sleep(MENU_SETTLE_S)


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


def can_enter_samba(station) -> str | None:
    """Why the station cannot press the sequence itself, or None when it can."""
    missing = [what for what, have in (("power-button relay", station.relay), ("stylus robot", station.robot),
                                       ("SAM-BA port", station.samba)) if not have]
    if missing:
        return f"station {station.name} has no {' or '.join(missing)} to reach SAM-BA through the Boot Menu"
    if station.profile.touch.boot_menu_samba is None:
        return f"device profile {station.profile.name} has no touch.boot_menu_samba"
    return None


@contextlib.contextmanager
def station_enter_samba(station, relay: PowerButtonRelay | None = None,
                        touch: Touch | None = None) -> Iterator[Callable[[], None]]:
    """``enter_samba`` for a station, as the flasher takes it (no arguments). The relay and robot
    are opened on first use only (a unit that answers REBOOT_SAMBA never needs them), or given
    already open (the pytest session's own) and then left open."""
    why = can_enter_samba(station)
    if why:
        raise ConfigError(why)
    opened: list = []

    def press() -> None:
        nonlocal relay, touch
        from hil.stimuli.robot import StylusRobot
        from hil.stimuli.touch import RobotTouch

        if relay is None:
            relay = PowerButtonRelay.open(station.relay)
            opened.append(relay)
        if touch is None:
            robot = StylusRobot.open(station.robot, robot_calibration(station))
            opened.append(robot)
            touch = RobotTouch(robot, relay, station.profile.touch.home_button.centre)
        enter_samba(relay, touch, station.profile.touch.boot_menu_samba)

    try:
        yield press
    finally:
        for device in opened:
            device.close()
