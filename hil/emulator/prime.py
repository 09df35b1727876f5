"""``Prime``: one emulated Passport Prime, the state every emulated peripheral reads and drives.

One ``threading.RLock`` (``prime.lock``) guards all of it; every peripheral thread holds it while it
touches the device (``with prime.lock: prime.touch(x, y)``), and so must anyone calling
``prime.ui.show_modal``.  Time-based behaviour (the boot splash) is evaluated lazily when the
device is looked at, so there are no timer threads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from embit import bip39
from PIL import Image

from hil.emulator import render
from hil.emulator.apps import screen_for
from hil.emulator.apps.controlcenter import ControlCenterScreen
from hil.emulator.apps.launcher import LauncherScreen
from hil.emulator.apps.lockscreen import LockScreen
from hil.emulator.apps.onboarding import OnboardingScreen
from hil.emulator.apps.splash import BootSplash
from hil.emulator.build import Build
from hil.emulator.debug import DebugProtocol
from hil.emulator.keyos import KeyOS, RunApp
from hil.emulator.secure_element import SecureElement
from hil.emulator.ui import UI, Screen, in_home_button
from hil.provisioning import SHOW_SECURITY_WORDS, TEST_MNEMONIC, TEST_PIN

LOG_RING_BYTES = 16 * 1024
BOOT_SECONDS = 0.5
HARD_OFF_SECONDS = 10.0  # the PMIC cuts power when the button is held this long, whatever runs
BOOT_MENU_CLICKS, BOOT_MENU_WINDOW = 2, 1.0  # keyos-boot try_boot_menu: 2 clicks, each within 1 s


class LogRing:
    """The log server's ring buffer: 16 KiB of records, oldest overwritten first."""

    def __init__(self, capacity: int = LOG_RING_BYTES):
        self.capacity = capacity
        self._records: deque[tuple[int, str]] = deque()
        self._size = 0
        self._next = 0

    def append(self, line: str) -> None:
        self._records.append((self._next, line))
        self._next += 1
        self._size += len(line.encode()) + 1
        while self._size > self.capacity:
            _, old = self._records.popleft()
            self._size -= len(old.encode()) + 1

    def since(self, cursor: int) -> tuple[list[str], int]:
        """Records numbered ``cursor`` and later (what is left of them), and the next cursor."""
        return [line for n, line in self._records if n >= cursor], self._next


@dataclass
class LinkFaults:
    """Faults a test asked the debug link to commit, consumed by the TCP endpoint."""
    delay_s: float = 0.0  # before every response
    garbage: bytes = b""  # raw bytes written to the stream before the next response
    truncate: bool = False  # the next response: length + half of the body, then close
    stall: bool = False  # the next response: length + half of the body, then silence
    late: bool = False  # the next response is held back and goes to the next client first (sim.rs)
    twice: bool = False  # the next response is sent two times
    held: list[bytes] = field(default_factory=list)  # held-back responses, for the next client


def provisioned_seed(mnemonic: str) -> bytes:
    """The entropy of the mnemonic a unit is provisioned with: 12 or 24 words (KeyOS's ``Seed`` is Twelve or
    TwentyFour; ``Seed::from_mnemonic`` takes the BIP39 entropy, api/security/src/lib.rs)."""
    entropy = bip39.mnemonic_to_bytes(mnemonic)  # a bad word or checksum raises ValueError
    if len(entropy) not in (16, 32):
        raise ValueError(f"a unit is provisioned with 12 or 24 words, not {len(mnemonic.split())}")
    return entropy


class Prime:
    """One unit: display, lock screen and SE, the build, KeyOS, the log ring and its power state."""

    def __init__(self, index: int = 1, seed: int = 0, build: Build | None = None, pin: str = TEST_PIN,
                 boot_seconds: float = BOOT_SECONDS, apps_dir: str | None = None, mnemonic: str = TEST_MNEMONIC,
                 show_security_words: bool = SHOW_SECURITY_WORDS):
        self.lock = threading.RLock()
        self.index = index
        self.serial = f"EMU-{seed:02d}{index:02d}"  # unique across a farm of emulators with their own seeds
        self.seed = seed
        self.build = build or Build()
        self.boot_seconds = boot_seconds
        self.logs = LogRing()
        self.faults = LinkFaults()
        self.se = SecureElement(seed, self.serial, provisioned_seed(mnemonic))
        self.se.set_seed_and_pin(pin)
        self.keyos = KeyOS(self.log, self.build.defects, self.build.version, seed, apps_dir)
        self.usb_debug = DebugProtocol(self)
        self.ui = UI(self, LauncherScreen(self), LockScreen(self), ControlCenterScreen(self))
        self.ui.onboarding = OnboardingScreen()
        self.keyos.attach(self)
        self.splash = BootSplash()
        self.developer_mode = True
        self.show_security_words = show_security_words  # the setting the lock screen follows
        self.clock_offset = 0
        self.powered = False
        self.screen_on = False
        self.frame_counter = 0
        self._frame: Image.Image | None = None
        self._frame_splash = False
        self._booted_at = 0.0
        self._logo_until = 0.0  # keyos-boot's loading screen: clicks until then count for the Boot Menu
        self._menu_clicks = 0
        self._button_down_at: float | None = None
        self._powered_by_press = False
        self._link_listeners: list[Callable[[], None]] = []
        self._change_listeners: list[Callable[[], None]] = []
        self.app_screens: dict[int, Screen] = {}  # pid -> its screen, kept while the app runs
        # The boot chain (the SAM-BA peripheral sets it): ``boot() -> bool`` at power-on (False: no
        # KeyOS runs), ``screen()`` shown while none does, ``touch(x, y)`` there, ``enter_samba()``.
        self.firmware = None
        self.keyos_running = False
        self.cd_pads_shorted = False  # the jig's relay across the CD pads (the ROM reads them at power-on)
        self.power_on()

    # ------------------------------------------------------------ power and boot
    def power_on(self) -> None:
        self.powered = True
        self.screen_on = True
        self._booted_at = self._logo_until = time.monotonic() + self.boot_seconds
        self._menu_clicks = 0
        self._end_session()
        if self.se.pin_set and self.se.defects.has("pin-attempts-restored-at-boot"):
            self.se.attempts_remaining = self.se.max_attempts
        self.ui.lock_screen.reset()
        self.ui.control_center_open = False
        self.ui.stack.clear()
        self.app_screens.clear()
        self.keyos_running = self.firmware is None or self.firmware.boot()
        if self.keyos_running:
            self.keyos.boot()
            self.log(f"[LOG] Starting with PID {self.keyos.pid_of('xous-log')}")
            self.log(f"INFO:keyos: KeyOS {self.build.version} ({self.build.flavour}) booting on {self.serial}")
            self.log(f"INFO:security: {'seed erased' if self.se.wiped else 'seed present'}, "
                     f"{self.se.attempts_remaining} login attempts remaining")
        else:
            self.keyos.halt()
        # The loading screen (and its Boot Menu window) starts when the emulator's own work for the boot is
        # done: on a loaded host that work can take a second, which a real unit's window never loses.
        self._booted_at = self._logo_until = time.monotonic() + self.boot_seconds
        self.invalidate()

    def power_cut(self) -> None:
        """Power lost: nothing answers until ``power_on``; pending prompts are dropped."""
        self.ui.drop_all_modals()
        self.powered = False
        self.screen_on = False
        self._end_session()
        self.keyos.halt()
        self.keyos_running = False
        self.drop_links()
        self.invalidate()

    def _end_session(self) -> None:
        """Power lost or a boot: the login ends (os/security starts without its ``pin_hash``)."""
        if not self.se.defects.has("login-survives-a-reboot"):
            self.se.logout()

    def reboot_to_samba(self) -> None:
        """REBOOT_SAMBA: KeyOS stops and the unit re-enumerates as the SAM-BA boot ROM (03eb:6124)."""
        self.log("INFO:usb_debug: Configuring boot sequence registers for SAM-BA mode...")
        self.ui.drop_all_modals()
        self.se.logout()
        self.keyos.halt()
        self.keyos_running = False
        self.drop_links()
        if self.firmware is not None:
            self.firmware.enter_samba()
        self.invalidate()

    def shut_down(self) -> None:
        self.log("INFO:power_manager: shutdown requested from the control center")
        self.power_cut()

    def reboot(self) -> None:
        self.log("INFO:power_manager: rebooting")
        self.ui.drop_all_modals()
        self.drop_links()
        self.power_on()

    @property
    def booting(self) -> bool:
        return self.keyos_running and time.monotonic() < self._booted_at

    def is_locked(self) -> bool:
        return not self.se.logged_in

    @property
    def onboarding(self) -> bool:
        """No PIN set yet (a new unit): onboarding runs where the lock screen would."""
        return not self.se.pin_set and not self.se.wiped

    def now(self) -> int:
        return int(time.time()) + self.clock_offset

    # ------------------------------------------------------------ the debug interface's presence
    def debug_available(self) -> bool:
        """The vendor interface exists: powered, and in production only with Developer Mode on."""
        return self.keyos_running and (self.developer_mode or not self.build.production)

    def on_link_reset(self, callback: Callable[[], None]) -> None:
        """Called whenever the USB connection goes away (power, reboot, Developer Mode off)."""
        self._link_listeners.append(callback)

    def drop_links(self) -> None:
        for callback in self._link_listeners:
            callback()

    def set_developer_mode(self, on: bool) -> None:
        self.developer_mode = on
        self.log(f"INFO:settings: Developer Mode {'enabled' if on else 'disabled'}")
        if not self.debug_available():
            self.drop_links()  # the interface leaves the configuration; the device re-enumerates
        self.invalidate()

    # ------------------------------------------------------------ display
    def invalidate(self) -> None:
        self._frame = None
        self.frame_counter += 1
        for callback in self._change_listeners:
            callback()

    def on_change(self, callback: Callable[[], None]) -> None:
        """Called after every change of state (power, boot, mode, screen): the USB port re-reads its identity."""
        self._change_listeners.append(callback)

    def remove_on_change(self, callback: Callable[[], None]) -> None:
        self._change_listeners.remove(callback)

    def framebuffer(self) -> Image.Image:
        """RGBA 480x800 of what the panel shows now; black when it is off."""
        splash = self.booting
        if self._frame is None or splash != self._frame_splash:
            boot_screen = self.firmware.screen() if self.firmware is not None and self.powered else None
            if not self.screen_on:
                self._frame = render.blank(render.BLACK)
            elif boot_screen is not None:
                self._frame = boot_screen
            elif splash:
                canvas = render.Canvas(render.blank())
                self.splash.draw(canvas)
                self._frame = canvas.image
            else:
                self._frame = self.ui.render()
            if self._frame_splash != splash:
                self.frame_counter += 1
            self._frame_splash = splash
        return self._frame

    # ------------------------------------------------------------ input
    def _wake(self) -> bool:
        """Input on a dark screen only wakes it (to the lock screen). True if it was dark."""
        if self.screen_on:
            return False
        self.screen_on = True
        self.invalidate()
        return True

    def touch(self, x: int, y: int) -> None:
        if not self.powered or self.booting or self._wake():
            return
        if not self.keyos_running:
            if self.firmware is not None:
                self.firmware.touch(x, y)  # the bootloader's own pages
        elif in_home_button(x, y):
            if not self.is_locked():
                self.ui.go_home()
        elif 0 <= x < render.WIDTH and 0 <= y < render.HEIGHT:
            self.ui.tap(x, y)

    def swipe(self, sx: int, sy: int, ex: int, ey: int, duration_ms: int = 300, steps: int = 10) -> None:
        if (sx, sy) == (ex, ey):
            self.touch(sx, sy)
        elif self.keyos_running and not self.booting and not self._wake():
            if in_home_button(sx, sy):
                if not self.is_locked():
                    self.ui.go_home()
            elif 0 <= sx < render.WIDTH and 0 <= sy < render.HEIGHT:
                self.ui.swipe(sx, sy, ex, ey)

    def press_power(self, long: bool) -> None:
        """Short: lock and turn the screen off (or wake it). Long: the control center."""
        if not self.powered:
            if long:
                self.power_on()
            return
        if self.booting or not self.keyos_running:
            return
        if self._wake():
            if long:
                self.ui.open_control_center()
            return
        if long:
            self.ui.open_control_center()
            return
        self.lock_device()
        self.screen_on = False
        self.invalidate()

    def power_button(self, down: bool) -> None:
        """An edge of the physical button (the relay across it). A press powers an off unit on; let go
        after ``HARD_OFF_SECONDS`` the unit is off (judged at release: there are no timer threads);
        two clicks at the logo open the bootloader's Boot Menu (the release of the click that powered
        the unit on comes before keyos-boot watches the button, so from off it takes three);
        otherwise KeyOS sees a press, long from 1000 ms (keyos.md §2.3)."""
        now = time.monotonic()
        if down:
            self._button_down_at, self._powered_by_press = now, not self.powered
            if not self.powered:
                self.power_on()  # keyos-boot watches the button for a second before it starts KeyOS
                self._booted_at = self._logo_until = self._booted_at + BOOT_MENU_WINDOW
            return
        if self._button_down_at is None:
            return
        held, self._button_down_at = now - self._button_down_at, None
        if held >= HARD_OFF_SECONDS:
            self.log("INFO:pmic: power button held 10 s: power off")
            self.power_cut()
        elif self._powered_by_press:
            self._powered_by_press = False
        elif self.powered and self.firmware is not None and now < self._logo_until:
            self._menu_clicks += 1
            self._logo_until = self._booted_at = max(self._booted_at, now + BOOT_MENU_WINDOW)
            if self._menu_clicks >= BOOT_MENU_CLICKS:
                self.enter_boot_menu()
        else:
            self.press_power(long=held >= 1.0)

    def enter_boot_menu(self) -> None:
        """keyos-boot shows its Boot Menu instead of verifying and starting KeyOS."""
        self.ui.drop_all_modals()
        self.se.logout()
        self.keyos.halt()
        self.keyos_running = False
        self.drop_links()
        self._logo_until = 0.0
        self.firmware.boot_menu()
        self.invalidate()

    def type_text(self, text: str) -> None:
        if self.keyos_running and not self.booting and not self._wake():
            for char in text:
                self.ui.key(char)

    # ------------------------------------------------------------ security
    def login(self, pin: str) -> bool:
        ok = self.se.login(pin)
        if ok:
            self.log("INFO:security: login succeeded")
            self.ui.lock_screen.reset()
            self.ui.refresh_modals()
        elif self.se.wiped:
            self.log("WARN:security: no login attempts remaining, erasing the seed and rebooting")
            self.reboot()
        else:
            self.log(f"WARN:security: wrong PIN, {self.se.attempts_remaining} attempts remaining")
        self.invalidate()
        return ok

    def lock_device(self) -> None:
        self.ui.close_control_center()
        if not self.is_locked():
            self.log("INFO:gui_server: locked")
        self.se.logout()
        self.ui.lock_screen.reset()
        self.ui.refresh_modals()

    # ------------------------------------------------------------ apps
    def launch_app(self, app_id: bytes) -> RunApp:
        if not self.powered or self.booting:
            return RunApp("NotReady")
        result = self.keyos.launch(app_id, locked=self.is_locked())
        if result.outcome in ("Launched", "AlreadyRunning"):
            screen = self.app_screens.get(result.pid)
            if screen is None:
                screen = self.app_screens[result.pid] = screen_for(self, self.keyos.apps[app_id])
            self.ui.push_app(result.pid, screen)
        return result

    def close_app(self, pid: int) -> bool:
        if self.keyos.terminate(pid) is None:
            return False
        self.app_screens.pop(pid, None)
        self.ui.remove_app(pid)
        return True

    # ------------------------------------------------------------ logs
    def log(self, line: str) -> None:
        self.logs.append(line)

    def logs_since(self, cursor: int) -> tuple[list[str], int]:
        return self.logs.since(cursor)
