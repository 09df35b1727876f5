"""The PIN screen's failed-attempt count is only ever what the screen was read to show: a warning that does
not read (out of focus, under a stylus, misread) is `AttemptsUnreadable`, never 0."""

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from hil.emulator.build import Build
from hil.emulator.prime import Prime
from hil.vision import ocr
from hil.vision.pin_screen import AttemptsUnreadable, find_pin_screen, read_pin_screen
from tests.vision_helpers import _font


def bgr(image: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])


def pin_screen(seed: int, failed: int) -> Image.Image:
    """The emulated unit's PIN pad (its renderer) after ``failed`` wrong PINs."""
    prime = Prime(index=1, seed=seed, build=Build(flavour="development"), boot_seconds=0)
    prime.swipe(240, 760, 240, 460)  # up from the swipe hint
    prime.se.attempts_remaining -= failed
    prime.invalidate()
    return prime.framebuffer().convert("RGB")


def warning_box(seed: int, failed: int) -> tuple[int, int, int, int]:
    """Where the warning is drawn: where the screen differs from the same screen with no failed attempt."""
    diff = np.abs(bgr(pin_screen(seed, failed)).astype(int) - bgr(pin_screen(seed, 0)).astype(int)).max(axis=2)
    ys, xs = np.nonzero(diff)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize("seed", [1, 2])  # the dark and the light theme
def test_the_count_is_read_as_the_screen_shows_it(seed):
    for failed, shown in [(0, (0, None)), (2, (2, None)), (5, (5, 5))]:
        pad = read_pin_screen(bgr(pin_screen(seed, failed)))
        assert (pad.failed, pad.left) == shown


def _out_of_focus(im: Image.Image, box) -> None:
    im.paste(im.crop(box).filter(ImageFilter.GaussianBlur(8)), box[:2])


def _stylus_over_the_count(im: Image.Image, box) -> None:
    x0, y0, x1, y1 = box  # the count leads the line: a stylus tip over its first glyphs
    ImageDraw.Draw(im).ellipse((x0 - 12, y0 - 4, x0 + 3 * (y1 - y0) // 2, y1 + 4), fill=(45, 40, 38))


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("spoil", [_out_of_focus, _stylus_over_the_count])
def test_a_warning_that_does_not_read_is_no_count(seed, spoil):
    """Before, a warning OCR could not read was taken as no warning: 0 failed attempts, and a unit showing
    failures was typed on as if it showed none."""
    im = pin_screen(seed, 2)
    spoil(im, warning_box(seed, 2))
    with pytest.raises(AttemptsUnreadable):
        read_pin_screen(bgr(im))


def line(text: str, x: int, y: int, confidence: float = 1.0) -> ocr.Line:
    return ocr.Line(text, (x - 60, y - 10, x + 60, y + 10), confidence)


def pad_lines(*warning: ocr.Line) -> list[ocr.Line]:
    keys = [line(d, 80 + 160 * (i % 3), 400 + 100 * (i // 3)) for i, d in enumerate("1234567890")]
    return [line("Enter PIN", 240, 40), *warning, *keys, line("Unlock", 400, 710)]


BLANK = np.full((800, 480, 3), 240, np.uint8)


@pytest.mark.parametrize("texts, shown", [
    (["1 falled attempt"], (1, None)),  # a glyph misread in a word: the count is still read
    (["9 failed attempts", "Passport will erase its Master Key", "after l more attempt"], (9, 1)),  # singular: 1
])
def test_a_warning_read_up_to_a_glyph_in_its_words_gives_its_count(texts, shown):
    pad = find_pin_screen(pad_lines(*(line(t, 240, 120 + 25 * i) for i, t in enumerate(texts))), BLANK)
    assert (pad.failed, pad.left) == shown


@pytest.mark.parametrize("texts, confidence", [
    (["falled attempts"], 1.0),  # the count lost: any count fits
    (["9 failed attempts", "Passport will erase its Master Key", "after l more attempts"], 1.0),  # plural: any but 1
    (["7 failed attempts"], 0.6),  # the count read unsure
    (["pts"], 1.0),  # a fragment of something in the warning's place
])
def test_a_count_not_read_surely_is_no_count(texts, confidence):
    lines = pad_lines(*(line(t, 240, 120 + 25 * i, confidence) for i, t in enumerate(texts)))
    with pytest.raises(AttemptsUnreadable):
        find_pin_screen(lines, BLANK)


def test_no_warning_is_zero_only_where_its_place_shows_no_ink():
    assert find_pin_screen(pad_lines(), BLANK).failed == 0
    smudged = Image.fromarray(BLANK)
    ImageDraw.Draw(smudged).text((240, 150), "2 failed attempts", font=_font(20, True), fill="black", anchor="mm")
    smudged = bgr(smudged.filter(ImageFilter.GaussianBlur(3)))
    with pytest.raises(AttemptsUnreadable, match="ink"):
        find_pin_screen(pad_lines(), smudged)
    glared = BLANK.copy()
    cv2.circle(glared, (240, 200), 60, (255, 255, 255), -1)
    with pytest.raises(AttemptsUnreadable, match="glare"):
        find_pin_screen(pad_lines(), glared)


def test_a_fresh_lock_is_told_by_its_swipe_hint_not_by_a_frame_of_the_pad_before(monkeypatch):
    """A camera may still show the last entry's PIN pad after a lock: only a reading of the swipe hint (where
    every lock starts) ends the wait, and a unit that never shows it is no lock screen (broken)."""
    from types import SimpleNamespace

    from hil.vision import display, pin_screen

    pad = [ocr.Line("Enter PIN", (150, 40, 330, 80), 0.99), ocr.Line("1 2 3", (60, 500, 420, 540), 0.99)]
    hint = [ocr.Line(pin_screen.SWIPE_HINT, (120, 700, 360, 730), 0.99)]
    frames = iter([pad, pad, hint, pad])
    looked = []
    monkeypatch.setattr(display, "read_image", lambda image: SimpleNamespace(lines=image))
    pin_screen.wait_swipe_hint(lambda: looked.append(1) or next(frames))
    assert len(looked) == 3
    monkeypatch.setattr(pin_screen, "scaled", lambda seconds: 0.0)
    with pytest.raises(pin_screen.NotAPinScreen, match="Swipe up"):
        pin_screen.wait_swipe_hint(lambda: pad, timeout=0.0)
