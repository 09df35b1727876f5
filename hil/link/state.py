"""What state a Prime is in (booting, locked, which build flavour) and how to get it to a known one.

Everything here is read from the device's own answers, never from knowing what kind of unit it is:
- readiness and lock state from LAUNCH_APP of an id no app has (NotReady while the GUI boots,
  Locked while the lock screen is up, AppIdNotFound otherwise), which launches nothing;
- the build flavour from KERNEL_CMD 't' (read-only), which the profile says only some flavours answer;
- unlocking by tapping the profile's PIN pad, which only builds that take input while locked allow.
"""

from __future__ import annotations

import time

from hil.errors import InfrastructureError
from hil.farm.config import Profile
from hil.link.client import DeviceError, DeviceLocked, PrimeClient
from hil.link.protocol import LaunchStatus

NOT_AN_APP = bytes.fromhex("ff" * 16)  # an AppId no bundle carries
DARK_LEVEL = 16  # brightest pixel of a screen that is off


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


def wait_ready(prime: PrimeClient, timeout: float = 30.0) -> bool:
    """Wait for the GUI to finish booting; returns whether the device is locked."""
    deadline = time.monotonic() + timeout
    while (locked := is_locked(prime)) is None:
        if time.monotonic() > deadline:
            raise DeviceStateError(f"{prime.device}: GUI still not ready (LAUNCH_APP answers NotReady) after {timeout:g} s")
        time.sleep(0.1)
    return locked


def detect_flavour(prime: PrimeClient, profile: Profile) -> str:
    """The build flavour, from whether the device answers KERNEL_CMD (the profile says who does)."""
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


def show_lock_screen(prime: PrimeClient) -> None:
    """A fresh lock screen, lit, with nothing typed; needs a build that takes input while locked."""
    prime.press_power()  # unlocked or lit: lock (which clears any half-typed PIN) and go dark
    if screen_is_dark(prime):
        prime.press_power()  # wake to the lock screen


def unlock(prime: PrimeClient, profile: Profile, pin: str) -> None:
    """Lock, wake to a fresh lock screen, and type ``pin`` on the PIN pad.

    One attempt only: wrong PINs count towards the 10 that wipe the seed, so a PIN that is not
    accepted is reported, never retried.
    """
    pad = profile.touch.pin_pad
    if pad is None:
        raise DeviceStateError(f"profile {profile.name} has no touch.pin_pad; cannot unlock {prime.device} by taps")
    show_lock_screen(prime)
    for digit in pin:
        prime.tap(*pad.keys[digit])
    prime.tap(*pad.enter)
    if is_locked(prime):
        raise PinRejected(f"{prime.device}: the lock screen did not accept the test PIN (one attempt used; "
                               "check the PIN the unit was provisioned with)")


def bring_home(prime: PrimeClient, profile: Profile, flavour: str, pin: str, timeout: float = 30.0) -> bool:
    """The known state tests start from: unlocked on the home screen where the build lets the debug
    link type the PIN; otherwise as it is.  Returns whether the device ends up unlocked."""
    locked = wait_ready(prime, timeout)
    input_while_locked = "SWIPE" not in profile.flavours[flavour].need_unlocked  # type: ignore[index]
    if input_while_locked:
        unlock(prime, profile, pin)
        locked = False
    if not locked:
        prime.home()
    return not locked
