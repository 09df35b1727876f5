"""End to end: the emulated Prime's display verified through its camera stream (MJPEG over HTTP),
with default and hard optics, and never a pass with the camera covered or blinded."""

import json
import socket

import numpy as np
import pytest

from hil.emulator import broker
from hil.emulator.build import Build
from hil.emulator.launcher import start_device
from hil.emulator.prime import Prime
from hil.provisioning import TEST_PIN
from hil.errors import InfrastructureError
from hil.vision.camera import Camera
from hil.vision.display import Display, ScreenUnreadable, Verdict
from hil.vision.match import TextKind
from hil.vision.pin_screen import SWIPE_HINT, NotAPinScreen, wait_pin_screen


def control(device, **request) -> dict:
    host, port = device.endpoints["control"].removeprefix("tcp:").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(json.dumps(request).encode() + b"\n")
        reply = json.loads(s.makefile().readline())
    assert reply["ok"], reply
    return reply


@pytest.fixture(params=["default", "hard"])
def station(request):
    """A production Prime at its lock screen, its camera set to the optics under test."""
    device = start_device(1, 7, Build(flavour="production"))
    control(device, cmd="camera", optics=request.param)
    camera = Camera(device.endpoints["camera"])
    yield device, Display(camera)
    camera.close()
    device.stop()


class EmulatorTouch:
    """Swipes straight into the emulated unit, as the robot or the debug link would."""

    def __init__(self, prime):
        self.prime, self.swipes = prime, []

    def swipe(self, sx, sy, ex, ey, duration_ms=300):
        self.swipes.append((sx, sy, ex, ey))
        self.prime.swipe(sx, sy, ex, ey, duration_ms)


def screenshot(prime):
    return np.ascontiguousarray(np.asarray(prime.framebuffer().convert("RGB"))[:, :, ::-1])


def test_the_harness_swipes_up_from_the_hint_it_reads_and_only_then():
    """The lock screen starts on KeyOS's swipe hint: `wait_pin_screen` finds it by what the screen shows and swipes
    up from it past the 80 px threshold, then reads the pad; on a screen without the hint it swipes nothing; without
    a touch it only watches and says the hint stayed."""
    prime = Prime(seed=7, build=Build(flavour="development"), boot_seconds=0)  # a moved, shuffled pad
    with pytest.raises(NotAPinScreen, match="still shows 'Swipe up to unlock'"):
        wait_pin_screen(lambda: screenshot(prime), timeout=0)
    touch = EmulatorTouch(prime)
    pad = wait_pin_screen(lambda: screenshot(prime), touch)
    (sx, sy, ex, ey), = touch.swipes
    assert sy > 700 and sy - ey > 80 and sx == ex  # from the hint, straight up
    drawn = prime.ui.lock_screen.keys
    assert all(abs(pad.keys[d][0] - drawn[d][0]) < 20 and abs(pad.keys[d][1] - drawn[d][1]) < 20 for d in "0123456789")
    assert prime.login(TEST_PIN)
    with pytest.raises(NotAPinScreen):
        wait_pin_screen(lambda: screenshot(prime), touch, timeout=0)  # the launcher: no hint, no swipe
    assert len(touch.swipes) == 1


def test_lock_screen_and_security_words(station):
    device, display = station
    assert display.expect_text(SWIPE_HINT, timeout=10).verdict is Verdict.PASS
    with device.prime.lock:
        device.prime.swipe(240, 760, 240, 460)
    assert display.expect_text("Enter PIN", region="title", timeout=10).verdict is Verdict.PASS
    assert display.expect_text("Security words", timeout=2).verdict is Verdict.PASS
    with device.prime.lock:  # a stylus on the keys, the way the robot types
        for digit in TEST_PIN[:4]:
            device.prime.touch(*device.prime.ui.lock_screen.keys[digit])  # its seed's layout
        words = " ".join(device.prime.se.security_words(TEST_PIN[:4]))
    assert display.expect_text(words, TextKind.WORDS, timeout=5).verdict is Verdict.PASS


def test_permission_prompt(station):
    device, display = station
    display.expect_text(SWIPE_HINT, timeout=10)
    with device.prime.lock:
        assert device.prime.login(TEST_PIN)
        device.prime.ui.show_modal(broker.TITLE, broker.BODY.format("Bitcoin Wallet", "App Seed"),
                                   [broker.ALWAYS, broker.NOT_NOW, broker.NEVER], lambda answer: None)
    for text in ("Allow Access?", "Bitcoin Wallet wants to access App Seed", "Always Allow", "Not Now", "Never Allow"):
        assert display.expect_text(text, timeout=5).verdict is Verdict.PASS


def test_covered_or_blinded_camera_is_broken_not_passed():
    device = start_device(1, 7, Build(flavour="production"))
    try:
        with Camera(device.endpoints["camera"]) as camera:
            display = Display(camera)
            display.expect_text(SWIPE_HINT, timeout=10)
            for fault, seen in (("covered", lambda f: f.mean() < 20), ("glare", lambda f: (f >= 250).mean() > 0.1)):
                control(device, cmd="camera", fault=fault)
                assert any(seen(camera.grab()) for _ in range(30))  # frames in flight before the fault have passed
                with pytest.raises(ScreenUnreadable) as e:
                    display.expect_text(SWIPE_HINT, timeout=1)
                assert isinstance(e.value, InfrastructureError)
                assert e.value.verification.verdict is Verdict.INCONCLUSIVE
                control(device, cmd="camera", fault=None)
                assert display.expect_text(SWIPE_HINT, timeout=5).verdict is Verdict.PASS
            for bad in ({"fault": "fog"}, {"optics": {"zoom": 2}}, {"optics": 3}):
                with pytest.raises(AssertionError, match="known|optics"):
                    control(device, cmd="camera", **bad)
    finally:
        device.stop()
