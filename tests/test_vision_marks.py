"""Lone marks the text detector misses, read by their shape (hil.vision.marks)."""

import cv2
import numpy as np
import pytest

from hil.emulator.camera import Optics, Scene
from hil.vision import marks
from hil.vision.display import Display, read_frame
from hil.vision.locate import ScreenNotFound, locate
from tests.vision_helpers import FilmedScreen, _font, _screen


def pin_field(dark: bool):
    """A PIN screen (drawn here, in DejaVu, not the emulator's font) whose PIN field is empty: a lone dash."""
    im, d, ink = _screen("Enter PIN", dark)
    d.text((240, 140), "Security words", font=_font(26), fill=ink, anchor="mm")
    d.text((240, 230), "-", font=_font(44, True), fill=ink, anchor="mm")
    for i, key in enumerate("123456"):
        cx, cy = 80 + 160 * (i % 3), 500 + 100 * (i // 3)
        d.rounded_rectangle((cx - 74, cy - 44, cx + 74, cy + 44), 14, outline=ink, width=3)
        d.text((cx, cy), key, font=_font(40, True), fill=ink, anchor="mm")
    return im


@pytest.mark.parametrize("dark", [True, False])
@pytest.mark.parametrize("optics", ["default", "hard"])
def test_the_empty_pin_fields_dash_is_read_on_a_camera_view(optics, dark):
    lines = Display(FilmedScreen(pin_field(dark), optics)).read().lines
    dashes = [ln for ln in lines if ln.text == "-"]
    assert len(dashes) == 1, [ln.text for ln in lines]
    x0, y0, x1, y1 = dashes[0].box
    assert x0 < 240 < x1 and y0 - 8 < 230 < y1 + 8  # where it is drawn
    assert [ln.text for ln in lines].index("-") == [ln.text for ln in lines].index("Security words") + 1
    assert not any(ln.text in ("一", "_", "=") for ln in lines)


@pytest.mark.parametrize("rotation", [90.0, 180.0])
def test_the_dash_is_read_in_a_whole_frame_with_no_panel_located(rotation):
    frame = Scene(Optics(markers=False, scale=0.8, black_level=18.0, rotation=rotation, tilt=(20.0, 0.0)), 3).frame(
        np.asarray(pin_field(True).convert("RGB")), 0, 1)
    with pytest.raises(ScreenNotFound):
        locate(frame)  # a dark screen without markers: `hil vision ocr` reads the frame whole
    texts = [ln.text for ln in read_frame(frame).lines]
    assert texts[:3] == ["Enter PIN", "Security words", "-"] and texts.count("-") == 1, texts


def canvas() -> np.ndarray:
    return np.full((200, 300, 3), 30, np.uint8)


def test_a_lone_bar_is_a_dash():
    image = canvas()
    cv2.rectangle(image, (140, 96), (157, 103), (230, 230, 230), -1)
    found, whole = marks.lone_bars(image, [])
    assert [m.text for m in found] == ["-"] and not whole
    assert found[0].box == (140, 96, 158, 104) and found[0].confidence > 0.9


def test_a_detected_box_of_the_bar_alone_is_the_dash_and_one_with_more_ink_is_not():
    image = canvas()
    cv2.rectangle(image, (140, 96), (157, 103), (230, 230, 230), -1)
    assert marks.lone_bars(image, [(130, 86, 168, 114)])[1] == {0}
    cv2.putText(image, "x", (100, 106), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (230, 230, 230), 2)
    assert marks.lone_bars(image, [(95, 80, 168, 114)]) == ([], set())  # a hyphen in a word: the recogniser's


@pytest.mark.parametrize("draw", [
    lambda im: cv2.rectangle(im, (140, 96), (151, 107), (230, 230, 230), -1),  # a square dot, not wider than tall
    lambda im: cv2.rectangle(im, (40, 98), (260, 101), (230, 230, 230), -1),  # a rule of the layout
    lambda im: cv2.rectangle(im, (140, 96), (157, 103), (230, 230, 230), 1),  # an outline, not solid
    lambda im: (cv2.rectangle(im, (140, 96), (157, 103), (230, 230, 230), -1),  # a bar at a button's edge
                cv2.rectangle(im, (120, 110), (200, 160), (230, 230, 230), -1)),
    lambda im: (cv2.rectangle(im, (140, 96), (157, 103), (230, 230, 230), -1),  # a fragment of a longer stroke
                cv2.line(im, (158, 100), (280, 100), (120, 120, 120), 3)),
])
def test_what_is_not_a_lone_bar(draw):
    image = canvas()
    draw(image)
    assert marks.lone_bars(image, []) == ([], set())
