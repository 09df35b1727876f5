"""The emulated Prime's camera against the QR monitor: captures integrate the monitor over their
exposure, and the presenter's fastest rate leaves every code one clean capture."""

import numpy as np
import pytest
import zxingcpp

from hil.emulator.shutter import CAMERA_PERIOD_S, MonitorStream, Shutter
from hil.stimuli.presenter import MAX_FPS, Presenter


def clean_captures(fps: float, phase: float, pictures: int = 40) -> set[int]:
    """Which of `pictures` codes shown at `fps` some capture saw alone (the last is still up)."""
    shown = [np.full((1, 1), k, np.uint8) for k in range(pictures)]
    shutter, clean = Shutter(phase=phase), set()
    for k, picture in enumerate(shown):
        for capture in shutter.show(100 + k / fps, picture, bytes([k])):
            clean |= {i for i, p in enumerate(shown) if capture is p}
    return clean


def test_a_change_mid_exposure_blends_the_two_codes():
    a, b = np.zeros((2, 2), np.uint8), np.full((2, 2), 200, np.uint8)
    shutter = Shutter(phase=0.0, period=0.125, window=0.125)
    assert shutter.show(0.0, a, b"a") == []
    assert shutter.show(0.0625, b, b"b") == []  # the first window (0 to 0.125) is still open
    blended, *rest = shutter.show(0.375, a, b"a")  # windows ending at 0.125, 0.25 and 0.375 are lit now
    assert (blended == 100).all()  # half its exposure on each code
    assert len(rest) == 2 and all(c is b for c in rest)  # b alone, the very picture: no copy, no blend
    later = shutter.show(0.5625, b, b"b")
    assert len(later) == 1 and later[0] is a  # each capture is returned once, when its light is known


def test_a_picture_sent_again_is_no_change():
    a = np.zeros((1, 1), np.uint8)
    shutter = Shutter(phase=0.01)
    captures = [c for t in range(10) for c in shutter.show(t * 0.2, a.copy(), b"same")]
    assert len(captures) > 40 and all(c is captures[0] for c in captures)


@pytest.mark.parametrize("phase", [(i + 0.5) / 25 * CAMERA_PERIOD_S for i in range(25)])
def test_every_code_gets_a_clean_capture_up_to_the_presenters_rate(phase):
    assert clean_captures(MAX_FPS, phase) == set(range(39))
    assert clean_captures(8.0, phase) == set(range(39))


def test_faster_than_the_presenters_rate_some_codes_reach_the_camera_only_blended():
    lost = [39 - len(clean_captures(MAX_FPS * 1.1, (i + 0.5) / 25 * CAMERA_PERIOD_S)) for i in range(25)]
    assert max(lost) > 0


def test_the_camera_reads_the_presenters_stream_with_display_times():
    parts = ["one", "two", "three"]
    with Presenter(parts, fps=15) as presenter:
        stream = MonitorStream(presenter.url + "/stream.mjpg", timeout=10)
        try:
            got = [stream.read() for _ in range(8)]
        finally:
            stream.close()
    times = [t for t, _, _ in got]
    assert np.allclose(np.diff(times), 1 / 15, atol=1e-5)  # one frame a tick, none lost or repeated
    keys = [key for _, _, key in got]
    assert keys[3:] == keys[:5] and len(set(keys[:3])) == 3 and got[0][1].shape == (480, 480)


def test_a_stream_not_from_the_presenter_is_refused():
    with Presenter(["x"]) as presenter, pytest.raises(ValueError, match="not an MJPEG stream"):
        MonitorStream(presenter.url + "/", timeout=10)


def test_new_content_goes_up_at_once_and_a_stale_frame_never_does():
    with Presenter(["one", "two"], fps=0.01) as presenter:  # the next frame would be 100 s away
        stream = MonitorStream(presenter.url + "/stream.mjpg", timeout=10)
        try:
            first = stream.read()
            presenter.show(["three", "four"], fps=0.01)
            second = stream.read()  # within the read timeout, not 100 s
        finally:
            stream.close()
    assert zxingcpp.read_barcodes(first[1])[0].text == "one"
    assert zxingcpp.read_barcodes(second[1])[0].text == "three" and second[0] > first[0]


def test_display_times_going_back_are_refused():
    shutter, a = Shutter(), np.zeros((1, 1), np.uint8)
    shutter.show(1.0, a, b"a")
    with pytest.raises(ValueError, match="went back"):
        shutter.show(0.5, a, b"b")
