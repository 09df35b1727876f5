"""How the Prime's camera sees the lab's QR monitor over time: the monitor's pictures with the moments
they went up, and the captures a sensor makes of them.

A camera does not see frames, it integrates light: each capture sums what the monitor showed during
its window. A code that changes mid-window comes out as two codes laid over each other, which a QR
decoder mostly cannot read. The monitor here is the QR presenter's MJPEG stream, whose parts carry
`X-Display-Time` (when that picture goes up, on the presenter's clock): the camera places each
picture on that timeline, so how late the stream reaches this process does not change what it sees.

The camera (KeyOS os/camera/src/atsama5d2.rs): OVM7690 at "around 30 fps". assumed: a capture's window
(exposure and rolling-shutter readout together) is one frame period, the longest it can be at 30 fps;
KeyOS leaves exposure to the sensor's automatic control, so the source gives no shorter figure.
"""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import cv2
import numpy as np

CAMERA_PERIOD_S = 1 / 30
CAPTURE_WINDOW_S = CAMERA_PERIOD_S


class MonitorStream:
    """The presenter's ``/stream.mjpg``, read part by part: (display time, greyscale picture, JPEG)."""

    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
        try:
            self._conn.request("GET", parts.path or "/")
            self._resp = self._conn.getresponse()
        except OSError:
            self._conn.close()
            raise
        ctype = self._resp.getheader("Content-Type", "")
        if self._resp.status != 200 or not ctype.startswith("multipart/x-mixed-replace"):
            self.close()
            raise ValueError(f"{url} answered {self._resp.status} {ctype!r}, not an MJPEG stream: "
                             "qr_display must be the harness's QR presenter")

    def read(self) -> tuple[float, np.ndarray, bytes]:
        """The next picture; EOFError when the presenter ends the stream, ValueError on a bad part."""
        line = self._resp.readline()
        while line in (b"\r\n", b"\n"):
            line = self._resp.readline()
        if not line:
            raise EOFError("the QR presenter ended its stream")
        if not line.startswith(b"--"):
            raise ValueError(f"MJPEG part boundary expected, got {line[:40]!r}")
        headers = {}
        while (line := self._resp.readline().strip()):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        try:
            body = self._resp.read(int(headers[b"content-length"]))
            shown_at = float(headers[b"x-display-time"])
        except (KeyError, ValueError):
            raise ValueError("MJPEG part without Content-Length and X-Display-Time: "
                             "qr_display must be the harness's QR presenter") from None
        picture = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_GRAYSCALE)
        if picture is None:
            raise ValueError(f"MJPEG part of {len(body)} bytes is not a JPEG")
        return shown_at, picture, body

    def close(self) -> None:
        self._conn.close()


class Shutter:
    """Captures every `period` s, each integrating the monitor over the `window` s before it ends.
    `phase` (0..period) places the camera's clock against the monitor's first picture."""

    def __init__(self, phase: float = 0.0, period: float = CAMERA_PERIOD_S, window: float = CAPTURE_WINDOW_S):
        self.period, self.window, self.phase = period, window, phase
        self._shown: list[tuple[float, np.ndarray, bytes]] = []  # (since, picture, key), oldest first
        self._next_end: float | None = None

    def show(self, at: float, picture: np.ndarray, key: bytes) -> list[np.ndarray]:
        """The monitor shows `picture` from `at` on (`key` names it: the same key again is no change).
        Returns the captures that ended by `at`, whose light is now all known, oldest first. A capture
        that saw one picture only is that very array, so a caller can tell repeats by identity."""
        if self._shown and at < self._shown[-1][0]:
            raise ValueError(f"the monitor's display time went back from {self._shown[-1][0]:.3f} to {at:.3f}: "
                             "qr_display must be one QR presenter's stream")
        if self._next_end is None:
            self._next_end = at + self.window + self.phase
        captures = []
        while self._shown and self._next_end <= at:
            captures.append(self._integrate(self._next_end - self.window, self._next_end, at))
            self._next_end += self.period
        if not self._shown or self._shown[-1][2] != key:
            self._shown.append((at, picture, key))
        start = self._next_end - self.window  # pictures that ended before the next window are done with
        while len(self._shown) > 1 and self._shown[1][0] <= start:
            self._shown.pop(0)
        return captures

    def _integrate(self, start: float, end: float, now: float) -> np.ndarray:
        ends = [s[0] for s in self._shown[1:]] + [now]
        lit = [(min(end, until) - max(start, since), picture)
               for (since, picture, _), until in zip(self._shown, ends) if min(end, until) > max(start, since)]
        if len(lit) == 1:
            return lit[0][1]
        total = sum(w for w, _ in lit)
        mix = sum(p.astype(np.float32) * (w / total) for w, p in lit)
        return mix.round().astype(np.uint8)
