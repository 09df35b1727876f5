"""What state a Prime is in (booting, onboarding, locked, unlocked, which build flavour) and how to get
it to a known one.

Everything here is read from the device's own answers, never from knowing what kind of unit it is:
- readiness and lock state from LAUNCH_APP of an id no app has (NotReady while the GUI boots,
  Locked while the lock screen **or onboarding** runs, AppIdNotFound otherwise), which launches nothing;
  onboarding is told from the lock screen by its process in GET_PROCESS_LIST (the profile names it),
  and no PIN is ever typed while it runs;
- which flavour the build *behaves* as, from KERNEL_CMD 't' (read-only), which the profile says only some
  flavours answer: an observation to check against the flavour the lab declares, never the declaration
  (a production build whose lockdown broke answers like a development one);
- unlocking by tapping the PIN pad where the screen shows it (the caller reads the screen: the link does
  not, `hil.lab.pin_guard` does with `hil.vision.pin_screen`): over the debug link where the build takes
  input while locked, else with a ``touch`` that presses the glass itself (a stylus robot and a relay).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from hil.errors import InfrastructureError
from hil.profile import Profile
from hil.link.client import DeviceError, DeviceLocked, PrimeClient
from hil.link.protocol import LaunchStatus
from hil.machine import scaled
from hil.stimuli.touch import DebugTouch, PinPad, Touch, enter_pin

NOT_AN_APP = bytes.fromhex("ff" * 16)  # an AppId no bundle carries
DARK_LEVEL = 16  # brightest pixel of a screen that is off
PIN_CHECK_SECONDS = 5.0  # KeyOS adds a random delay to each login (keyos.md §2.2)
POLL_S = 0.1  # longest gap between two reads of the lock state; a log record from the device ends it sooner


class DeviceStateError(InfrastructureError):
    """The device could not be brought to the state a test needs (not a verdict on the device)."""


class PinRejected(DeviceStateError):
    """The test PIN did not unlock the device.  Trying again would spend more of its 10 attempts."""


def is_locked(prime: PrimeClient) -> bool | None:
    """True/False, or None while the GUI is still booting."""
    try:
        status = prime.launch_app(NOT_AN_APP).status
    except DeviceLocked:
        return True
    except DeviceError:
        raise DeviceStateError(f"{prime.device}: launching a non-existent app answered Err (a KeyOS older than "
                               "launch statuses); its lock state cannot be read over the link") from None
    if status is LaunchStatus.NOT_READY:
        return None
    if status is LaunchStatus.APP_ID_NOT_FOUND:
        return False
    raise DeviceStateError(f"{prime.device}: launching a non-existent app answered {status.name}")


class State(enum.Enum):
    """What KeyOS is doing, as its debug link tells it."""

    BOOTING = "booting"
    ONBOARDING = "onboarding"
    LOCKED = "locked"
    UNLOCKED = "unlocked"


def running_processes(prime: PrimeClient) -> set[str]:
    """Process names in GET_PROCESS_LIST's compact form (``R pid ppid name …`` rows)."""
    rows = (line.split() for line in prime.process_list().splitlines())
    return {row[3] for row in rows if len(row) >= 4 and row[0] == "R"}


def device_state(prime: PrimeClient, profile: Profile) -> State:
    """Booting, onboarding, locked or unlocked, from the launch probe and, when it says Locked, the
    process list (gui-server answers Locked during onboarding too)."""
    locked = is_locked(prime)
    if locked is None:
        return State.BOOTING
    if not locked:
        return State.UNLOCKED
    return State.ONBOARDING if profile.onboarding_process in running_processes(prime) else State.LOCKED


def wait_ready(prime: PrimeClient, timeout: float = 30.0) -> bool:
    """Wait for the GUI to finish booting; returns whether the device is locked."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    while (locked := is_locked(prime)) is None:
        if time.monotonic() > deadline:
            raise DeviceStateError(f"{prime.device}: GUI still not ready (LAUNCH_APP answers NotReady) after {timeout:g} s")
        prime.wait_log(POLL_S)
    return locked


def detect_flavour(prime: PrimeClient, profile: Profile) -> str:
    """The flavour the build behaves as, from whether it answers KERNEL_CMD (the profile says who does)."""
    try:
        prime.kernel_cmd("t")
        answered = True
    except DeviceError:
        answered = False
    matches = [name for name, rules in profile.flavours.items() if ("KERNEL_CMD" in rules.allowed) == answered]
    if len(matches) != 1:
        raise DeviceStateError(f"{prime.device}: KERNEL_CMD {'answered' if answered else 'refused'}; profile "
                               f"{profile.name} has {len(matches) or 'no'} flavours that behave so "
                               f"({', '.join(matches) or 'none'})")
    return matches[0]


def screen_is_dark(prime: PrimeClient) -> bool:
    return prime.screenshot().convert("L").getextrema()[1] < DARK_LEVEL


def show_lock_screen(prime: PrimeClient, touch: Touch | None = None) -> None:
    """A fresh lock screen, lit, with nothing typed.

    Over the debug link (a build that takes input while locked) the screenshot tells dark from lit. A
    locked production unit shows nothing over the link, so ``touch`` works blind: its power press locks
    (clearing a half-typed PIN) or wakes a dark screen, and a tap on the home area then wakes a screen
    still dark, while on the lit lock screen it does nothing.
    """
    if touch is not None:
        touch.power()
        touch.home()
        return
    prime.press_power()  # unlocked or lit: lock (which clears any half-typed PIN) and go dark
    if screen_is_dark(prime):
        prime.press_power()  # wake to the lock screen


def unlock(prime: PrimeClient, pin: str, find_pad: Callable[[], PinPad], touch: Touch | None = None) -> None:
    """Lock, wake to a fresh lock screen, and type ``pin`` where ``find_pad()`` (the caller's reading of
    the screen now) shows the keys, with ``touch`` (default: the debug link), then read the lock state.

    One attempt only: wrong PINs count towards the 10 that wipe the seed, so a PIN that is not
    accepted is reported, never retried.
    """
    show_lock_screen(prime, touch)
    if is_locked(prime) is not True or (touch is None and screen_is_dark(prime)):  # never type a PIN elsewhere
        raise DeviceStateError(f"{prime.device}: not on a lit lock screen after the power presses; PIN not typed")
    enter_pin(touch or DebugTouch(prime, prime.home_button), find_pad(), pin)
    if not wait_unlocked(prime):
        raise PinRejected(f"{prime.device}: the lock screen did not accept the test PIN (one attempt used; "
                          "check the PIN the unit was provisioned with)")


def wait_unlocked(prime: PrimeClient, timeout: float = PIN_CHECK_SECONDS) -> bool:
    """Whether the device reads unlocked before ``timeout``: a PIN just typed is judged only after
    KeyOS's random login delay, so a single read right after typing proves nothing either way."""
    deadline = time.monotonic() + scaled(timeout)
    while is_locked(prime) is not False:  # read-only: polling spends no attempt
        if time.monotonic() > deadline:
            return False
        prime.wait_log(POLL_S)
    return True


def takes_input_while_locked(profile: Profile, flavour: str) -> bool:
    """Whether the build accepts debug-link touch input on the lock screen (the profile's flavour rules)."""
    return "SWIPE" not in profile.flavours[flavour].need_unlocked  # type: ignore[index]


class HomeScreen:
    """The unit as one link last saw it right after a home press: its display and its process list.

    The home press closes the app in front, prompts and the control center, so a unit that shows exactly
    this display and runs exactly these processes again is home already and is not pressed again (the press
    is held 50 ms, as ``dispatch.rs`` sleeps through it, then answered: ~4x a screenshot). The evidence is
    the unit read now, never a belief that it stayed home: any other pixel (a clock that moved included) or
    process (an app launched but not drawn yet) means a press. What a press left is kept only once two
    reads in a row agree (a screen still being redrawn is not); otherwise the next test presses again.
    assumed: KeyOS has drawn a press it acknowledged by the time two screenshots agree (not checked on
    KeyOS); were it slower, a test could start on a screen it left, and its checks still need their own
    positive evidence."""

    def __init__(self) -> None:
        self._seen: tuple[bytes, str] | None = None

    @staticmethod
    def _read(prime: PrimeClient) -> tuple[bytes, str]:
        return prime.screenshot().tobytes(), prime.process_list()

    def unlocked_and_home(self, prime: PrimeClient, profile: Profile, flavour: str) -> bool | None:
        """Whether the unit is, by its answers now, unlocked and home as this link left it, without the lock
        probe: only where the build refuses SCREENSHOT while locked (production usb-debug's ``requires_unlock``,
        answering Locked: keyos.md §2.3, ``os/usb-debug/src/dispatch.rs``), so that a screenshot it serves is
        its own word that the unit is unlocked, and only when that screen and the process list are exactly
        what this link saw after its last press, which followed a probe that read unlocked (so onboarding's
        process is not among them). True: home, unlocked. False: the unit answered and is not that (locked,
        or another pixel or process): the caller probes and presses. None: nothing known (no press seen yet,
        or a build that serves screenshots while locked, whose screen is no word on the lock): the caller
        probes. assumed: the dispatcher's lock and the lock screen's are one state (not checked on KeyOS);
        were the dispatcher to serve a screenshot after the lock screen came up, the screen would differ
        from home unless the lock screen were not yet drawn."""
        if self._seen is None or "SCREENSHOT" not in profile.flavours[flavour].need_unlocked:  # type: ignore[index]
            return None
        try:
            return self._read(prime) == self._seen
        except DeviceLocked:
            return False

    def go(self, prime: PrimeClient, changed: bool = False) -> None:
        """Home: pressed unless the unit is as this link saw it after its last press (kept as above);
        ``changed``: the caller read it otherwise already."""
        if not changed and self._seen is not None and self._read(prime) == self._seen:
            return
        self._seen = None
        prime.home()
        after = self._read(prime)
        if self._read(prime) == after:
            self._seen = after


def bring_home(prime: PrimeClient, profile: Profile, flavour: str, unlock_with: Callable[[Touch | None], None],
               timeout: float = 30.0, touch: Touch | None = None, home: HomeScreen | None = None) -> bool:
    """The known state tests start from: unlocked on the home screen where the build lets the debug
    link type the PIN, or where ``touch`` (a stylus robot) can type it on a locked unit; otherwise as it
    is.  A unit that is already unlocked is only sent home (the home button closes apps, prompts and the
    control center), not locked and unlocked again.  ``unlock_with(touch)`` types the PIN (the lab's
    guarded entry, `hil.lab.pin_guard`), never while onboarding runs.  With ``home`` (the session's, kept
    for one link) a unit already showing its home screen is not pressed again, and one whose build's own
    refusal rules say it is unlocked (`HomeScreen.unlocked_and_home`) is not probed either: two answers
    instead of three.  Returns whether the device ends up unlocked."""
    def type_pin(t: Touch | None) -> None:
        state = device_state(prime, profile)
        if state is not State.LOCKED:
            raise DeviceStateError(f"{prime.device}: {state.value} runs, not the lock screen: no PIN typed "
                                   "(provision the unit through onboarding first)")
        unlock_with(t)

    known = None if home is None else home.unlocked_and_home(prime, profile, flavour)
    if known:
        return True
    locked = wait_ready(prime, timeout)
    if locked and takes_input_while_locked(profile, flavour):
        type_pin(None)
        locked = False
    elif locked and touch is not None:
        type_pin(touch)
        locked = False
    if not locked:
        if home is None:
            prime.home()
        else:
            home.go(prime, changed=known is False)
    return not locked
