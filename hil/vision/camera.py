"""The camera that watches a station's display, through OpenCV `VideoCapture`.

Sources (the `camera` key of a station): a device index (`0`), a V4L2 node (`/dev/video2`), a network
stream (`rtsp://…`, `http://…/stream.mjpg`), or a video file (a recording, replayed frame by frame).

A live source is read continuously by a thread, so that `VideoCapture` buffers nothing stale and a
verification looks at what the glass shows now, not a second ago; but a frame is decoded only while a
`grab` waits for one (``VideoCapture.grab`` takes each frame, ``retrieve`` decodes it), so a camera left
open between checks costs the controller little: a V4L2 camera's MJPEG is decoded in ``retrieve``; an HTTP
MJPEG stream is read by `hil.vision.mjpeg` and decoded in ``retrieve`` too (FFmpeg's demuxer spent ~3 ms of
CPU on every part, wanted or not: 3 % of a core per open camera on the emulated stream, 0.2 % now); other
FFmpeg streams' packets are decoded in ``grab`` already. Every wait has a timeout; a camera that gives no
frame raises `NoFrame` (broken, never a pass). A lost stream is not
reopened behind the caller's back.
"""

from __future__ import annotations

import os
import re
import threading
import time

import cv2
import numpy as np

from hil.errors import ConfigError, InfrastructureError
from hil.vision.mjpeg import MjpegStream, open_stream


class NoFrame(InfrastructureError):
    """The camera delivered no frame in time (unplugged, stream down, wrong source)."""


def _open_args(source: str) -> tuple[object, int, bool]:
    """(what VideoCapture opens, the backend, whether it is live)."""
    if re.fullmatch(r"\d+", source):
        return int(source), cv2.CAP_ANY, True
    if re.fullmatch(r"/dev/video\d+", source):
        return source, cv2.CAP_V4L2, True
    if re.match(r"(rtsp|rtsps|http|https)://", source):
        return source, cv2.CAP_FFMPEG, True
    if os.path.isfile(source):
        return source, cv2.CAP_ANY, False
    raise ConfigError(f"camera source {source!r} is not a device index, /dev/videoN, an rtsp/http URL "
                      "or an existing video file; fix the station's `camera` entry")


# (property to set, value, property to read back, what it is called) for each field of a capture mode;
# autofocus/auto exposure go off first, so the manual values hold (V4L2: CAP_PROP_AUTO_EXPOSURE 1 = manual)
def _settings(mode) -> list[tuple[int, float, str]]:
    out = [(cv2.CAP_PROP_FRAME_WIDTH, mode.width, "width"), (cv2.CAP_PROP_FRAME_HEIGHT, mode.height, "height")]
    if mode.fps is not None:
        out.append((cv2.CAP_PROP_FPS, mode.fps, "fps"))
    if mode.focus is not None:
        out += [(cv2.CAP_PROP_AUTOFOCUS, 0, "autofocus"), (cv2.CAP_PROP_FOCUS, mode.focus, "focus")]
    if mode.exposure is not None:
        out += [(cv2.CAP_PROP_AUTO_EXPOSURE, 1, "auto exposure"), (cv2.CAP_PROP_EXPOSURE, mode.exposure, "exposure")]
    return out


def apply_mode(cap, mode, source: str) -> None:
    """Set ``mode`` on an opened `VideoCapture` and read every value back: a driver that refuses or
    rounds one (a camera that cannot do 1920x1080, a fixed-focus lens) is a configuration error that
    names the property, never a silently different picture."""
    wrong = []
    for prop, value, name in _settings(mode):
        cap.set(prop, value)
    for prop, value, name in _settings(mode):
        got = cap.get(prop)
        if abs(got - value) > max(0.5, 0.02 * abs(value)):
            wrong.append(f"{name} {got:g} (asked {value:g})")
    if wrong:
        raise ConfigError(f"camera {source!r} did not take its capture mode: {', '.join(wrong)}; "
                          "use a mode the camera supports (v4l2-ctl --list-formats-ext) and fix camera_calibration.mode")


class Camera:
    """One camera. `grab(timeout)` returns a BGR frame captured after the call began (live sources)
    or the next frame (files)."""

    def __init__(self, source: str | int, open_timeout: float = 10.0, mode=None):
        """``mode``: the station's capture mode (`hil.lab.config.CaptureMode`), set and checked on open."""
        self.source = str(source)
        target, api, self.live = _open_args(self.source)
        self.device = isinstance(target, int) or self.source.startswith("/dev/video")
        if mode is not None and not self.device and (mode.fps, mode.focus, mode.exposure) != (None, None, None):
            raise ConfigError(f"camera {self.source!r}: fps, focus and exposure can be set only on a camera device "
                              "(index or /dev/videoN); set them on the stream's own camera and keep only the size")
        self._open_timeout = open_timeout
        ms = int(open_timeout * 1000)
        self._cap = self._mjpeg(target, open_timeout) or \
            cv2.VideoCapture(target, api, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        if not self._cap.isOpened():
            self._cap.release()
            raise NoFrame(f"camera {self.source!r} did not open within {open_timeout:.0f} s; "
                          "check the cable or URL and that nothing else holds the device")
        if mode is not None and self.device:
            try:
                apply_mode(self._cap, mode, self.source)
            except ConfigError:
                self._cap.release()
                raise
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._stamp = 0.0
        self._waiting = 0  # grab() calls waiting for a frame: only then is one decoded
        self.decoded = 0  # frames decoded (retrieved), of `taken` taken off the source
        self.taken = 0
        self._error: str | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        if self.live:
            self._thread = threading.Thread(target=self._run, name=f"camera {self.source}", daemon=True)
            self._thread.start()
        if mode is not None:  # what arrives is what counts: a driver or a stream may ignore what was asked
            h, w = self.grab(open_timeout).shape[:2]
            if (w, h) != (mode.width, mode.height):
                self.close()
                raise ConfigError(f"camera {self.source!r} delivers {w}x{h} frames, the station's mode says "
                                  f"{mode.width}x{mode.height}; fix the camera or the station's camera_calibration.mode")

    def _mjpeg(self, target, open_timeout: float) -> MjpegStream | None:
        """An HTTP source's MJPEG parts, read without FFmpeg (`hil.vision.mjpeg`); None for anything else."""
        if not isinstance(target, str) or not target.startswith(("http://", "https://")):
            return None
        try:
            return open_stream(target, open_timeout)
        except OSError as e:
            raise NoFrame(f"camera {self.source!r} did not open ({e}); check the URL and that the camera "
                          "is up") from None

    def _run(self) -> None:
        while not self._closed:
            ok, frame = self._cap.grab(), None
            arrived = time.monotonic()  # a frame counts from when it came in, not from when it was decoded
            self.taken += ok
            if ok and self._waiting:  # someone waits for the glass now: decode this frame
                ok, frame = self._cap.retrieve()
                self.decoded += ok
            with self._cond:
                if not ok:
                    self._error = (getattr(self._cap, "error", None) or "the stream ended") if not self._closed else None
                    self._cond.notify_all()
                    return
                if frame is not None:
                    self._frame, self._stamp = frame, arrived
                    self._cond.notify_all()

    def grab(self, timeout: float = 5.0) -> np.ndarray:
        if not self.live:
            ok, frame = self._cap.read()
            if not ok:
                raise NoFrame(f"video file {self.source!r} has no more frames")
            return frame
        asked = time.monotonic()
        with self._cond:
            self._waiting += 1
            try:
                if not self._cond.wait_for(lambda: self._stamp > asked or self._error or self._closed, timeout):
                    raise NoFrame(f"camera {self.source!r} gave no frame in {timeout:.1f} s")
            finally:
                self._waiting -= 1
            if self._stamp <= asked:
                raise NoFrame(f"camera {self.source!r}: {self._error or 'closed'}")
            return self._frame

    def close(self) -> None:
        self._closed = True
        if self._thread is not None:
            self._thread.join(timeout=self._open_timeout + 1)
            if self._thread.is_alive():  # still inside read(): releasing under it would crash the process
                return
        self._cap.release()

    def __enter__(self) -> Camera:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
