"""The KeyOS PIN screen, found by what it shows: where its keys are and how many attempts remain.

What KeyOS draws (``os/gui-app-lock-screen/ui/app.slint`` and ``i18n/en.json``, Foundation-Devices/KeyOS
at 204fa99/cff34aa): the heading "Enter PIN", a PIN entry whose accept button reads "Unlock", and,
once a login has failed, ``IncorrectPinWarning``: "1 failed attempt" / "{n} failed attempts" while more
than 6 attempts remain, then "{n} failed attempts … Passport will erase its Master Key after {r} more
attempts". Remaining attempts = ``MAX_LOGIN_ATTEMPTS`` (10, ``api/security/src/lib.rs``) - failed.
The warning yields to the security words once a PIN prefix is typed, so it is read on an empty entry.

Before the PIN pad, each lock shows the lock shield and the hint "Swipe up to unlock" (``main.swipeup``,
``ui/app.slint``: ``if State.show-login: LoginScreen``, shown once a swipe moves up more than its
``swipe-threshold``, 80 px; ``src/main.rs`` hides the login on every lock, gui-server's ``Custom2``).
`wait_pin_screen` swipes up from the hint where it reads it, and only then: a swipe on another screen
(the home screen's) could do something else.

A screen is a PIN screen only when the heading, all ten digits and "Unlock" are each read once; any
doubt is `NotAPinScreen`, so a PIN is never typed onto something else.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hil.machine import scaled
from hil.vision import ocr
from hil.vision.controls import ControlNotFound, find_control, normal

if TYPE_CHECKING:
    from hil.stimuli.touch import Touch

MAX_LOGIN_ATTEMPTS = 10  # api/security/src/lib.rs
HEADING = "Enter PIN"
ACCEPT = "Unlock"
SWIPE_HINT = "Swipe up to unlock"  # os/gui-app-lock-screen i18n/en.json main.swipeup
# px the swipe moves up from the hint: well past KeyOS's 80 px swipe-threshold (app.slint). assumed: it stays on the
# panel, as the hint is drawn near its bottom (y 744 of 800 in app.slint), so the swipe ends near y 444
SWIPE_UP = 300
DELETE = "Delete"  # assumed: the PinEntry widget's delete key label is not in the indexed KeyOS source
_FAILED = re.compile(r"(\d+)\s*failed\s*attempts?", re.IGNORECASE)


class NotAPinScreen(ControlNotFound):
    """What the screen shows is not (unambiguously) KeyOS's PIN entry: nothing may be typed on it."""


@dataclass(frozen=True)
class PinScreen:
    """Where the keys are (display pixels; what `hil.stimuli.touch.enter_pin` taps) and the failed count."""

    keys: dict[str, tuple[int, int]]  # "0".."9"
    enter: tuple[int, int]
    delete: tuple[int, int] | None
    failed: int

    @property
    def remaining(self) -> int:
        return MAX_LOGIN_ATTEMPTS - self.failed


def find_pin_screen(lines: list[ocr.Line]) -> PinScreen:
    """The PIN screen in OCR'd ``lines`` (display pixels), or `NotAPinScreen` saying what is missing."""
    texts = [ln.text.strip() for ln in lines]
    if normal(HEADING) not in map(normal, texts):
        raise NotAPinScreen(f"no {HEADING!r} heading on the screen (read: {_said(texts)})")
    try:
        keys = {label: find_control(lines, label) for label in "0123456789"}
        enter = find_control(lines, ACCEPT)
    except ControlNotFound as e:
        raise NotAPinScreen(f"not the PIN screen: PIN key {e}") from None
    try:
        delete: tuple[int, int] | None = find_control(lines, DELETE)
    except ControlNotFound:
        delete = None
    counts = [int(m.group(1)) for t in texts if (m := _FAILED.search(t))]
    if len(set(counts)) > 1:
        raise NotAPinScreen(f"two failed-attempt counts on the screen: {counts}")
    failed = counts[0] if counts else 0
    if not 0 <= failed < MAX_LOGIN_ATTEMPTS:
        raise NotAPinScreen(f"failed-attempt count {failed} is out of range")
    return PinScreen(keys, enter, delete, failed)


def read_pin_screen(image: np.ndarray) -> PinScreen:
    """OCR a rectified 480x800 BGR image (a screenshot or a rectified camera view) as the PIN screen."""
    from hil.vision.display import read_image

    return find_pin_screen(read_image(image).lines)


def swipe_hint(lines: list[ocr.Line]) -> tuple[int, int] | None:
    """Where the lock screen's "Swipe up to unlock" hint is read in ``lines``, or None."""
    try:
        return find_control(lines, SWIPE_HINT)
    except ControlNotFound:
        return None


def wait_pin_screen(look: Callable[[], np.ndarray], touch: Touch | None = None, timeout: float = 10.0) -> PinScreen:
    """The PIN screen once ``look()`` shows it: a camera's frame may still be the one from before the wake.
    Where a reading shows the swipe hint instead, ``touch`` swipes up from it (without ``touch`` the screen is
    only watched). `NotAPinScreen` (the last reading's) when it is not seen within ``timeout`` idle-machine
    seconds. Every place that brings up the PIN pad comes here, so all of them swipe as the unit needs."""
    from hil.vision.display import read_image

    deadline = time.monotonic() + scaled(timeout)
    while True:
        # no pause between readings: a camera's look() waits for its next frame, a screenshot is read anew
        lines = read_image(look()).lines
        try:
            return find_pin_screen(lines)
        except NotAPinScreen as e:
            hint = swipe_hint(lines)
            if time.monotonic() > deadline:
                if hint is not None:
                    raise NotAPinScreen(f"the lock screen still shows {SWIPE_HINT!r}"
                                        f"{' after swiping up from it' if touch else ' (nothing here to swipe)'}") from e
                raise
            if touch is not None and hint is not None:
                x, y = hint
                touch.swipe(x, y, x, y - SWIPE_UP)


def wait_lock_screen(look: Callable[[], np.ndarray], timeout: float = 10.0) -> None:
    """Until ``look()`` shows KeyOS's lock screen, the swipe hint or the PIN pad, touching nothing (a unit just
    booted shows the hint); `NotAPinScreen` (what was read last) after ``timeout`` idle-machine seconds."""
    from hil.vision.display import read_image

    deadline = time.monotonic() + scaled(timeout)
    while True:
        lines = read_image(look()).lines
        if swipe_hint(lines) is not None:
            return
        try:
            find_pin_screen(lines)
            return
        except NotAPinScreen:
            if time.monotonic() > deadline:
                raise


def _said(texts: list[str]) -> str:
    return ", ".join(repr(t[:30]) for t in texts[:12]) or "nothing"
