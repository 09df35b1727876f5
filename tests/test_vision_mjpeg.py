"""An HTTP camera's MJPEG parts, read without FFmpeg (hil.vision.mjpeg): frames with and without
Content-Length, and every malformed stream a broken result that says what was wrong."""

import http.server
import threading

import cv2
import numpy as np
import pytest

from hil.vision.camera import Camera, NoFrame
from hil.vision.mjpeg import open_stream


def jpeg(level: int) -> bytes:
    return cv2.imencode(".jpg", np.full((48, 64, 3), level, np.uint8))[1].tobytes()


@pytest.fixture
def serve():
    """``serve(content_type, body)``: the URL of a one-page server that sends ``body`` and closes, or
    with ``forever``, sends it again and again until the client leaves."""
    servers = []

    def start(content_type: str, body: bytes, forever: bool = False) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.end_headers()
                try:
                    self.wfile.write(body)
                    while forever:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def part(body: bytes, length: bool = True) -> bytes:
    head = b"--frame\r\nContent-Type: image/jpeg\r\n" + (b"Content-Length: %d\r\n" % len(body) if length else b"")
    return head + b"\r\n" + body + b"\r\n"


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "delimited"])
def test_parts_are_frames_in_order_then_the_end_is_broken(serve, length):
    url = serve("multipart/x-mixed-replace; boundary=frame", b"".join(part(jpeg(v), length) for v in (0, 120, 240)) + b"--frame--\r\n")
    stream = open_stream(url, 5)
    levels = []
    while stream.grab():
        ok, frame = stream.retrieve()
        assert ok
        levels.append(round(frame.mean() / 120))
    stream.release()
    assert levels == [0, 1, 2] and stream.error == "the stream ended"


def test_a_source_that_is_not_mjpeg_parts_is_left_to_ffmpeg(serve):
    assert open_stream(serve("video/mp4", b"\0" * 64), 5) is None


def test_a_part_that_is_not_a_jpeg_is_broken(serve):
    with Camera(serve("multipart/x-mixed-replace; boundary=frame", part(b"not a jpeg"), forever=True)) as cam:
        with pytest.raises(NoFrame, match="a part of the stream is not a JPEG image"):
            cam.grab(5)


@pytest.mark.parametrize("body, says", [
    (b"HTTP garbage\r\n\r\n", "expected the part delimiter"),
    (b"--frame\r\nContent-Length: 5000\r\n\r\n" + jpeg(9)[:100], r"ended inside a part \(100 of 5000 bytes\)"),
    (b"--frame\r\nContent-Length: 99999999999\r\n\r\n", "is not a camera frame"),
])
def test_a_malformed_stream_is_broken_with_its_reason(serve, body, says):
    with Camera(serve("multipart/x-mixed-replace; boundary=frame", body), open_timeout=5) as cam:
        with pytest.raises(NoFrame, match=says):
            cam.grab(5)


@pytest.mark.parametrize("body, forever", [
    (b"\r\n", True),  # blank lines without end, never a delimiter
    (b"--frame\r\n" + b"X-Pad: y\r\n" * 100, False),  # a part that is all headers
], ids=["endless-blank-lines", "header-flood"])
def test_a_stream_that_never_comes_to_a_frame_is_broken_not_read_forever(serve, body, forever):
    with Camera(serve("multipart/x-mixed-replace; boundary=frame", body, forever=forever), open_timeout=5) as cam:
        with pytest.raises(NoFrame, match="expected the part delimiter|more than 64 header lines"):
            cam.grab(5)
