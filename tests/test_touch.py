"""One Touch interface, three backends: the debug link, robot + relay, an operator."""

import threading
import time

import pytest

from hil.emulator.relay import EmulatedRelay
from hil.emulator.robot import EmulatedRobot
from hil.errors import InfrastructureError
from hil.stimuli.relay import PowerButtonRelay
from hil.stimuli.robot import StylusRobot
from hil.stimuli.touch import DebugTouch, OperatorError, OperatorTouch, RobotTouch
from tests.test_robot import bench_calibration

HOME = (100, 910)


class FakePrime:
    """What the emulated robot and relay act on: records taps (as swipes) and power presses."""

    def __init__(self):
        self.lock = threading.RLock()
        self.events = []

    def swipe(self, sx, sy, ex, ey, duration_ms, steps):
        self.events.append(("swipe", sx, sy, ex, ey, steps))

    def press_power(self, long):
        self.events.append(("power", long))

    def power_button(self, down):  # the emulated relay reports edges; a hold of 1 s or more is long
        if down:
            self._down_at = time.monotonic()
        else:
            self.press_power(time.monotonic() - self._down_at >= 1.0)


class RecordingClient:
    """Stands in for hil.link.client.PrimeClient: records what would go on the wire."""

    def __init__(self):
        self.calls = []

    def swipe(self, *a, **kw):
        self.calls.append(("swipe", a, kw))

    def press_power(self, long=False):
        self.calls.append(("power", long))

    def type_text(self, text):
        self.calls.append(("text", text))


def test_debug_backend_sends_swipe_and_power_button():
    client = RecordingClient()
    touch = DebugTouch(client, HOME)
    touch.tap(10, 20)
    touch.long_press(30, 40, 1200)
    touch.home()
    touch.power(long=True)
    touch.type_text("passphrase")
    assert client.calls == [
        ("swipe", (10, 20, 10, 20), {"duration_ms": 50, "steps": 0}),
        ("swipe", (30, 40, 30, 40), {"duration_ms": 1200, "steps": 0}),
        ("swipe", (100, 910, 100, 910), {"duration_ms": 50, "steps": 0}),
        ("power", True),
        ("text", "passphrase"),
    ]


def test_robot_backend_presses_glass_and_button():
    prime, robot, relay = FakePrime(), EmulatedRobot(), EmulatedRelay()
    robot_path, relay_path = robot.start(prime)[1], relay.start(prime)[1]
    try:
        with StylusRobot.open(robot_path, bench_calibration()) as r, PowerButtonRelay.open(relay_path) as p:
            touch = RobotTouch(r, p, HOME)
            touch.tap(240, 400)
            touch.home()
            touch.power()
    finally:
        robot.stop()
        relay.stop()
    assert prime.events == [("swipe", 240, 400, 240, 400, 0), ("swipe", 100, 910, 100, 910, 0), ("power", False)]


def test_operator_backend_waits_for_confirmation():
    asked = []
    touch = OperatorTouch(HOME, ask=lambda q, t: asked.append(q) or True)
    touch.tap(12, 34)
    touch.power(long=True)
    assert "(12, 34)" in asked[0] and "3 s" in asked[1]
    refusing = OperatorTouch(HOME, ask=lambda q, t: False)
    with pytest.raises(OperatorError, match="operator could not: Press the Prime's power button") as e:
        refusing.power()
    assert isinstance(e.value, InfrastructureError)


def test_operator_silence_times_out(monkeypatch):
    import hil.stimuli.touch as touch_mod

    monkeypatch.setattr(touch_mod.select, "select", lambda r, w, x, t: ([], [], []))
    with pytest.raises(OperatorError, match="no operator answer within 1 s"):
        OperatorTouch(HOME, timeout=1).tap(1, 2)
