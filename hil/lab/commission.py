"""Commissioning a station: each assumption the lab makes about a bench, checked on the unit before it is
relied on, and what was measured written to the lab state (``<state>/commission/<station>.json``).

Every finding is verified, wrong (naming what is wrong and the fix) or not verified (saying why): a
step that cannot be checked is printed, never silently passed. The screen and robot checks need a development
build (Settings' Developer Mode row is the robot's target, and its state is read back over the link); the way
into SAM-BA is checked on either, by the station's route (a production unit's Boot Menu is read for the SAM-BA
entry it must not have, and its CD relay is tried).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from hil.errors import HilError
from hil.lab.pin_guard import PinGuard, screenshot_bgr, unlock_over_link
from hil.lab.station import Station, robot_calibration
from hil.link.client import PrimeClient
from hil.link.state import POLL_S, bring_home, detect_flavour, screen_is_dark, wait_ready
from hil.machine import scaled
from hil.vision.controls import ControlNotFound, find_control
from hil.vision.display import read_image

SETTINGS_APP = "0xc192b79230473875f159d4423d74d00f"  # built into every KeyOS release (1.0.0 apps/)
DEVELOPER_MODE = "Developer Mode"  # assumed: gui-app-settings' row label
EDGE_PX = 15  # robot targets this far inside the row's edges: a calibration 2 mm off misses one
SERIAL = re.compile(r"EMU-\d+|[A-Z0-9]{2,}-[A-Z0-9-]{3,}")
CHROMA = 12.0  # mean |R-B| below which a screen has too little colour to tell the pixel order by


@dataclass(frozen=True)
class Finding:
    what: str
    verified: bool | None  # None: could not be verified (detail says why)
    detail: str

    def line(self) -> str:
        mark = {True: "verified", False: "WRONG", None: "not verified"}[self.verified]
        return f"{mark:>12}  {self.what}: {self.detail}"


class Commissioning:
    """One station's walk-through. ``findings`` fills as it goes; ``measured`` is what gets stored."""

    def __init__(self, station: Station, state_dir: Path, pin: str) -> None:
        self.station, self.state_dir, self.pin = station, Path(state_dir), pin
        self.findings: list[Finding] = []
        self.measured: dict = {}
        self.watched = False  # the camera was seen to watch this unit (then it can tell what the unit shows)

    def note(self, what: str, verified: bool | None, detail: str) -> None:
        self.findings.append(Finding(what, verified, detail))

    def run(self) -> list[Finding]:
        try:
            with self.station.client() as prime:
                self._walk(prime)
        except HilError as e:  # a step that could not even run: what stopped it is the finding
            self.note("link" if not self.findings else "commissioning stopped", False, str(e))
        self._boot_menu()
        self._nfc()
        self._store()
        return self.findings

    def _walk(self, prime: PrimeClient) -> None:
        st = self.station
        version = prime.version()
        self.note("link and version", True, f"{st.debug} answers, KeyOS {version}")
        self.measured["version"] = version
        if detect_flavour(prime, st.profile) != "development":
            self.note("unit", None, "not a development build: the screen and robot checks need one")
            return
        bring_home(prime, st.profile, "development",
                   lambda _: unlock_over_link(prime, self.pin, PinGuard(st.name, self.state_dir)))
        shot, row = self._settings(prime)
        self._camera(shot)
        self._robot(prime, shot, row)
        self._relay(prime)

    # ------------------------------------------------------------ steps
    def _settings(self, prime: PrimeClient, timeout: float = 10.0):
        """Settings open, as the screenshot shows it, and its Developer Mode row (x0, y0, x1, y1)."""
        prime.launch_app(SETTINGS_APP)
        deadline = time.monotonic() + timeout
        while True:
            shot = screenshot_bgr(prime)
            lines = read_image(shot).lines
            try:
                label = find_control(lines, DEVELOPER_MODE)
                break
            except ControlNotFound:
                if time.monotonic() > deadline:
                    raise
        return shot, enclosing_box(shot, label)

    def _camera(self, shot: np.ndarray) -> None:
        st = self.station
        if st.camera is None:
            self.note("camera", None, "no camera wired")
            return
        from hil.vision.locate import Calibration, locate

        cal = st.camera_calibration
        try:
            with st.open_camera() as cam:
                frame = cam.grab(10.0)
            loc = locate(frame)
        except HilError as e:
            self.note("camera mode and panel location", False, f"{e}")
            return
        self.measured["camera_corners"] = np.asarray(loc.corners).round(1).tolist()
        if cal is not None and cal.corners is not None:
            try:
                drift = Calibration.from_config(cal).verify(loc)
            except HilError as e:
                self.note("camera mode and panel location", False, f"{e}")
                return
            self.note("camera mode and panel location", True, f"{frame.shape[1]}x{frame.shape[0]}, panel within "
                                                              f"{drift:.1f} px of its calibration")
        else:
            self.note("camera mode and panel location", True, f"{frame.shape[1]}x{frame.shape[0]}, panel found "
                                                              f"({loc.method}); corners stored")
        seen = loc.rectify(frame)
        unit, camera = serial_on(shot), serial_on(seen)
        if unit is None:
            self.note("camera watches this unit", None, "the unit's screen shows no serial to compare")
        elif camera != unit:
            self.note("camera watches this unit", False, f"the unit shows serial {unit} but the camera reads "
                                                         f"{camera or 'none'}: the camera points elsewhere")
        else:
            self.note("camera watches this unit", True, f"both show serial {unit}")
            self.watched = True
        self._pixel_order(shot, seen)

    def _pixel_order(self, shot: np.ndarray, seen: np.ndarray) -> None:
        chroma = float(np.abs(shot[:, :, 2].astype(float) - shot[:, :, 0]).mean())
        if chroma < CHROMA:
            self.note("pixel order", None, f"the screen shows too little colour (mean |R-B| {chroma:.1f}) to tell "
                                           f"{self.station.profile.screenshot_byte_order} from its swap")
            return
        small = [cv2.resize(im, (60, 100)).astype(float) for im in (shot, seen)]
        as_is = np.abs(small[0] - small[1]).mean()
        swapped = np.abs(small[0][:, :, ::-1] - small[1]).mean()
        order = self.station.profile.screenshot_byte_order
        self.note("pixel order", as_is <= swapped, f"{order} {'matches' if as_is <= swapped else 'is swapped against'}"
                                                   " what the camera sees")

    def _robot(self, prime: PrimeClient, shot: np.ndarray, row) -> None:
        st = self.station
        if st.robot is None:
            self.note("robot calibration", None, "no stylus robot wired")
            return
        if (why := st.profile.developer_mode_unreadable()) is not None:  # the taps are seen through its answer
            self.note("robot calibration", False, f"not checked: {why}; check the robot's taps by eye")
            return
        from hil.stimuli.robot import StylusRobot

        x0, y0, x1, y1 = row
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        targets = {"top edge": (cx, y0 + EDGE_PX), "bottom edge": (cx, y1 - EDGE_PX),
                   "left edge": (x0 + EDGE_PX, cy), "right edge": (x1 - EDGE_PX, cy)}
        missed = []
        with StylusRobot.open(st.robot, robot_calibration(st)) as robot:
            for name, (x, y) in targets.items():
                before = prime.developer_mode()
                robot.press(x, y)
                if not _changes(prime, before):
                    missed.append(name)
            if prime.developer_mode() is not True:  # an odd number of hits: put it back
                robot.press(cx, cy)
        self.measured["robot_targets"] = {k: list(v) for k, v in targets.items()}
        if missed:
            self.note("robot calibration", False, f"taps {EDGE_PX} px inside the Developer Mode row missed its "
                                                  f"{', '.join(missed)}: the calibration is off; run `hil touch calibrate`")
        else:
            self.note("robot calibration", True, f"4 taps {EDGE_PX} px inside a row's edges all landed")

    def _relay(self, prime: PrimeClient) -> None:
        if self.station.relay is None:
            self.note("power-button relay", None, "no relay wired")
            return
        from hil.stimuli.relay import PowerButtonRelay

        with PowerButtonRelay.open(self.station.relay) as relay:
            relay.press()
            dark = _within(prime, lambda: screen_is_dark(prime))
            relay.press()
            lit = _within(prime, lambda: not screen_is_dark(prime))
        self.note("power-button relay", dark and lit, "a short press turned the screen off and on" if dark and lit
                  else "a short press did not turn the screen off and on: check the relay's wiring")

    def _boot_menu(self) -> None:
        """SAM-BA reached as the flasher reaches it (`hil.stimuli.boot_menu.route`): through the Boot Menu on a
        development bootloader; on a production one, the Boot Menu is read for the SAM-BA entry it must not
        have, and the CD pads are shorted."""
        from hil.stimuli.boot_menu import route

        if route(self.station) == "cd-pads":
            self._production_boot_menu()
            self._cd_pads()
        else:
            self._development_boot_menu()

    def _production_boot_menu(self) -> None:
        """A device fact: the production Boot Menu, as the camera reads it, has no SAM-BA entry (keyos-boot
        menu_page.rs adds it only cfg(not(feature = "production"))). Judged only where the camera reads the
        menu's Recovery entry; the relay's power cycle then boots KeyOS again."""
        from hil.stimuli.boot_menu import SAMBA_ENTRY, open_boot_menu, power_cycle, samba_entry_shown
        from hil.stimuli.relay import PowerButtonRelay
        from hil.vision.controls import ControlNotFound

        st, what = self.station, "production Boot Menu has no SAM-BA entry"
        if st.relay is None or st.camera is None:
            self.note(what, None, f"no {'power-button relay' if st.relay is None else 'camera'} to open and read the "
                                  "Boot Menu with")
            return
        if not any(f.what == "link and version" and f.verified for f in self.findings):
            self.note(what, None, "not entered: KeyOS did not answer, so the unit could not be brought back")
            return
        with PowerButtonRelay.open(st.relay) as relay:
            open_boot_menu(relay)
            try:
                with st.open_camera() as cam:
                    shown = samba_entry_shown(st.display(cam))
            except ControlNotFound as e:
                power_cycle(relay)
                self._back_to_keyos(what, f"the camera read no Boot Menu after the relay's 10 s hold and three clicks "
                                          f"({e}): check the relay's wiring and the camera")
                return
            power_cycle(relay)
        self.measured["boot_menu_samba_entry"] = shown
        self._back_to_keyos(what, f"the Boot Menu shows {SAMBA_ENTRY!r}, which keyos-boot menu_page.rs leaves out of "
                                  "production bootloaders: this unit's bootloader is not production (fix the station's "
                                  "flavour) or the profile's samba_in_boot_menu is wrong" if shown else None,
                            "the camera read the Boot Menu's Recovery entry and no SAM-BA entry, as keyos-boot "
                            "menu_page.rs builds it for production")

    def _cd_pads(self) -> None:
        """The production route into SAM-BA (`hil.stimuli.cd_pads`): the CD relay's short at power-on brings up the
        ROM's monitor on the station's port; its reset boots KeyOS again."""
        from hil.flash.samba import SambaError
        from hil.flash.samba_entry import leave_samba
        from hil.stimuli.boot_menu import by_cd_pads, can_enter_samba, power_cycle
        from hil.stimuli.relay import PowerButtonRelay

        st, what = self.station, "SAM-BA by the CD pads"
        if (why := can_enter_samba(st)) is not None:
            self.note(what, False, why)
            return
        if not any(f.what == "link and version" and f.verified for f in self.findings):
            self.note(what, None, "not entered: KeyOS did not answer, so the unit could not be brought back")
            return
        with PowerButtonRelay.open(st.relay) as relay:
            by_cd_pads(st, relay)
            try:
                samba = leave_samba(st.samba, 10.0)
            except SambaError as e:
                power_cycle(relay)
                self._back_to_keyos(what, f"relay {st.cd_relay} shorted the CD pads through a power cycle but SAM-BA "
                                          f"does not answer on {st.samba} ({e}): check the CD relay's wiring and the "
                                          "station's samba port")
                return
        with samba:
            self._back_to_keyos(what, None, f"relay {st.cd_relay} shorted the CD pads through a power cycle; SAM-BA "
                                            f"answered on {st.samba}; its reset booted KeyOS again")

    def _development_boot_menu(self) -> None:
        """keyos-boot's Boot Menu reached as the flasher reaches it (`hil.stimuli.boot_menu`): the relay's
        hold and clicks open it, the robot taps its 'SAM-BA mode' entry (where the camera reads it, when one
        watches this unit; else at the profile's point) and the SAM-BA ROM answers on the station's port; the
        ROM's reset then boots KeyOS again (a miswired step: the relay's power cycle does)."""
        from hil.flash.samba import SambaError
        from hil.flash.samba_entry import leave_samba
        from hil.stimuli.boot_menu import SAMBA_ENTRY, blind_samba_entry, can_enter_samba, open_boot_menu, power_cycle
        from hil.stimuli.relay import PowerButtonRelay
        from hil.stimuli.robot import StylusRobot

        st = self.station
        if (why := can_enter_samba(st)) is not None:
            self.note("Boot Menu", None, why)
            return
        if not any(f.what == "link and version" and f.verified for f in self.findings):
            self.note("Boot Menu", None, "not entered: KeyOS did not answer, so the unit could not be brought back")
            return
        entry, port = st.profile.touch.boot_menu_samba, st.samba
        if entry is None and not self.watched:
            self.note("Boot Menu", None, f"not entered: no camera watches this unit to find the {SAMBA_ENTRY!r} "
                                         "entry by, and the device profile has no touch.boot_menu_samba")
            return
        with PowerButtonRelay.open(st.relay) as relay:
            open_boot_menu(relay)
            if self.watched:
                entry, wrong = self._samba_entry()
                if wrong:
                    power_cycle(relay)
                    self._back_to_keyos("Boot Menu", wrong)
                    return
            else:
                entry = blind_samba_entry(entry, st.profile.touch.boot_menu_settle_s)
            with StylusRobot.open(st.robot, robot_calibration(st)) as robot:
                robot.press(*entry)
            try:
                samba = leave_samba(port, 10.0)
            except SambaError as e:
                missed = self.watched and self._shows_boot_menu(timeout=2.0)
                power_cycle(relay)
                self._back_to_keyos(
                    "Boot Menu", f"the robot tapped {SAMBA_ENTRY!r} at {entry} but the camera still shows the Boot Menu: the tap "
                    "missed (check the robot calibration)" if missed else
                    f"the robot tapped {SAMBA_ENTRY!r} at {entry} but SAM-BA does not answer on {port} ({e}): check the "
                    "station's samba port (and, with no camera watching, the relay and the tap)")
                return
        seen = (f", the camera read it and its entry at {entry}" if self.watched else
                " (no camera watching this unit to read it; the entry tapped at the profile's point)")
        with samba:
            self._back_to_keyos("Boot Menu", None, f"the relay's hold and three clicks opened it{seen}; the robot's tap on "
                                                   f"{SAMBA_ENTRY!r} brought up SAM-BA on {port}; its reset booted KeyOS again")

    def _samba_entry(self) -> tuple[tuple[int, int] | None, str | None]:
        """Where the camera reads the Boot Menu's SAM-BA entry, or what is wrong: no menu, or no entry."""
        from hil.stimuli.boot_menu import SAMBA_ENTRY, samba_entry_on
        from hil.vision.controls import ControlNotFound

        if not self._shows_boot_menu():
            return None, ("the Boot Menu did not show after the relay's 10 s hold and three clicks: check the "
                          "relay's wiring to the power button")
        with self.station.open_camera() as cam:
            try:
                return samba_entry_on(self.station.display(cam)), None
            except ControlNotFound as e:
                return None, (f"the Boot Menu shows no {SAMBA_ENTRY!r} entry ({e}); keyos-boot adds it only in "
                              "non-production bootloaders (menu_page.rs)")

    def _shows_boot_menu(self, timeout: float = 10.0) -> bool:
        from hil.vision.display import TextNotShown

        with self.station.open_camera() as cam:
            try:
                self.station.display(cam).expect_text(self.station.profile.bootloader_titles["menu"], timeout=timeout)
                return True
            except (TextNotShown, HilError):
                return False

    def _back_to_keyos(self, what: str, wrong: str | None, right: str = "", timeout: float = 60.0) -> None:
        """Note the finding ``what`` once KeyOS answers again; a unit that does not come back is named too."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            try:
                with self.station.client() as prime:
                    wait_ready(prime, timeout)
                break
            except HilError as e:
                if time.monotonic() > deadline:
                    self.note(what, False, f"{wrong or right}; then KeyOS did not answer within {timeout:g} s "
                                           f"({e}): the unit is left in the bootloader or off")
                    return
                time.sleep(0.5)
        self.note(what, wrong is None, wrong or right)

    def _nfc(self) -> None:
        """Which modes the reader's nfcpy driver supports (hil.stimuli.nfc_readers); that it answers is the
        health check's (hil.lab.health.check_nfc)."""
        from hil.stimuli.nfc_readers import MODES, driver_of

        path = self.station.nfc
        if path is None:
            self.note("NFC reader modes", None, "no NFC reader wired")
            return
        driver = driver_of(path)
        if driver is None:
            self.note("NFC reader modes", None, f"{path}: the driver is known only once it is opened (give usb:VID:PID)")
            return
        self.measured["nfc_driver"] = driver
        self.note("NFC reader modes", MODES.get(driver) == MODES["pn533"],
                  f"{path}: nfcpy driver {driver} can {' and '.join(sorted(MODES.get(driver, ())) ) or 'nothing known'}")

    def _store(self) -> None:
        path = self.state_dir / "commission" / f"{self.station.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"station": self.station.name, "measured": self.measured, "when": time.time(),
                                   "findings": [asdict(f) for f in self.findings]}, indent=2))
        tmp.replace(path)


def _within(prime: PrimeClient, cond, timeout: float = 5.0) -> bool:
    """Whether ``cond()`` (a read of the device) holds within ``timeout`` (idle-machine seconds); between
    reads it waits on the device's log (a record ends the wait at once), never a fixed pause."""
    deadline = time.monotonic() + scaled(timeout)
    while not cond():
        if time.monotonic() > deadline:
            return False
        prime.wait_log(POLL_S)
    return True


def _changes(prime: PrimeClient, before: bool) -> bool:
    return _within(prime, lambda: prime.developer_mode() != before, 3.0)


def serial_on(image: np.ndarray) -> str | None:
    """The unit serial the screen shows (Settings' About), read by OCR."""
    for line in read_image(image).lines:
        if "serial" in line.text.lower() and (m := SERIAL.search(line.text.upper().replace("O", "0"))):
            return m.group(0)
    return None


def enclosing_box(image: np.ndarray, point: tuple[int, int]) -> tuple[int, int, int, int]:
    """The smallest outlined box around ``point`` (a row's frame around its label), found by shape."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    edges = cv2.Canny(gray, 50, 150)
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes = [cv2.boundingRect(c) for c in contours]
    around = [(x, y, x + w, y + h) for x, y, w, h in boxes
              if x < point[0] < x + w and y < point[1] < y + h and w > 200 and h > 40]
    if not around:
        raise ControlNotFound(f"no outlined row around the {DEVELOPER_MODE!r} label")
    return min(around, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


def commission(station: Station, state_dir: Path, pin: str) -> list[Finding]:
    return Commissioning(station, state_dir, pin).run()
