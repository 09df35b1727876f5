"""The lock screen (``gui-app-lock-screen``, app id 0x0a00…): PIN pad, security words, attempts.

The security words appear once the PIN prefix has been typed, so the user can check the device before
typing the rest.  The strings are KeyOS's (``os/gui-app-lock-screen/i18n/en.json``, ``ui/app.slint``):
heading "Enter PIN", accept button "Unlock", and, while any login attempt has failed (read from the
secure element, so it stays across locks), the failed-attempts warning in place of the security
words: "{n} failed attempts" while more than 6 remain, then the Master Key erase warning. The tenth
wrong PIN erases the seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hil.emulator import render
from hil.emulator.secure_element import MAX_LOGIN_ATTEMPTS, MIN_PIN_LENGTH, PIN_PREFIX_LENGTH
from hil.emulator.ui import PIN_KEY_SIZE, PIN_KEYS, Screen, pin_key_at

if TYPE_CHECKING:
    from hil.emulator.prime import Prime

KEY_LABELS = {"back": "<", "enter": "Unlock"}


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
        self.entered = ""
        self.message = ""

    def reset(self) -> None:
        self.entered = ""
        self.message = ""

    def draw(self, canvas: render.Canvas) -> None:
        se = self.prime.se
        if se.wiped:
            canvas.title("Device Wiped")
            canvas.wrapped((20, 200, render.WIDTH - 20, 500),
                           "Too many wrong PINs.\nThe seed has been erased.", size=32, bold=True)
            return
        canvas.title(self.title)
        warning = failed_attempts_warning(se.attempts_remaining)
        if len(self.entered) >= PIN_PREFIX_LENGTH:
            words = " ".join(se.security_words(self.entered[:PIN_PREFIX_LENGTH]))
            canvas.text((0, 110, render.WIDTH, 170), words, size=36, bold=True)
        elif warning:
            canvas.wrapped((10, 105, render.WIDTH - 10, 185), warning.replace("\n\n", "\n"), size=20, bold=True)
        else:
            canvas.text((0, 110, render.WIDTH, 170), "Security words", size=28)
        canvas.text((0, 190, render.WIDTH, 260), "*" * len(self.entered) or "-", size=48, bold=True)
        if self.message:
            canvas.wrapped((10, 270, render.WIDTH - 10, 350), self.message, size=28, bold=True)
        w, h = PIN_KEY_SIZE
        for key, (cx, cy) in PIN_KEYS.items():
            canvas.button((cx - w // 2, cy - h // 2, cx + w // 2, cy + h // 2), KEY_LABELS.get(key, key),
                          size=34 if key == "enter" else 40)

    def tap(self, x: int, y: int) -> None:
        key = pin_key_at(x, y)
        if key is not None:
            self.press(key)

    def key(self, char: str) -> None:
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

    def submit(self) -> None:
        pin, self.entered = self.entered, ""
        if len(pin) < MIN_PIN_LENGTH:
            self.message = f"PIN must be at least {MIN_PIN_LENGTH} digits"
            return
        if self.prime.login(pin):
            self.message = ""
            return
        left = self.prime.se.attempts_remaining
        self.message = f"Wrong PIN. {left} attempt{'s' if left != 1 else ''} remaining"
