"""Panels without jig markers: light panels by their outline at any camera turn, dark panels by the
station's calibration (with a moved camera caught), and `hil vision ocr` reading the whole frame."""

import json

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from typer.testing import CliRunner

from hil.emulator.camera import Optics, Scene, panel_corners
from hil.vision.cli import app
from hil.vision.display import Display, Verdict, read_frame
from hil.vision.locate import Calibration, CalibrationDrift, ScreenNotFound, locate
from hil.vision.match import TextKind
from tests.vision_helpers import FONT_BOLD, FilmedScreen, send_screen

ADDRESS = "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"
LINES = ["Send", "0.01250000 BTC", ADDRESS[:14], ADDRESS[14:28], ADDRESS[28:]]
BARE = dict(markers=False, scale=0.8, black_level=18.0)


def rgb(dark: bool) -> np.ndarray:
    return np.asarray(send_screen(dark=dark).convert("RGB"))


@pytest.mark.parametrize("rotation", [90.0, 180.0])
def test_outline_of_a_light_panel_is_turned_upright(rotation):
    optics = Optics(**BARE, rotation=rotation, tilt=(20.0, 0.0))
    loc = locate(Scene(optics, 2).frame(rgb(False), 0, 1), jig=None)
    assert loc.method == "contour"
    assert np.abs(loc.corners - panel_corners(optics, 2)).max() < 8.0  # TL is the panel's TL


def test_dark_panel_without_markers_is_not_guessed():
    with pytest.raises(ScreenNotFound):
        locate(Scene(Optics(**BARE), 1).frame(rgb(True), 0, 1))


@pytest.mark.parametrize("optics", [
    Optics(**BARE, rotation=90.0, tilt=(30.0, 0.0), stylus=(0.8, 0.55)),
    Optics(**BARE, rotation=180.0, tilt=(0.0, -30.0), glare=(0.8, 0.8, 0.1, 80.0)),
])
def test_ocr_reads_the_whole_frame_of_a_dark_screen(tmp_path, optics):
    path = tmp_path / "frame.jpg"
    cv2.imwrite(str(path), Scene(optics, 3).frame(rgb(True), 0, 1))
    result = CliRunner().invoke(app, ["ocr", str(path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["located"] is False and out["located_by"] == "whole frame"
    assert [ln["text"] for ln in out["lines"]] == LINES


@pytest.mark.parametrize("optics, shown", [
    (Optics(**BARE | {"scale": 1.3}, rotation=180.0, tilt=(0.0, -30.0)), LINES),
    (Optics(**BARE | {"scale": 1.35}, rotation=90.0, tilt=(30.0, 0.0)), LINES[1:]),  # the title is out of frame
])
def test_ocr_reads_the_whole_frame_of_a_light_screen_whose_outline_is_out_of_frame(tmp_path, optics, shown):
    frame = Scene(optics, 3).frame(rgb(False), 0, 1)
    with pytest.raises(ScreenNotFound):
        locate(frame)
    path = tmp_path / "frame.jpg"
    cv2.imwrite(str(path), frame)
    result = CliRunner().invoke(app, ["ocr", str(path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["located"] is False and out["located_by"] == "whole frame"
    assert [ln["text"] for ln in out["lines"]] == shown


def test_station_reads_a_dark_screen_through_its_calibration_and_sees_the_camera_move():
    optics = Optics(**BARE, tilt=(15.0, 10.0), stylus=(0.9, 0.9))
    cal = Calibration(tuple(map(tuple, panel_corners(optics, 4).tolist())))
    cam = FilmedScreen(send_screen(dark=True), optics, seed=4)
    display = Display(cam, calibration=cal)
    v = display.verify_text(ADDRESS, TextKind.ADDRESS)
    assert v.verdict is Verdict.PASS, v.reason
    assert v.screen.location.method == "calibration"
    cam.scene = Scene(Optics(**BARE, tilt=(15.0, 10.0), stylus=(0.9, 0.9), rotation=1.5), 4)  # bumped
    with pytest.raises(CalibrationDrift, match="camera moved"):
        display.verify_text(ADDRESS, TextKind.ADDRESS)


@pytest.mark.parametrize("theme, rotation", [("dark", 180.0), ("light", 90.0)])
def test_ocr_reads_keyos_own_splash_filmed_without_markers(tmp_path, release_1_0_0, theme, rotation):
    """KeyOS 1.0.0's own boot splash (../shared), filmed on a bench without a jig."""
    from PIL import Image

    splash = np.asarray(Image.open(release_1_0_0 / "blassets" / f"{theme}.png").convert("RGB"))
    path = tmp_path / "frame.jpg"
    cv2.imwrite(str(path), Scene(Optics(**BARE, rotation=rotation, tilt=(20.0, 0.0)), 5).frame(splash, 0, 1))
    result = CliRunner().invoke(app, ["ocr", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert [ln["text"] for ln in json.loads(result.output)["lines"]] == ["PASSPORT"]


def test_the_whole_frame_finds_text_the_display_dims():
    """A dark screen behind a prompt's overlay, filmed turned 180 degrees without markers: its dimmed rows are read
    from the whole frame too (found on the frame's contrast equalised, besides the frame as it is), and the frame is
    turned upright by the lines at full contrast (dim ones outvoted them)."""
    im = Image.new("RGB", (480, 800), (12, 12, 12))
    d = ImageDraw.Draw(im)
    for y, text in ((60, "Settings"), (140, "Bitcoin Wallet")):  # behind the overlay: barely above black
        d.text((240, y), text, font=ImageFont.truetype(FONT_BOLD, 32), fill=(24, 24, 24), anchor="mm")
    d.text((240, 400), "Allow Access?", font=ImageFont.truetype(FONT_BOLD, 36), fill=(235, 235, 235), anchor="mm")
    frame = Scene(Optics(**BARE, rotation=180.0, tilt=(20.0, 0.0)), 3).frame(np.asarray(im), 0, 1)
    assert [ln.text for ln in read_frame(frame).lines] == ["Settings", "Bitcoin Wallet", "Allow Access?"]
