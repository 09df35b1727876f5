"""Framebuffer goldens (pixel hashes) and the tolerant camera comparison."""

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from hil.errors import ConfigError
from hil.vision.golden import GoldenMismatch, Goldens, compare, cross_check, pixel_hash
from hil.vision.locate import locate
from tests.vision_helpers import FilmedScreen, permission_prompt, pin_pad


def test_pixel_hash_is_exact():
    a, b = pin_pad(), pin_pad()
    assert pixel_hash(a) == pixel_hash(b)
    b.putpixel((240, 400), (1, 2, 3, 255))
    assert pixel_hash(a) != pixel_hash(b)


def test_goldens_record_then_check(tmp_path):
    path = tmp_path / "goldens.json"
    Goldens(path, record=True).check("lock", pin_pad())
    assert json.loads(path.read_text()) == {"lock": pixel_hash(pin_pad())}
    Goldens(path).check("lock", pin_pad())
    with pytest.raises(GoldenMismatch, match="lock") as e:
        Goldens(path).check("lock", pin_pad(("riot", "cotton")))
    assert e.value.evidence[0].mimetype == "image/png"
    with pytest.raises(GoldenMismatch, match="no golden"):
        Goldens(path).check("prompt", permission_prompt())


def test_corrupt_goldens_file(tmp_path):
    (tmp_path / "g.json").write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Goldens(tmp_path / "g.json")


def rectified(screen, optics="hard"):
    frame = FilmedScreen(screen, optics).grab()
    return locate(frame).rectify(frame)


def test_camera_view_of_the_same_screen_passes():
    result = compare(pin_pad(("riot", "cotton")), rectified(pin_pad(("riot", "cotton"))))
    assert result.passed, result.worst
    assert result.diff_image.shape == (800, 480 * 3, 3)


def test_changed_word_fails_and_is_outlined():
    result = compare(pin_pad(("riot", "cotton")), rectified(pin_pad(("riot", "cotter"))))
    assert not result.passed
    assert all(100 <= (y0 + y1) / 2 <= 180 for _, y0, _, y1 in result.failing)  # only the words' row
    (item,) = result.evidence("words")
    assert cv2.imdecode(np.frombuffer(item.data, np.uint8), cv2.IMREAD_COLOR).shape == (800, 1440, 3)


def test_masked_region_is_ignored():
    result = compare(pin_pad(("riot", "cotton")), rectified(pin_pad(("riot", "cotter"))), masks=[(0, 101, 480, 180)])
    assert result.passed


def test_cross_check_catches_a_panel_showing_something_else():
    class Seen:  # what the camera saw
        image = rectified(permission_prompt(), "default")
    assert cross_check(permission_prompt(), Seen).passed
    assert not cross_check(pin_pad(), Seen).passed


def test_size_mismatch():
    with pytest.raises(ValueError, match="differ in size"):
        compare(Image.new("RGB", (480, 800)), np.zeros((400, 240, 3), np.uint8))


def test_display_expect_screen_cross_checks_and_keeps_the_diff():
    from hil.vision.display import Display, ScreenUnreadable

    cam = FilmedScreen(permission_prompt())
    d = Display(cam)
    assert d.expect_screen(permission_prompt(), name="prompt").passed
    with pytest.raises(GoldenMismatch, match="differs"):
        d.expect_screen(pin_pad(), name="lock")
    assert any(e.name == "lock: expected | actual | diff" for e in d.evidence())
    cam.fault = "glare"
    with pytest.raises(ScreenUnreadable, match="glare"):
        d.expect_screen(permission_prompt())
