"""The camera that watches a station's display, through OpenCV `VideoCapture`.

Sources (the `camera` key of a station): a device index (`0`), a V4L2 node (`/dev/video2`), a network
stream (`rtsp://…`, `http://…/stream.mjpg`), or a video file (a recording, replayed frame by frame).

A live source is read continuously by a thread that keeps only the newest frame: `VideoCapture`
buffers, and a verification must look at what the glass shows now, not a second ago. Every wait has
a timeout; a camera that gives no frame raises `NoFrame` (broken, never a pass). A lost stream is not
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


class Camera:
    """One camera. `grab(timeout)` returns a BGR frame captured after the call began (live sources)
    or the next frame (files)."""

    def __init__(self, source: str | int, open_timeout: float = 10.0, exposure: float | None = None):
        self.source = str(source)
        target, api, self.live = _open_args(self.source)
        if exposure is not None and not (isinstance(target, int) or self.source.startswith("/dev/video")):
            raise ConfigError(f"camera {self.source!r}: an exposure can be set only on a camera device "
                              "(index or /dev/videoN); set it on the stream's own camera instead")
        self._open_timeout = open_timeout
        ms = int(open_timeout * 1000)
        self._cap = cv2.VideoCapture(target, api, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                                   cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        if not self._cap.isOpened():
            self._cap.release()
            raise NoFrame(f"camera {self.source!r} did not open within {open_timeout:.0f} s; "
                          "check the cable or URL and that nothing else holds the device")
        if exposure is not None:  # manual exposure: a lab station fixes it so the panel never clips
            self._cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)
            self._cap.set(cv2.CAP_PROP_EXPOSURE, exposure)
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._stamp = 0.0
        self._error: str | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        if self.live:
            self._thread = threading.Thread(target=self._run, name=f"camera {self.source}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            ok, frame = self._cap.read()
            with self._cond:
                if not ok:
                    self._error = "the stream ended" if not self._closed else None
                    self._cond.notify_all()
                    return
                self._frame, self._stamp = frame, time.monotonic()
                self._cond.notify_all()

    def grab(self, timeout: float = 5.0) -> np.ndarray:
        if not self.live:
            ok, frame = self._cap.read()
            if not ok:
                raise NoFrame(f"video file {self.source!r} has no more frames")
            return frame
        asked = time.monotonic()
        with self._cond:
            if not self._cond.wait_for(lambda: self._stamp > asked or self._error or self._closed, timeout):
                raise NoFrame(f"camera {self.source!r} gave no frame in {timeout:.1f} s")
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
