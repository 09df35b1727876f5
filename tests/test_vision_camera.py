"""Camera sources through OpenCV VideoCapture: the emulator's MJPEG stream, a video file, bad sources."""

import threading
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from hil.emulator.camera import CameraPeripheral, Optics, Scene
from hil.errors import ConfigError, InfrastructureError
from hil.vision.camera import Camera, NoFrame
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
        Camera(url, exposure=120)
