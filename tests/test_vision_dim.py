"""Text the first detection misses: rows dimmed behind a prompt's overlay, and a PIN field's asterisks
(hil.vision.ocr.second_search, and the denoised look at a dim line in `recognise_chars`). Screens drawn here
in DejaVu, not the emulator's font, and filmed through the emulator camera's optics."""

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from hil.vision import ocr
from hil.vision.display import Display
from tests.vision_helpers import FilmedScreen, _font, _screen


def behind_prompt(dark: bool, light: float = 0.12) -> Image.Image:
    """A list of apps with a prompt over its lower part: what the prompt covers not, the display dims."""
    im, d, ink = _screen("Apps", dark)
    for i, row in enumerate(("Settings", "Wallet")):
        d.rounded_rectangle((16, 120 + 90 * i, 464, 195 + 90 * i), 12, outline=ink, width=2)
        d.text((240, 158 + 90 * i), row, font=_font(32, True), fill=ink, anchor="mm")
    rgb = np.asarray(im.convert("RGB")).astype(np.float32) * light  # the overlay: that share of the light gets through
    dimmed = Image.fromarray(rgb.astype(np.uint8)).convert("RGBA")
    paper, text = ((30, 30, 34), "white") if dark else ((245, 245, 240), "black")
    d = ImageDraw.Draw(dimmed)
    d.rounded_rectangle((0, 330, 480, 820), 24, fill=paper, outline=text, width=3)
    d.text((240, 400), "Allow Access?", font=_font(36, True), fill=text, anchor="mm")
    for i, label in enumerate(("Never Allow", "Not Now")):
        top = 560 + 80 * i
        d.rounded_rectangle((8, top, 472, top + 64), 14, outline=text, width=3)
        d.text((240, top + 32), label, font=_font(30, True), fill=text, anchor="mm")
    return dimmed


@pytest.mark.parametrize("dark", [True, False])
def test_rows_dimmed_behind_a_prompt_are_found_on_the_hard_optics(dark):
    screen = behind_prompt(dark, 0.08)
    image = Display(FilmedScreen(screen, "hard")).rectified()[0]
    rows = (50, 158, 248)  # Apps, Settings, Wallet: 8 % of their light, 5-20 grey levels over the sensor's noise
    first = ocr.detect(image)
    assert not [b for b in first if b[1] < 158 < b[3] or b[1] < 248 < b[3]], first  # what the second search is for
    lines = Display(FilmedScreen(screen, "hard")).read().lines
    assert all(any(ln.box[1] < y < ln.box[3] for ln in lines) for y in rows), [(ln.text, ln.box) for ln in lines]
    # (read as what they are only in part: DejaVu this dim on the hard optics is read "Sottings", "Wallot")
    assert [ln.text for ln in lines if ln.box[1] > 330] == ["Allow Access?", "Never Allow", "Not Now"]


def test_a_verification_found_at_once_does_not_search_again(monkeypatch):
    searched = []
    monkeypatch.setattr(ocr, "second_search", lambda *a: searched.append(a) or [])
    display = Display(FilmedScreen(behind_prompt(False), "default"))
    assert display.verify_text("Allow Access?").verdict.value == "pass"
    assert not searched  # the second search costs two detections: only a reading that did not find its text pays
    display.read()
    assert len(searched) == 1


def pin_field() -> Image.Image:
    """The dark theme's PIN field with four asterisks, which the first detection (on the view equalised)
    misses on the hard optics: equalising lifts the noise around such small glyphs as much as them."""
    im, d, ink = _screen("Enter PIN", True)
    d.text((240, 140), "soldier vehicle", font=_font(30, True), fill=ink, anchor="mm")
    d.text((240, 230), "****", font=_font(30), fill=ink, anchor="mm")
    for i, key in enumerate("123456"):
        cx, cy = 80 + 160 * (i % 3), 500 + 100 * (i // 3)
        d.rounded_rectangle((cx - 74, cy - 44, cx + 74, cy + 44), 14, outline=ink, width=3)
        d.text((cx, cy), key, font=_font(40, True), fill=ink, anchor="mm")
    return im


def test_the_second_search_finds_a_pin_fields_asterisks_the_first_detection_missed():
    image = Display(FilmedScreen(pin_field(), "hard")).rectified()[0]
    first = ocr.detect(image)
    assert not [b for b in first if b[1] < 230 < b[3]], first  # what the second search is for
    more = ocr.second_search(image, first)
    assert [b for b in more if b[0] < 240 < b[2] and b[1] < 230 < b[3]], more
    # (the recogniser reads DejaVu's six-spoked asterisks as CJK or digits at 0.2-0.7, so the line is not kept:
    # SECOND_SEARCH_CONFIDENCE; the emulator draws KeyOS font's, read at 0.92 or more)


def test_contrast_to_noise_tells_a_dim_line_from_one_at_full_contrast():
    rng = np.random.default_rng(1)
    line = np.full((40, 200), 10, np.uint8)
    cv2.putText(line, "Settings", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 2)
    noise = rng.normal(0, 3, line.shape)
    full = np.clip(line * 0.8 + noise, 0, 255).astype(np.uint8)
    dim = np.clip(10 + (line > 100) * 14 + noise, 0, 255).astype(np.uint8)
    assert ocr.contrast_to_noise(dim) < ocr.DIM < ocr.contrast_to_noise(full)
