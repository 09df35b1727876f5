"""The lock screen (``gui-app-lock-screen``, app id 0x0a00…): PIN pad, security words, attempts.

The security words appear once the PIN prefix has been typed, so the user can check the device before
typing the rest.  A wrong PIN shows the attempts left; the tenth erases the seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hil.emulator import render
from hil.emulator.secure_element import MIN_PIN_LENGTH, PIN_PREFIX_LENGTH
from hil.emulator.ui import PIN_KEY_SIZE, PIN_KEYS, Screen, pin_key_at

if TYPE_CHECKING:
    from hil.emulator.prime import Prime

KEY_LABELS = {"back": "<", "enter": "OK"}


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
        if len(self.entered) >= PIN_PREFIX_LENGTH:
            words = " ".join(se.security_words(self.entered[:PIN_PREFIX_LENGTH]))
            canvas.text((0, 110, render.WIDTH, 170), words, size=36, bold=True)
        else:
            canvas.text((0, 110, render.WIDTH, 170), "Security words", size=28)
        canvas.text((0, 190, render.WIDTH, 260), "*" * len(self.entered) or "-", size=48, bold=True)
        if self.message:
            canvas.wrapped((10, 270, render.WIDTH - 10, 350), self.message, size=28, bold=True)
        w, h = PIN_KEY_SIZE
        for key, (cx, cy) in PIN_KEYS.items():
            canvas.button((cx - w // 2, cy - h // 2, cx + w // 2, cy + h // 2), KEY_LABELS.get(key, key), size=40)

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
