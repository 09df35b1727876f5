"""A network camera's MJPEG-over-HTTP stream (``multipart/x-mixed-replace``, one JPEG per part), read by
the harness itself with the `VideoCapture` calls `hil.vision.camera.Camera` makes: ``grab`` takes the next
part off the connection, ``retrieve`` decodes it.

Why not FFmpeg: its demuxer spends ~3 ms of CPU on every 140 KB part whether or not the frame is wanted
(the emulated station's stream, 10 fps: 3 % of a core per open camera, measured); a `Camera` reading the
parts here takes 0.2 %. A camera left open between checks then costs the controller next to nothing, and
only the frames a check waits for are decoded. Any other HTTP source (no multipart answer) stays FFmpeg's.
"""

from __future__ import annotations

import urllib.request
from email.message import Message

import cv2
import numpy as np

MAX_PART = 16 * 1024 * 1024  # a larger JPEG is not a camera frame
MAX_HEADER_LINE = 8192
MAX_LINES = 64  # blank lines before a delimiter, or header lines in a part: more is not a camera


class MjpegStream:
    """One open stream; ``grab`` returns False once it ends or sends something that is not a part."""

    def __init__(self, response, boundary: bytes) -> None:
        self._response = response
        self._delimiter = b"--" + boundary
        self._jpeg: bytes | None = None
        self._pushback: bytes | None = None  # a delimiter line read while looking for a part's end
        self.error: str | None = None  # why the stream stopped, when it did

    def isOpened(self) -> bool:  # noqa: N802 (VideoCapture's name)
        return self._response is not None

    def grab(self) -> bool:
        try:
            self._jpeg = self._next_part()
        except (OSError, ValueError) as e:  # a timeout, a reset, a closed response
            self.error, self._jpeg = f"the stream broke off ({e})", None
        return self._jpeg is not None

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        if self._jpeg is None:
            return False, None
        frame = cv2.imdecode(np.frombuffer(self._jpeg, np.uint8), cv2.IMREAD_COLOR)
        if frame is None:
            self.error = "a part of the stream is not a JPEG image"
        return frame is not None, frame

    def release(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response.close()

    def _line(self) -> bytes:
        if self._pushback is not None:
            line, self._pushback = self._pushback, None
            return line
        line = self._response.readline(MAX_HEADER_LINE)
        if not line:
            raise EOFError
        return line

    def _next_part(self) -> bytes | None:
        try:
            line = self._line()
            for _ in range(MAX_LINES):  # the CRLF that ends the previous part
                if line.strip():
                    break
                line = self._line()
            if not line.startswith(self._delimiter) or line.strip().endswith(b"--"):
                self.error = "the stream ended" if line.strip().endswith(b"--") else \
                    f"expected the part delimiter {self._delimiter!r}, got {line[:40]!r}"
                return None
            headers, count = {}, 0
            while (line := self._line()).strip():
                count += 1
                if count > MAX_LINES:
                    self.error = f"a part with more than {MAX_LINES} header lines is not a camera frame"
                    return None
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
        except EOFError:
            self.error = "the stream ended"
            return None
        length = headers.get("content-length")
        if length is None:
            return self._until_delimiter()
        if not length.isdigit() or int(length) > MAX_PART:
            self.error = f"a part of {length!r} bytes is not a camera frame"
            return None
        body = self._response.read(int(length))
        if len(body) < int(length):
            self.error = f"the stream ended inside a part ({len(body)} of {length} bytes)"
            return None
        return body

    def _until_delimiter(self) -> bytes | None:
        """A part without Content-Length: its body runs to the CRLF before the next delimiter."""
        body = bytearray()
        while len(body) <= MAX_PART:
            line = self._response.readline(MAX_PART)
            if not line:
                self.error = "the stream ended inside a part"
                return None
            if line.startswith(self._delimiter) and body.endswith(b"\r\n"):
                self._pushback = line
                return bytes(body[:-2])
            body += line
        self.error = f"a part without Content-Length ran past {MAX_PART} bytes"
        return None


def open_stream(url: str, timeout: float) -> MjpegStream | None:
    """The stream at ``url`` when it answers with MJPEG parts, None when it answers with anything else;
    `OSError` (urllib's errors among them) when it does not answer. ``timeout`` bounds the opening and
    every later read."""
    response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (a camera URL from the lab's config)
    msg = Message()
    msg["content-type"] = response.headers.get("Content-Type", "")
    boundary = msg.get_param("boundary")
    if msg.get_content_type() != "multipart/x-mixed-replace" or not isinstance(boundary, str) or not boundary:
        response.close()
        return None
    boundary = boundary.removeprefix("--")  # some cameras name it with the dashes the delimiter adds
    return MjpegStream(response, boundary.encode("latin-1"))
