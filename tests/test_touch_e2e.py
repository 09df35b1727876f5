"""The production lane, end to end against an emulated production Prime in its own process, through the
station's interfaces only: the debug link refuses input while locked, so the stylus robot types the PIN,
a FIDO2 registration over NFC raises the trusted-display prompt, the camera reads it, the robot
confirms it, the credential verifies, and the relay's power press locks the unit again."""

import pytest
from fido_helpers import register_over_nfc

from hil.emulator import robot as emulated_bench
from hil.lab.station import device_station
from hil.link.client import DeviceLocked
from hil.link.resolve import open_client
from hil.provisioning import TEST_PIN
from hil.stimuli.relay import PowerButtonRelay
from hil.stimuli.robot import Calibration, StylusRobot
from hil.stimuli.touch import RobotTouch, enter_pin
from hil.vision.camera import Camera
from hil.vision.controls import locate_control
from hil.vision.display import Display
from hil.vision.pin_screen import SWIPE_HINT, wait_pin_screen

PIN = TEST_PIN


def station_calibration() -> Calibration:
    """What the lab's calibration file holds for this bench: three corners touched and measured."""
    return Calibration.fit([(p, emulated_bench.display_to_mm(*p)) for p in [(0, 0), (479, 0), (0, 971)]])


@pytest.mark.slow
def test_production_unit_unlocked_and_confirmed_by_robot():
    with device_station("emulator", flavour="production", seed=5) as station:
        with open_client(station.debug, station.profile) as link, Camera(station.camera) as camera, \
                StylusRobot.open(station.robot, station_calibration()) as robot, \
                PowerButtonRelay.open(station.relay) as relay:
            display = Display(camera)
            touch = RobotTouch(robot, relay, station.profile.touch.home_button.centre)
            display.expect_text(SWIPE_HINT, timeout=15)
            with pytest.raises(DeviceLocked):
                link.tap(240, 410)  # production: no debug input while locked

            # the robot swipes up from the hint, then types where the camera sees the keys
            enter_pin(touch, wait_pin_screen(lambda: display.rectified()[0], touch), PIN)
            display.expect_text("Apps", region="title", timeout=10)

            def confirm():
                display.expect_text("Confirm Registration", region="body", timeout=20)
                touch.tap(*locate_control(display.rectified()[0], "Confirm"))  # where the camera sees it

            server, state, outcome = register_over_nfc(station.nfc, confirm)
            assert "error" not in outcome, outcome.get("error")
            auth_data = server.register_complete(state, outcome["response"])
            assert auth_data.is_user_present()

            touch.power()  # the relay: short press locks the unit and turns the screen off
            with pytest.raises(DeviceLocked):
                link.tap(240, 410)
