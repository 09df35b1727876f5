"""Finding the panel in camera frames rendered through the emulator's optics."""

import cv2
import numpy as np
import pytest

from hil.emulator import camera as emucam
from hil.emulator.camera import Optics, Scene, panel_corners
from hil.vision.locate import (STANDARD_JIG, Calibration, CalibrationDrift, ScreenNotFound, by_contour,
                               locate)
from tests.vision_helpers import permission_prompt, pin_pad

LIGHT = np.asarray(pin_pad().convert("RGB"))
DARK = np.zeros((800, 480, 3), np.uint8)


def frame(optics="default", seed=1, fault=None, rgb=LIGHT):
    return Scene(Optics.preset(optics), seed).frame(rgb, 0, 1, fault)


def test_standard_jig_is_the_emulated_jig():
    """Two descriptions of one physical jig: the harness's and the emulator's drawing."""
    assert STANDARD_JIG.markers == {i: (x, y, emucam.MARKER_SIZE) for i, (x, y) in emucam.MARKERS.items()}


@pytest.mark.parametrize("optics", ["default", "hard"])
@pytest.mark.parametrize("seed", [1, 2])
def test_markers_find_the_panel_even_when_it_is_black(optics, seed):
    loc = locate(frame(optics, seed, rgb=DARK))
    assert loc.method == "aruco"
    assert np.abs(loc.corners - panel_corners(Optics.preset(optics), seed)).max() < 4.0
    assert loc.rectify(frame(optics, seed)).shape == (800, 480, 3)


def test_rectified_panel_matches_the_display():
    f = frame("hard", 3)
    rect = cv2.GaussianBlur(locate(f).rectify(f).astype(np.float32).mean(axis=2), (0, 0), 3)
    truth = cv2.GaussianBlur(LIGHT.astype(np.float32).mean(axis=2), (0, 0), 3)
    corr = {(dx, dy): np.corrcoef(rect.ravel(), np.roll(truth, (dy, dx), axis=(0, 1)).ravel())[0, 1]
            for dx in (-4, 0, 4) for dy in (-4, 0, 4)}
    assert max(corr, key=corr.get) == (0, 0)  # registered to better than 4 display pixels
    assert corr[(0, 0)] > 0.75


def test_contour_finds_a_lit_panel_without_markers():
    loc = locate(frame("default", 1), jig=None)
    assert loc.method == "contour"
    assert np.abs(loc.corners - panel_corners(Optics.preset("default"), 1)).max() < 6.0


def test_covered_camera_is_no_screen():
    with pytest.raises(ScreenNotFound, match="covered"):
        locate(frame(fault="covered"))
    assert by_contour(frame(fault="covered")) is None


def test_calibration_round_trip_and_drift():
    cal = Calibration.measure(frame("default", 1))
    again = Calibration.from_config(cal.to_config())
    assert again.corners == cal.corners
    assert again.check(frame("default", 1)) < 1.0
    with pytest.raises(CalibrationDrift, match="moved"):
        again.check(frame("default", 2))  # another mount: the camera moved


@pytest.mark.parametrize("block", [{}, {"corners": [[0, 0], [1, 1]]}, {"corners": "abc"}])
def test_bad_calibration_block(block):
    with pytest.raises(ValueError, match="four"):
        Calibration.from_config(block)


def test_permission_prompt_screen_is_located_too():
    assert locate(Scene(Optics(), 5).frame(np.asarray(permission_prompt().convert("RGB")), 0, 1)).method == "aruco"


def test_display_refuses_a_station_whose_camera_moved():
    from hil.vision.display import Display
    from tests.vision_helpers import FilmedScreen

    cal = Calibration.measure(frame("default", 1))
    Display(FilmedScreen(pin_pad(), "default", 1), calibration=cal).rectified()
    with pytest.raises(CalibrationDrift):
        Display(FilmedScreen(pin_pad(), "default", 2), calibration=cal).rectified()
