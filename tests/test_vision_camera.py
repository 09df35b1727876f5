"""Camera sources through OpenCV VideoCapture: the emulator's MJPEG stream, a video file, bad sources."""

import re
import threading
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from hil.emulator.camera import CameraPeripheral, Optics, Scene
from hil.errors import ConfigError, InfrastructureError
from hil.lab.config import CaptureMode
from hil.vision.camera import Camera, NoFrame, apply_mode
from hil.vision.locate import locate
from tests.vision_helpers import pin_pad


class StillPrime:
    """Just what the camera peripheral reads of a Prime."""

    seed, index = 3, 1

    def __init__(self, image: Image.Image):
        self.lock = threading.RLock()
        self.image = image
        self.frame_counter = 1

    def framebuffer(self) -> Image.Image:
        return self.image


@pytest.fixture
def stream():
    cam = CameraPeripheral()
    key, url = cam.start(StillPrime(pin_pad()))
    assert key == "camera" and url.startswith("http://127.0.0.1:") and url.endswith("/stream.mjpg")
    yield cam, url
    cam.stop()


def test_mjpeg_stream_frames_are_fresh_and_show_the_panel(stream):
    _, url = stream
    with Camera(url) as cam:
        t0 = time.monotonic()
        a = cam.grab(5)
        b = cam.grab(5)
        assert a.shape == (1280, 960, 3) and b is not a
        assert time.monotonic() - t0 < 5
        assert locate(b).method == "aruco"


def test_stream_is_deterministic_per_seed():
    rgb = np.asarray(pin_pad().convert("RGB"))
    assert np.array_equal(Scene(Optics(), 5).frame(rgb, 7, 1), Scene(Optics(), 5).frame(rgb, 7, 1))
    assert not np.array_equal(Scene(Optics(), 5).frame(rgb, 7, 1), Scene(Optics(), 6).frame(rgb, 7, 1))


def test_stream_that_stops_gives_no_frame(stream):
    peripheral, url = stream
    with Camera(url) as cam:
        cam.grab(5)
        peripheral.stop()
        with pytest.raises(NoFrame):
            for _ in range(100):  # frames already in flight may still arrive; then the end
                cam.grab(3)


def test_peripheral_faults_and_optics(stream):
    peripheral, url = stream
    peripheral.set_fault("covered")
    with Camera(url) as cam:
        cam.grab(5)
        assert cam.grab(5).mean() < 20
    with pytest.raises(ValueError, match="known: covered, glare"):
        peripheral.set_fault("fog")
    with pytest.raises(ValueError, match="known: default, hard"):
        Optics.preset("blurry")


def test_video_file_replays_then_ends(tmp_path):
    path = str(tmp_path / "rec.avi")
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(3):
        w.write(np.full((240, 320, 3), 60 * i, np.uint8))
    w.release()
    with Camera(path) as cam:
        assert [round(cam.grab().mean() / 60) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(NoFrame, match="no more frames"):
            cam.grab()


@pytest.mark.parametrize("source", ["camera0", "/dev/vid", "ftp://x/y", "/nonexistent.avi"])
def test_bad_sources_are_config_errors(source):
    with pytest.raises(ConfigError, match="not a device index"):
        Camera(source)


def test_unreachable_stream_is_broken():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here
    with pytest.raises(NoFrame) as e:
        Camera(f"http://127.0.0.1:{port}/stream.mjpg", open_timeout=2)
    assert isinstance(e.value, InfrastructureError)


def test_exposure_only_for_camera_devices(stream):
    _, url = stream
    with pytest.raises(ConfigError, match="exposure"):
        Camera(url, mode=CaptureMode(width=960, height=1280, exposure=120))


def test_a_stream_whose_frames_are_not_the_mode_is_a_configuration_error(stream):
    _, url = stream
    with Camera(url, mode=CaptureMode(width=960, height=1280)) as cam:  # what the emulated camera delivers
        assert cam.grab(5).shape == (1280, 960, 3)
    with pytest.raises(ConfigError, match=r"delivers 960x1280 frames, the station's mode says 1920x1080"):
        Camera(url, mode=CaptureMode(width=1920, height=1080))


class Driver:
    """A V4L2 driver as OpenCV sees it: takes what it supports, keeps its default otherwise."""

    def __init__(self, sizes=((640, 480), (1920, 1080)), fixed_focus=False):
        self.props = {cv2.CAP_PROP_FRAME_WIDTH: 640, cv2.CAP_PROP_FRAME_HEIGHT: 480, cv2.CAP_PROP_FPS: 30}
        self.sizes, self.fixed_focus, self.pending = sizes, fixed_focus, {}

    def set(self, prop, value):
        if prop == cv2.CAP_PROP_FOCUS and self.fixed_focus:
            return False
        self.pending[prop] = value
        w = self.pending.get(cv2.CAP_PROP_FRAME_WIDTH, self.props[cv2.CAP_PROP_FRAME_WIDTH])
        h = self.pending.get(cv2.CAP_PROP_FRAME_HEIGHT, self.props[cv2.CAP_PROP_FRAME_HEIGHT])
        if prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT):
            if (w, h) in self.sizes:
                self.props[cv2.CAP_PROP_FRAME_WIDTH], self.props[cv2.CAP_PROP_FRAME_HEIGHT] = w, h
            return True
        self.props[prop] = value
        return True

    def get(self, prop):
        return float(self.props.get(prop, 0))


def test_the_capture_mode_is_set_and_read_back():
    cap = Driver()
    apply_mode(cap, CaptureMode(width=1920, height=1080, fps=30, focus=40, exposure=120), "/dev/video2")
    assert cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 1920 and cap.get(cv2.CAP_PROP_AUTOFOCUS) == 0
    assert cap.get(cv2.CAP_PROP_EXPOSURE) == 120 and cap.get(cv2.CAP_PROP_AUTO_EXPOSURE) == 1


@pytest.mark.parametrize("driver, mode, says", [
    (Driver(), CaptureMode(width=1600, height=1200), "width 640 (asked 1600), height 480 (asked 1200)"),
    (Driver(fixed_focus=True), CaptureMode(width=1920, height=1080, focus=40), "focus 0 (asked 40)"),
])
def test_a_mode_the_camera_does_not_take_is_a_configuration_error(driver, mode, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        apply_mode(driver, mode, "/dev/video2")


def test_an_open_camera_decodes_only_the_frames_a_grab_waits_for(stream):
    """Left open between checks, the camera takes the stream's frames (nothing stale builds up) without
    decoding them: counted, not timed."""
    _, url = stream
    def taken_past(cam, n):  # the camera's thread has taken n more frames (deadline: broken, not failed)
        deadline, want = time.monotonic() + 10, cam.taken + n
        while cam.taken < want:
            assert time.monotonic() < deadline, "the stream stalled"
            time.sleep(0.05)

    with Camera(url) as cam:
        cam.grab(5)
        taken_past(cam, 2)  # past the frame that may have been in hand when the grab returned
        decoded = cam.decoded
        taken_past(cam, 3)
        assert cam.decoded == decoded  # three frames went by, none decoded
        cam.grab(5)
        assert cam.decoded > decoded
