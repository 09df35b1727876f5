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

A failed-attempt count is only ever what the screen was read to show. The warning read whole and sure gives
it; no warning gives 0 only where the screen shows no ink where it would be (between the heading and the
keypad, outside every line read: `hil.vision.display.ink`) and no glare there. Anything else (a line in the
warning's words that does not read whole, one read unsure, a line of ink no text was read from, glare over
the place) is `AttemptsUnreadable`: broken, never a count.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import TYPE_CHECKING

import cv2
import numpy as np
from embit.wordlists.bip39 import WORDLIST

from hil.machine import scaled
from hil.vision import ocr
from hil.vision.controls import ControlNotFound, find_control, normal
from hil.vision.match import NEAR_EVERY

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
# a line read near one of these words is part of the warning
WARNING_WORDS = ("failed", "attempt", "attempts", "passport", "erase", "master")
BIP39 = frozenset(WORDLIST)
MIN_CONFIDENCE = 0.85  # a warning line read below it may have its count misread (hil.vision.display's threshold)


class NotAPinScreen(ControlNotFound):
    """What the screen shows is not (unambiguously) KeyOS's PIN entry: nothing may be typed on it."""


class AttemptsUnreadable(NotAPinScreen):
    """The PIN screen is read, but not its failed-attempt count: the warning may be there, unreadable."""


@dataclass(frozen=True)
class PinScreen:
    """Where the keys are (display pixels; what `hil.stimuli.touch.enter_pin` taps) and the failed count."""

    keys: dict[str, tuple[int, int]]  # "0".."9"
    enter: tuple[int, int]
    delete: tuple[int, int] | None
    failed: int
    left: int | None = None  # the attempts the erase warning says are left (None: no erase warning shown)

    @property
    def remaining(self) -> int:
        return MAX_LOGIN_ATTEMPTS - self.failed


def find_pin_screen(lines: list[ocr.Line], image: np.ndarray) -> PinScreen:
    """The PIN screen in ``lines`` OCR'd from ``image`` (rectified, 480x800 BGR, display pixels), or
    `NotAPinScreen` saying what is missing (`AttemptsUnreadable` where only the failed-attempt count is)."""
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
    band = _warning_band(lines, image)
    inside = [ln for ln in lines if band[1] <= (ln.box[1] + ln.box[3]) / 2 < band[3]]
    warning = sorted((ln for ln in inside if _in_warning_words(ln.text)),
                     key=lambda ln: (ln.box[1] + ln.box[3], ln.box[0]))  # top to bottom by their middles
    if (other := [ln.text for ln in inside if ln not in warning and not _shown_beside_the_warning(ln.text)]):
        raise AttemptsUnreadable(f"in the place of the failed-attempt warning, {other} reads as neither it nor "
                                 "anything else the PIN screen shows")
    if not warning:
        _blank_where_the_warning_would_be(lines, image, band)
        return PinScreen(keys, enter, delete, 0)
    if (unsure := [ln for ln in warning if any(c.isdigit() for c in ln.text) and ln.confidence < MIN_CONFIDENCE]):
        raise AttemptsUnreadable("the failed-attempt count read unsure: "
                                 + "; ".join(f"{ln.text!r} {ln.confidence:.2f}" for ln in unsure))
    failed, left = _warning_read(" ".join(ln.text for ln in warning))
    return PinScreen(keys, enter, delete, failed, left)


def _warning_texts() -> dict[str, tuple[int, int | None]]:
    """Every text KeyOS's IncorrectPinWarning can show (i18n/en.json common.changePin.1FailedAttempt,
    XFailedAttempts, xFailedAttemptsFactoryWarning1Remaining and XRemaining; app.slint picks one), in `_key` form,
    with the failed count and the attempts it says are left."""
    out: dict[str, tuple[int, int | None]] = {}
    for failed in range(1, MAX_LOGIN_ATTEMPTS):
        out[_key("1 failed attempt" if failed == 1 else f"{failed} failed attempts")] = (failed, None)
        for left in range(1, MAX_LOGIN_ATTEMPTS):
            more = "1 more attempt" if left == 1 else f"{left} more attempts"
            out[_key(f"{failed} failed attempts Passport will erase its Master Key after {more}")] = (failed, left)
    return out


def _key(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def _edits(a: str, b: str, limit: int) -> int:
    """The edit distance of ``a`` and ``b``, or ``limit + 1`` where it is more (only the cells within ``limit`` of
    the diagonal are computed: the erase warning's 81 texts are compared on every reading of a unit near a wipe)."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    over = limit + 1
    row = [j if j <= limit else over for j in range(len(b) + 1)]
    for i, ca in enumerate(a, 1):
        lo, hi = max(1, i - limit), min(len(b), i + limit)
        prev, row[lo - 1] = row[lo - 1], (i if lo == 1 else over)
        for j in range(lo, hi + 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != b[j - 1]), over)
        if hi < len(b):
            row[hi + 1] = over
    return min(row[-1], over)


def _warning_read(said: str) -> tuple[int, int | None]:
    """The (failed, left) of the one warning text ``said`` reads as, up to a misread glyph per `NEAR_EVERY`
    characters; `AttemptsUnreadable` where none is that near, or two are equally near (a count misread: "l more
    attempts" could be any count; "l more attempt", singular, is only 1)."""
    read = _key(said)
    near = sorted((d, text) for text in WARNINGS
                  if (d := _edits(read, text, len(text) // NEAR_EVERY)) <= len(text) // NEAR_EVERY)
    if not near or len(near) > 1 and near[1][0] == near[0][0]:
        raise AttemptsUnreadable(f"the failed-attempt warning does not read as one of KeyOS's: {said[:90]!r}")
    return WARNINGS[near[0][1]]


# what a PIN entry reads as: the emulator's dash and stars; assumed: KeyOS's dots (auth.slint PinDot) read as dots,
# bullets, o or 0 where the recogniser reads them at all
PIN_ENTRY = "-*•·.oO0●○"


def _shown_beside_the_warning(text: str) -> bool:
    """What else the PIN screen shows between its heading and keypad: the PIN entry (the emulator draws it as
    text; KeyOS as dots), the security words or their heading (app.slint: shown instead of the warning)."""
    t = text.strip()
    return (bool(t) and set(t) <= set(PIN_ENTRY)) or "securitywords" in normal(t) or \
        all(w in BIP39 for w in t.lower().split())


WARNINGS = _warning_texts()


def _in_warning_words(text: str) -> bool:
    """Whether a line reads as part of the failed-attempt warning, up to a glyph or so misread."""
    return any(SequenceMatcher(None, word, w).ratio() >= 0.8
               for word in re.findall(r"[a-z]{4,}", text.lower()) for w in WARNING_WORDS)


RULE = 0.8  # share of a row in ink that makes it a rule: a line of text, even across the panel, is far sparser
MIN_INK = 6  # px: ink thinner than this either way is a speck or a hairline, not a line of text
# assumed: KeyOS's PIN entry, its shield image (96 px) with the dots over it (ui/ui/widgets/auth.slint PinEntry), is
# taller than twice the "Enter PIN" heading (HeadingMd): a blob that tall is a picture, not a line of text
TALLEST_LINE = 2.0


def _warning_band(lines: list[ocr.Line], image: np.ndarray) -> tuple[int, int, int, int]:
    """Where the warning would be: between the heading and the keypad's top label (app.slint: it is the
    login's row after the heading and the PIN entry), 4 px in from the panel's rim."""
    heading = next(ln for ln in lines if normal(ln.text) == normal(HEADING))
    top = min(ln.box[1] for ln in lines if ln.text.strip() in tuple("0123456789"))
    return 4, heading.box[3], image.shape[1] - 4, max(heading.box[3], top)


def _blank_where_the_warning_would_be(lines: list[ocr.Line], image: np.ndarray,
                                      band: tuple[int, int, int, int]) -> None:
    """`AttemptsUnreadable` unless the ``band`` shows no glare and no ink that no line was read from. Ink that
    runs on into the keypad is the keypad's (its key caps)."""
    from hil.vision.display import GLARE_FRACTION, GLARE_LEVEL, glare, ink

    if band[3] - band[1] < MIN_INK:
        return
    if glare(image, band) > GLARE_FRACTION and np.median(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)) < GLARE_LEVEL:
        raise AttemptsUnreadable("glare over the place of the failed-attempt warning")  # (a screenshot's white is none)
    mask = ink(image, band).astype(np.uint8)
    mask[mask.mean(axis=1) >= RULE] = 0  # a rule across the panel (the title's separator) is no text
    for ln in lines:  # the ink of what was read, with a blur's halo
        m = (ln.box[3] - ln.box[1]) // 2
        mask[max(0, ln.box[1] - m - band[1]):max(0, ln.box[3] + m - band[1]),
             max(0, ln.box[0] - m - band[0]):max(0, ln.box[2] + m - band[0])] = 0
    heading = next(ln for ln in lines if normal(ln.text) == normal(HEADING))
    tallest = TALLEST_LINE * (heading.box[3] - heading.box[1])
    count, _, stats, _ = cv2.connectedComponentsWithStats(cv2.dilate(mask, np.ones((1, 9), np.uint8)), connectivity=8)
    for x, y, bw, bh, _ in stats[1:count]:
        if y + bh >= mask.shape[0] - 1 or min(bw, bh) < MIN_INK or bh > tallest:
            continue
        raise AttemptsUnreadable(f"ink ({bw}x{bh} px at y {band[1] + y}) where the failed-attempt warning would be, "
                                 "and no text read from it")


def read_pin_screen(image: np.ndarray) -> PinScreen:
    """OCR a rectified 480x800 BGR image (a screenshot or a rectified camera view) as the PIN screen."""
    from hil.vision.display import read_image

    return find_pin_screen(read_image(image).lines, image)


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
        image = look()
        lines = read_image(image).lines
        try:
            return find_pin_screen(lines, image)
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
        image = look()
        lines = read_image(image).lines
        if swipe_hint(lines) is not None:
            return
        try:
            find_pin_screen(lines, image)
            return
        except AttemptsUnreadable:
            return  # the PIN pad, its count unread: still the lock screen
        except NotAPinScreen:
            if time.monotonic() > deadline:
                raise


def wait_swipe_hint(look: Callable[[], np.ndarray], timeout: float = 10.0) -> None:
    """Until ``look()`` shows the lock screen's swipe hint, touching nothing. Every lock starts on it (the login
    resets at each lock, ``os/gui-app-lock-screen/src/main.rs``), so a reading of the hint is a frame from after
    the lock, where a camera's frame may still show the PIN pad of the entry before it (the keys then tapped on
    the hint do nothing). `NotAPinScreen` with what was read last after ``timeout`` idle-machine seconds."""
    from hil.vision.display import read_image

    deadline = time.monotonic() + scaled(timeout)
    while True:
        lines = read_image(look()).lines
        if swipe_hint(lines) is not None:
            return
        if time.monotonic() > deadline:
            raise NotAPinScreen(f"no {SWIPE_HINT!r} within {scaled(timeout):.0f} s after a lock; read "
                                f"{_said([line.text for line in lines])}")


def _said(texts: list[str]) -> str:
    return ", ".join(repr(t[:30]) for t in texts[:12]) or "nothing"
