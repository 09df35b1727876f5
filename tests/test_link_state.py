"""Reading a Prime's state from its answers, and unlocking it on the PIN pad the caller found (scripted device)."""

from types import SimpleNamespace

import pytest
from PIL import Image

from hil.link import protocol as p
from hil.link.client import PrimeClient
from hil.link.protocol import Cmd, LaunchStatus, Status
from hil.profile import profile_named
from hil.link.state import (NOT_AN_APP, DeviceStateError, HomeScreen, PinRejected, State, bring_home, detect_flavour,
                            device_state, is_locked, unlock, wait_ready)
from hil.link.tcp import TcpTransport

from fake_device import ScriptedDevice, frames, ok

REV_B = profile_named("prime-rev-b")
DARK = p.encode_screenshot(Image.new("RGBA", (480, 800), (0, 0, 0, 255)), "BGRA")
LIT = p.encode_screenshot(Image.new("RGBA", (480, 800), (240, 240, 240, 255)), "BGRA")
KEYS = {d: (60 + 40 * i, 300 + 7 * i) for i, d in enumerate("1234567890")}  # this scripted screen's pad
PAD = SimpleNamespace(keys=KEYS, enter=(420, 700))


class LockScreen:
    """Just enough of a Prime: lock state, screen on/off, a PIN pad at ``PAD``."""

    def __init__(self, pin="123456", locked=True, screen_on=True, production=False, onboarding=False):
        self.pin, self.locked, self.screen_on, self.production = pin, locked, screen_on, production
        self.onboarding = onboarding
        self.running: list[str] = []  # process rows beyond the system's (apps started)
        self.typed = ""
        self.keys = {v: k for k, v in KEYS.items()}
        self.keys[PAD.enter] = "enter"
        self.keys[REV_B.touch.home_button.centre] = "home"
        self.log: list[str] = []

    def __call__(self, body):
        cmd, payload = p.parse_request(body)
        self.log.append(cmd.name)
        if self.production and self.locked and cmd in (Cmd.SCREENSHOT, Cmd.SWIPE, Cmd.POWER_BTN):
            return frames(p.response(Status.LOCKED))
        if cmd == Cmd.LAUNCH_APP:
            assert payload == NOT_AN_APP
            if self.locked or self.onboarding:  # gui-server answers Locked during onboarding too
                return frames(p.response(Status.LOCKED))
            return ok(p.launch_reply(0, LaunchStatus.APP_ID_NOT_FOUND))
        if cmd == Cmd.GET_PROCESS_LIST:
            rows = ["R 1 0 kernel 1 0 64 0", "R 5 1 gui-server 2 0 900 4"]
            rows += ["R 31 1 gui-app-onboarding 1 0 512 3"] if self.onboarding else []
            rows += self.running
            return ok(("\n".join([f"PROC {len(rows)}", *rows, "SUM 3 1476 65536"]) + "\n").encode())
        if cmd == Cmd.POWER_BTN:
            if self.screen_on:
                self.locked, self.screen_on, self.typed = True, False, ""
            else:
                self.screen_on = True
        elif cmd == Cmd.SCREENSHOT:
            return ok(LIT if self.screen_on else DARK)
        elif cmd == Cmd.SWIPE:
            x, y = p.parse_swipe(payload)[:2]
            key = self.keys.get((x, y))
            self.log[-1] = f"TAP {key}"
            if not self.screen_on:
                self.screen_on = True
            elif key == "enter":
                self.locked = self.typed != self.pin
                self.typed = ""
            elif key in KEYS:
                self.typed += key
        return ok()


def typer_of(client):
    return lambda touch: unlock(client, "123456", lambda: PAD, touch)


@pytest.fixture
def connect():
    made = []

    def make(handler):
        dev = ScriptedDevice(handler)
        client = PrimeClient(TcpTransport("127.0.0.1", dev.port), pixel_order="BGRA", home_button=(100, 910),
                             timeout=2.0).open()
        made.extend([client, dev])
        return client

    yield make
    for thing in made:
        (thing.close if isinstance(thing, PrimeClient) else thing.stop)()


@pytest.mark.parametrize("reply, expected", [(frames(p.response(Status.LOCKED)), True),
                                             (ok(b"\x00\x00\x02"), False), (ok(b"\x00\x00\x06"), None)],
                         ids=["Locked", "AppIdNotFound", "NotReady"])
def test_lock_state_from_the_launch_probe(connect, reply, expected):
    assert is_locked(connect(lambda body: reply)) is expected


@pytest.mark.parametrize("reply, words", [(frames(p.response(Status.ERR)), "answered Err"),
                                          (ok(b"\x05\x00\x00"), "answered LAUNCHED")], ids=["Err", "Launched"])
def test_an_unexpected_probe_answer_is_not_guessed(connect, reply, words):
    with pytest.raises(DeviceStateError, match=words):
        is_locked(connect(lambda body: reply))


def test_wait_ready_waits_out_the_boot(connect):
    answers = iter([ok(b"\x00\x00\x06"), ok(b"\x00\x00\x06"), frames(p.response(Status.LOCKED))])
    assert wait_ready(connect(lambda body: next(answers)), timeout=5) is True


def test_wait_ready_gives_up(connect):
    with pytest.raises(DeviceStateError, match="still not ready"):
        wait_ready(connect(lambda body: ok(b"\x00\x00\x06")), timeout=0.3)


def test_flavour_from_kernel_cmd(connect):
    assert detect_flavour(connect(lambda body: ok(b"R 1 0 kernel")), REV_B) == "development"
    assert detect_flavour(connect(lambda body: frames(p.response(Status.ERR))), REV_B) == "production"
    with pytest.raises(DeviceStateError, match="no flavours"):
        detect_flavour(connect(lambda body: frames(p.response(Status.ERR))), profile_named("keyos-simulator"))


def test_unlock_from_a_lit_lock_screen(connect):
    device = LockScreen(locked=True, screen_on=True)
    unlock(connect(device), "123456", lambda: PAD)
    assert not device.locked
    assert device.log == ["POWER_BTN", "SCREENSHOT", "POWER_BTN", "LAUNCH_APP",
                          "SCREENSHOT", *(f"TAP {d}" for d in "123456"), "TAP enter", "LAUNCH_APP"]


def test_unlock_from_a_dark_screen_does_not_lose_the_first_digit(connect):
    device = LockScreen(locked=True, screen_on=False)
    unlock(connect(device), "123456", lambda: PAD)
    assert not device.locked and device.log[:5] == ["POWER_BTN", "SCREENSHOT", "LAUNCH_APP", "SCREENSHOT", "TAP 1"]


def test_no_pin_is_typed_off_the_lock_screen(connect):
    """The power presses did not end on the lock screen (the device says it is unlocked): nothing is typed."""
    class ReadsUnlocked(LockScreen):
        def __call__(self, body):
            if body[0] == Cmd.LAUNCH_APP:
                return ok(p.launch_reply(0, LaunchStatus.APP_ID_NOT_FOUND))
            return super().__call__(body)

    device = ReadsUnlocked(locked=True, screen_on=True)
    with pytest.raises(DeviceStateError, match="not on a lit lock screen after the power presses; PIN not typed"):
        unlock(connect(device), "123456", lambda: PAD)
    assert not any(entry.startswith("TAP") for entry in device.log)


def test_a_wrong_pin_is_tried_once(connect):
    device = LockScreen(pin="999999")
    with pytest.raises(PinRejected, match="one attempt used"):
        unlock(connect(device), "123456", lambda: PAD)
    assert device.log.count("TAP enter") == 1


def test_bring_home_on_a_production_build_leaves_it_locked(connect):
    device = LockScreen(production=True)
    client = connect(device)
    assert bring_home(client, REV_B, "production", typer_of(client)) is False
    assert device.locked and device.log == ["LAUNCH_APP"]


def test_bring_home_on_a_development_build_unlocks_and_goes_home(connect):
    device = LockScreen()
    client = connect(device)
    assert bring_home(client, REV_B, "development", typer_of(client)) is True
    assert not device.locked and device.log.count("TAP enter") == 1 and device.log[-1] == "TAP home"


def test_an_unlocked_unit_is_only_sent_home_not_unlocked_again(connect):
    device = LockScreen(locked=False)
    client = connect(device)
    assert bring_home(client, REV_B, "development", typer_of(client)) is True
    assert device.log == ["LAUNCH_APP", "TAP home"]


@pytest.mark.parametrize("kwargs, state", [({"onboarding": True}, State.ONBOARDING), ({}, State.LOCKED),
                                           ({"locked": False}, State.UNLOCKED)], ids=["onboarding", "locked", "unlocked"])
def test_onboarding_is_told_from_the_lock_screen(connect, kwargs, state):
    assert device_state(connect(LockScreen(**kwargs)), REV_B) is state


def test_no_pin_is_typed_into_onboarding(connect):
    device = LockScreen(onboarding=True)
    with pytest.raises(DeviceStateError, match="onboarding runs, not the lock screen: no PIN typed"):
        bring_home(client := connect(device), REV_B, "development", typer_of(client))
    assert not any(entry.startswith("TAP") or entry == "POWER_BTN" for entry in device.log), device.log


class Launcher(LockScreen):
    """Unlocked; a tap anywhere but home opens an app over the home screen, the home press closes it. With
    ``lagging`` each screenshot shows the screen as it was before the last touch (drawn one read late)."""

    def __init__(self, lagging=False, production=False):
        super().__init__(locked=False, production=production)
        self.front, self.lagging, self.drawn = "home", lagging, "home"

    def __call__(self, body):
        cmd, payload = p.parse_request(body)
        if self.production and self.locked and cmd in (Cmd.SCREENSHOT, Cmd.SWIPE):
            return super().__call__(body)  # refused: Locked
        if cmd == Cmd.SCREENSHOT:
            self.log.append(cmd.name)
            shown, self.drawn = self.drawn, self.front
            return ok(LIT if shown == "home" else DARK)
        if cmd == Cmd.SWIPE:
            self.log.append("TAP home" if p.parse_swipe(payload)[:2] == REV_B.touch.home_button.centre else "TAP")
            self.front = "home" if self.log[-1] == "TAP home" else "app"
            self.drawn = self.drawn if self.lagging else self.front
            return ok()
        return super().__call__(body)


@pytest.mark.parametrize("opened", [True, False], ids=["app-in-front", "home-already"])
def test_a_unit_showing_its_home_screen_is_not_pressed_again(connect, opened):
    device, home = Launcher(), HomeScreen()
    client = connect(device)
    if opened:  # the press changes the screen; else it leaves it as it was, read twice
        client.tap(200, 300)
    for _ in range(3):
        assert bring_home(client, REV_B, "development", typer_of(client), home=home) is True
    assert device.log.count("TAP home") == 1 and device.front == "home", device.log
    client.tap(200, 300)  # a test opens an app: the screen differs, so the next start presses home
    bring_home(client, REV_B, "development", typer_of(client), home=home)
    assert device.log.count("TAP home") == 2 and device.front == "home"


def test_a_press_not_yet_drawn_is_not_taken_for_the_home_screen(connect):
    device, home = Launcher(lagging=True), HomeScreen()
    client = connect(device)
    for _ in range(3):  # each press is read back before it is drawn: the app's screen is never kept as home
        client.tap(200, 300)
        client.screenshot()  # the app is drawn
        bring_home(client, REV_B, "development", typer_of(client), home=home)
    assert device.log.count("TAP home") == 3, device.log


def test_an_app_started_but_not_yet_drawn_is_pressed_home(connect):
    device, home = Launcher(), HomeScreen()
    client = connect(device)
    bring_home(client, REV_B, "development", typer_of(client), home=home)
    device.running.append("R 40 1 gui-app-bitcoin 1 0 512 3")  # launched; its first frame not drawn yet
    bring_home(client, REV_B, "development", typer_of(client), home=home)
    assert device.log.count("TAP home") == 2, device.log


def test_a_production_unit_home_and_unlocked_is_neither_probed_nor_pressed(connect):
    """Its build refuses SCREENSHOT while locked, so a screenshot it serves, with the screen and processes as
    the link left them after its last press, is the unit's own word: two answers, no lock probe."""
    device, home = Launcher(production=True), HomeScreen()
    client = connect(device)
    assert bring_home(client, REV_B, "production", typer_of(client), home=home) is True  # the first: probed, pressed
    del device.log[:]
    for _ in range(3):
        assert bring_home(client, REV_B, "production", typer_of(client), home=home) is True
    assert device.log == ["SCREENSHOT", "GET_PROCESS_LIST"] * 3, device.log


def test_a_production_unit_locked_since_is_probed_though_its_screen_looked_the_same(connect):
    """Locked by anything (a test's power press, the device's own timer) with the home screen's pixels still
    showing: the build's refusal of the screenshot, not the pixels, decides; the probe then reads it locked."""
    device, home = Launcher(production=True), HomeScreen()
    client = connect(device)
    bring_home(client, REV_B, "production", typer_of(client), home=home)
    device.locked = True  # the screen still lit with the same pixels
    del device.log[:]
    assert bring_home(client, REV_B, "production", typer_of(client), home=home) is False  # no robot: stays locked
    assert device.log == ["SCREENSHOT", "LAUNCH_APP"], device.log


def test_a_build_that_serves_screenshots_while_locked_is_always_probed(connect):
    """On a development build (or wherever the profile says SCREENSHOT needs no unlock) the screen is no word
    on the lock: a unit locked with the home screen's pixels is probed and unlocked again."""
    device, home, typed = Launcher(), HomeScreen(), []
    client = connect(device)
    bring_home(client, REV_B, "development", typer_of(client), home=home)
    device.locked = True
    del device.log[:]
    assert bring_home(client, REV_B, "development", lambda touch: typed.append(touch) or setattr(device, "locked", False),
                      home=home) is True
    assert device.log[0] == "LAUNCH_APP" and typed == [None], device.log


def test_a_production_unit_not_home_is_probed_and_pressed_without_reading_it_twice(connect):
    device, home = Launcher(production=True), HomeScreen()
    client = connect(device)
    bring_home(client, REV_B, "production", typer_of(client), home=home)
    client.tap(200, 300)  # a test opened an app
    del device.log[:]
    assert bring_home(client, REV_B, "production", typer_of(client), home=home) is True
    assert device.log == ["SCREENSHOT", "GET_PROCESS_LIST", "LAUNCH_APP", "TAP home",
                          *["SCREENSHOT", "GET_PROCESS_LIST"] * 2], device.log
    assert device.front == "home"
