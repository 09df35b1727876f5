"""NFC, robot and relay against a whole emulated production Prime (in-process, fast): the peripherals
are registered in the launcher, reachable at the station keys, and act on the real device model."""

import threading
import time
from types import SimpleNamespace

import pytest
from fido2.client import ClientError
from fido2.ctap2 import Ctap2

from fido_helpers import register_over_nfc

from hil.emulator import control
from hil.emulator.build import Build
from hil.emulator.launcher import start_device
from hil.emulator.nfc import LISTEN_S
from hil.provisioning import TEST_PIN
from hil.profile import profile_named
from hil.machine import scaled
from hil.stimuli.ctap_nfc import CtapNfcDevice
from hil.stimuli.nfc import NfcFieldLost, NfcReader, NoCardFound, ndef_message
from hil.stimuli.relay import PowerButtonRelay
from hil.stimuli.robot import RobotError, StylusRobot
from hil.stimuli.touch import RobotTouch, enter_pin
from tests.test_robot import bench_calibration



@pytest.fixture
def unit():
    device = start_device(1, 3, Build(flavour="production"), boot_seconds=0)
    device.prime.power_on()
    yield device
    device.stop()


@pytest.fixture
def touch(unit):
    profile = profile_named(unit.endpoints["profile"])
    with StylusRobot.open(unit.endpoints["robot"], bench_calibration()) as robot, \
            PowerButtonRelay.open(unit.endpoints["relay"]) as relay:
        t = RobotTouch(robot, relay, profile.touch.home_button.centre)
        keys = unit.prime.ui.lock_screen.keys  # the emulator's own layout for its seed
        t.pin_pad = SimpleNamespace(keys=keys, enter=keys["enter"])
        yield t


def robot_unlock(touch) -> None:
    """The robot swipes up from the lock screen's hint (past KeyOS's 80 px threshold), then types the PIN on
    the emulator's own layout."""
    touch.swipe(240, 760, 240, 460)
    enter_pin(touch, touch.pin_pad, TEST_PIN)


def wait_modal(prime, title, timeout=10):
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        with prime.lock:
            if prime.ui.modal is not None and prime.ui.modal.title == title:
                return
        time.sleep(0.05)
    raise AssertionError(f"no {title!r} prompt on the display")


def button(prime, label):
    """Where the emulator shows the modal's ``label`` button (its seed's layout)."""
    with prime.lock:
        modal = prime.ui.modal
        x0, y0, x1, y1 = modal.button_box(modal.buttons.index(label))
    return (x0 + x1) // 2, (y0 + y1) // 2


def webauthn(unit, label, touch):
    def answer():
        wait_modal(unit.prime, "Confirm Registration")
        touch.tap(*button(unit.prime, label))
    return register_over_nfc(unit.endpoints["nfc"], answer)


def test_robot_unlocks_and_confirms_fido_registration(unit, touch):
    assert unit.prime.is_locked()
    robot_unlock(touch)
    assert not unit.prime.is_locked()
    server, state, out = webauthn(unit, "Confirm", touch)
    assert "error" not in out, out.get("error")
    assert server.register_complete(state, out["response"]).is_user_present()
    touch.power()
    assert unit.prime.is_locked()


def test_prompt_waits_behind_the_lock_screen(unit, touch):
    out = {}

    def register():
        try:
            with CtapNfcDevice(NfcReader(unit.endpoints["nfc"]).connect(timeout=10)) as dev:
                out["info"] = Ctap2(dev).make_credential(b"\0" * 32, {"id": "example.com"}, {"id": b"u"},
                                                         [{"type": "public-key", "alg": -7}])
        except Exception as e:
            out["error"] = e

    t = threading.Thread(target=register)
    t.start()
    try:
        time.sleep(1.5)  # the request is pending on the device; the prompt must not show over the lock screen
        with unit.prime.lock:
            assert unit.prime.is_locked() and unit.prime.ui.modal is None
        robot_unlock(touch)
        wait_modal(unit.prime, "Confirm Registration")
        touch.tap(*button(unit.prime, "Confirm"))
    finally:
        t.join(20)
    assert "error" not in out, out.get("error")
    assert out["info"].auth_data.is_user_present()


def test_cancel_on_the_prime_denies_registration(unit, touch):
    robot_unlock(touch)
    _, _, out = webauthn(unit, "Cancel", touch)
    assert isinstance(out.get("error"), ClientError) and "OPERATION_DENIED" in repr(out["error"].cause)


def test_presented_tag_is_shown_on_the_prime(unit, touch):
    robot_unlock(touch)
    result = NfcReader(unit.endpoints["nfc"]).present_tag(ndef_message(text="hello from the lab"), timeout=10)
    assert result.read
    wait_modal(unit.prime, "NFC Tag")
    assert "text: hello from the lab" in unit.prime.ui.modal.body


def test_field_loss_fault_is_broken(unit):
    control.apply(unit.prime, {"cmd": "nfc", "field_loss": True})
    with pytest.raises(NfcFieldLost):
        CtapNfcDevice(NfcReader(unit.endpoints["nfc"]).connect(timeout=10))


def test_robot_that_does_not_home(unit):
    control.apply(unit.prime, {"cmd": "robot", "homing_fault": True})
    with pytest.raises(RobotError, match="ALARM:9"):
        StylusRobot.open(unit.endpoints["robot"], bench_calibration())


def test_powered_off_prime_answers_no_reader(unit):
    with unit.prime.lock:
        unit.prime.power_cut()
    time.sleep(LISTEN_S + 0.5)  # let a listen already under way run out
    with pytest.raises(NoCardFound):
        NfcReader(unit.endpoints["nfc"]).connect(timeout=2)
