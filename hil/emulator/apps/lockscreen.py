"""The lock screen (``gui-app-lock-screen``, app id 0x0a00…): swipe hint, PIN pad, security words, attempts.

As KeyOS has it (Foundation-Devices/KeyOS ``os/gui-app-lock-screen/ui/app.slint`` @204fa99,
``src/main.rs`` @204fa99, ``i18n/en.json`` @cff34aa): each lock (gui-server's ``Custom2``) resets the input
and hides the login, so the screen shows the shield and the hint "Swipe up to unlock" (``main.swipeup``)
until a swipe moves up more than ``swipe-threshold`` (80 px); only then does the login (``if
State.show-login: LoginScreen``) show the PIN pad. Keys typed before that reach no PIN entry.

The security words appear once the PIN prefix has been typed, so the user can check the device before
typing the rest, and only while the setting ``ShowSecurityWords`` is on (it defaults off:
``os/settings/src/sys/mod.rs`` @60ed4d2 ``LoadDefault for ShowSecurityWords`` -> ``Self(false)``; the
lock screen reads it at start and follows its subscription). They are latched: the first time the entry
holds 4 digits, ``locked-prefix`` takes the entry and the words are computed from its first 4 digits; later
edits do not change them until ``reset_input_state`` (a login result, a cancel, a lock) clears both.
The other strings: heading "Enter PIN", accept button "Unlock", and, while any login attempt has failed (read
from the secure element, so it stays across locks), the failed-attempts warning in place of the security
words: "{n} failed attempts" while more than 6 remain, then the Master Key erase warning. The tenth
wrong PIN erases the seed.

The pad's layout depends on the seed (`pad_layout`): seeds 0 and 1 keep the table in ``hil.emulator.ui``
(the emulator's own tests tap it), every other seed moves the pad and shuffles its digits, so a harness
that taps a remembered coordinate instead of what the screen shows fails on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hil.emulator import render
from hil.emulator.secure_element import MAX_LOGIN_ATTEMPTS, MIN_PIN_LENGTH, PIN_PREFIX_LENGTH
import random

from hil.emulator.ui import CLASSIC_SEEDS, PIN_KEY_SIZE, PIN_KEYS, Screen

if TYPE_CHECKING:
    from hil.emulator.prime import Prime

SWIPE_HINT = "Swipe up to unlock"  # i18n/en.json main.swipeup, drawn at y 744 (app.slint)
HINT_Y = 744
SWIPE_THRESHOLD = 80  # app.slint swipe-threshold: a drag further up than this shows the login
KEY_LABELS = {"back": "Delete", "enter": "Unlock"}  # assumed: KeyOS's PinEntry delete key label is not indexed
PAD_SHIFTS = (0, -25, 25)  # vertical moves of the whole pad, by layout variant (keeps it clear of the warning)


def pad_layout(seed: int) -> dict[str, tuple[int, int]]:
    """Key centres for the emulator built with ``seed``: the classic table for seeds 0 and 1, else the
    digits shuffled over the ten digit places, the whole pad moved up or down, Delete and Unlock swapped
    on odd variants."""
    if seed in CLASSIC_SEEDS:
        return dict(PIN_KEYS)
    variant = seed % len(PAD_SHIFTS)
    places = [PIN_KEYS[d] for d in "1234567890"]
    digits = list("1234567890")
    random.Random(seed).shuffle(digits)
    layout = dict(zip(digits, places))
    back, enter = PIN_KEYS["back"], PIN_KEYS["enter"]
    layout["back"], layout["enter"] = (enter, back) if variant % 2 else (back, enter)
    dy = PAD_SHIFTS[variant] or PAD_SHIFTS[1]
    return {k: (x, y + dy) for k, (x, y) in layout.items()}


def failed_attempts_warning(remaining: int) -> str:
    """KeyOS's ``IncorrectPinWarning`` text for ``remaining`` attempts ("" when none has failed)."""
    failed = max(0, MAX_LOGIN_ATTEMPTS - remaining)
    if failed == 0:
        return ""
    if remaining > 6:
        return "1 failed attempt" if failed == 1 else f"{failed} failed attempts"
    more = "1 more attempt" if remaining == 1 else f"{remaining} more attempts"
    return f"{failed} failed attempts\n\nPassport will erase its Master Key after {more}"


class LockScreen(Screen):
    title = "Enter PIN"

    def __init__(self, prime: Prime):
        self.prime = prime
        self.keys = pad_layout(prime.seed)
        self.entered = ""
        self.show_login = False
        self.words: tuple[str, str] | None = None  # latched with KeyOS's locked-prefix

    def reset(self) -> None:
        """A lock, boot or login (``Custom2`` / ``reset_input_state``): input and words cleared, login hidden."""
        self.reset_input()
        self.show_login = False

    def reset_input(self) -> None:
        """``reset_input_state``: the entry and the latched prefix's words cleared."""
        self.entered = ""
        self.words = None

    def draw(self, canvas: render.Canvas) -> None:
        se = self.prime.se
        if se.wiped:
            canvas.title("Device Wiped")
            canvas.wrapped((20, 200, render.WIDTH - 20, 500),
                           "Too many wrong PINs.\nThe seed has been erased.", size=32, bold=True)
            return
        if not self.show_login:
            canvas.draw.rounded_rectangle((190, 250, 290, 350), radius=20, outline=render.INK, width=6)
            canvas.text((0, HINT_Y, render.WIDTH, HINT_Y + 40), SWIPE_HINT, size=28)
            return
        canvas.title(self.title)
        warning = failed_attempts_warning(se.attempts_remaining)
        if self.words is not None:
            canvas.text((0, 110, render.WIDTH, 170), " ".join(self.words), size=36, bold=True)
        elif warning:
            canvas.wrapped((10, 105, render.WIDTH - 10, 185), warning.replace("\n\n", "\n"), size=20, bold=True)
        else:
            canvas.text((0, 110, render.WIDTH, 170), "Security words", size=28)
        canvas.text((0, 190, render.WIDTH, 260), "*" * len(self.entered) or "-", size=48, bold=True)
        w, h = PIN_KEY_SIZE
        for key, (cx, cy) in self.keys.items():
            canvas.button((cx - w // 2, cy - h // 2, cx + w // 2, cy + h // 2), KEY_LABELS.get(key, key),
                          size=34 if len(KEY_LABELS.get(key, key)) > 1 else 40)

    def key_at(self, x: int, y: int) -> str | None:
        w, h = PIN_KEY_SIZE
        return next((k for k, (cx, cy) in self.keys.items() if abs(x - cx) < w / 2 and abs(y - cy) < h / 2), None)

    def tap(self, x: int, y: int) -> None:
        key = self.key_at(x, y) if self.show_login else None
        if key is not None:
            self.press(key)

    def swipe(self, sx: int, sy: int, ex: int, ey: int) -> None:
        """Up by more than the threshold shows the login; a drag on the login presses nothing."""
        if not self.show_login and ey - sy < -SWIPE_THRESHOLD:
            self.show_login = True

    def key(self, char: str) -> None:
        if not self.show_login:
            return
        if char.isdigit():
            self.press(char)
        elif char == "\b":
            self.press("back")
        elif char in "\r\n":
            self.press("enter")

    def press(self, key: str) -> None:
        if self.prime.se.wiped:
            return
        if key == "back":
            self.entered = self.entered[:-1]
        elif key == "enter":
            self.submit()
        elif len(self.entered) < 32:
            self.entered += key
        self._latch_words()

    def _latch_words(self) -> None:
        """app.slint ``changed pin``: with the setting on and no prefix latched, 4 digits latch the words."""
        if self.prime.show_security_words and self.words is None and len(self.entered) >= PIN_PREFIX_LENGTH:
            self.words = self.prime.se.security_words(self.entered[:PIN_PREFIX_LENGTH])

    def submit(self) -> None:
        """app.slint: the accept button is enabled from 6 digits, and a login's only word on the screen is the
        failed-attempts warning (there is no "wrong PIN" message)."""
        if len(self.entered) < MIN_PIN_LENGTH:
            return
        pin = self.entered
        self.reset_input()  # reset_input_state on the login result, accepted or not
        self.prime.login(pin)
