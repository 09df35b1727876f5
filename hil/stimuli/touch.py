"""Touch and buttons, one interface whatever does the pressing.

A suite says ``touch.tap(x, y)`` and ``touch.power(long=True)``; the station decides whether the
debug link injects it (development builds, or unlocked production units), a stylus robot and a relay
press the glass and the button (production units while locked, where KeyOS answers ``Locked`` to
debug input), or a person does it when told to (benches without either). Coordinates are display
pixels, origin top-left; the virtual home button lies below the panel (device profile ``touch``).
"""

from __future__ import annotations

import abc
import select
import sys
from collections.abc import Callable, Mapping
from typing import Protocol

from hil.errors import InfrastructureError

TAP_MS = 50  # passport-drive's tap: a SWIPE with equal ends, 50 ms (keyos.md §5.1)
LONG_PRESS_MS = 1500


class OperatorError(InfrastructureError):
    """The person at the bench did not confirm the action in time (or said it failed)."""


class Touch(abc.ABC):
    """What a suite may do to the touchscreen and the power button."""

    def __init__(self, home_button: tuple[int, int]):
        self.home_button = home_button

    @abc.abstractmethod
    def swipe(self, sx: int, sy: int, ex: int, ey: int, duration_ms: int = 300) -> None:
        """Press at the start, drag to the end over ``duration_ms``, release."""

    @abc.abstractmethod
    def power(self, long: bool = False) -> None:
        """Short: lock and screen off. Long: the control center (keyos.md §2.3)."""

    def tap(self, x: int, y: int) -> None:
        self.long_press(x, y, TAP_MS)

    @abc.abstractmethod
    def long_press(self, x: int, y: int, hold_ms: int = LONG_PRESS_MS) -> None:
        """Press at one point for ``hold_ms``."""

    def home(self) -> None:
        self.tap(*self.home_button)


class PinPad(Protocol):
    """Where the screen shows the PIN keys, as display points (`hil.vision.pin_screen.PinScreen` reads them)."""

    keys: Mapping[str, tuple[int, int]]
    enter: tuple[int, int]


def enter_pin(touch: Touch, pin_pad: PinPad, pin: str) -> None:
    """Type a PIN on the lock screen's keypad, where ``pin_pad`` says the screen shows the keys."""
    for digit in pin:
        touch.tap(*pin_pad.keys[digit])
    touch.tap(*pin_pad.enter)


class DebugTouch(Touch):
    """Input injected through the usb-debug link (SWIPE, POWER_BTN); refused while a production unit is locked."""

    def __init__(self, client, home_button: tuple[int, int]):
        super().__init__(home_button)
        self.client = client

    def swipe(self, sx, sy, ex, ey, duration_ms=300):
        self.client.swipe(sx, sy, ex, ey, duration_ms=duration_ms, steps=10)

    def long_press(self, x, y, hold_ms=LONG_PRESS_MS):
        self.client.swipe(x, y, x, y, duration_ms=hold_ms, steps=0)

    def power(self, long=False):
        self.client.press_power(long)

    def type_text(self, text: str) -> None:
        self.client.type_text(text)


class RobotTouch(Touch):
    """A stylus robot on the glass and a relay across the power button: works on any build, locked or not."""

    def __init__(self, robot, relay, home_button: tuple[int, int]):
        super().__init__(home_button)
        self.robot, self.relay = robot, relay

    def swipe(self, sx, sy, ex, ey, duration_ms=300):
        self.robot.swipe(sx, sy, ex, ey, duration_ms)

    def long_press(self, x, y, hold_ms=LONG_PRESS_MS):
        self.robot.press(x, y, hold_ms)

    def power(self, long=False):
        if self.relay is None:
            raise InfrastructureError("this station has no power-button relay; wire one or use the operator")
        self.relay.press(long)


def ask_console(question: str, timeout: float) -> bool:
    """Print the instruction and wait for 'y' (done) or 'n' (could not) on stdin, at most ``timeout`` s."""
    print(f"{question} [y = done, n = could not] ", end="", flush=True)
    if not select.select([sys.stdin], [], [], timeout)[0]:
        raise OperatorError(f"no operator answer within {timeout:.0f} s to: {question}")
    return sys.stdin.readline().strip().lower() in ("y", "yes")


class OperatorTouch(Touch):
    """A person at the bench is told what to press and confirms; no confirmation means no evidence."""

    def __init__(self, home_button: tuple[int, int], ask: Callable[[str, float], bool] = ask_console,
                 timeout: float = 120.0):
        super().__init__(home_button)
        self.ask, self.timeout = ask, timeout

    def _do(self, instruction: str) -> None:
        if not self.ask(instruction, self.timeout):
            raise OperatorError(f"operator could not: {instruction}")

    def swipe(self, sx, sy, ex, ey, duration_ms=300):
        self._do(f"Swipe on the Prime from ({sx}, {sy}) to ({ex}, {ey})")

    def long_press(self, x, y, hold_ms=LONG_PRESS_MS):
        if hold_ms <= TAP_MS:
            self._do(f"Tap the Prime's screen at ({x}, {y}) (x from the left, y from the top, 480x800)")
        else:
            self._do(f"Press and hold the Prime's screen at ({x}, {y}) for {hold_ms / 1000:.1f} s")

    def home(self):
        self._do("Tap the home area below the Prime's screen (bottom left)")

    def power(self, long=False):
        self._do("Hold the Prime's power button for 3 s" if long else "Press the Prime's power button briefly")
