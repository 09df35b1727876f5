"""The QR presenter: what the lab monitor facing the Prime's camera shows, served over HTTP.

A station's `qr_display` address is where it binds. The monitor's browser opens `/` (a full-screen
page that shows the stream); a camera or the emulated Prime reads `/stream.mjpg` (MJPEG) directly.
Frames follow one schedule (frame k goes up at t0 + k/fps on the presenter's monotonic clock), so every
viewer sees the same frame at the same moment, as on a monitor. Each MJPEG part carries its frame's
`X-Display-Time` (that clock, seconds): a browser ignores it, the emulated Prime's camera uses it to
know when the monitor's picture changed, as light tells a real camera.
"""

from __future__ import annotations

import http.server
import io
import socketserver
import threading
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from PIL import Image

from hil.stimuli import qr
from hil.stimuli.ur import UR, UREncoder

DEFAULT_FPS = 8.0
STATIC_FPS = 5.0  # a still QR is re-sent at this rate so that a stream reader keeps getting frames
CAMERA_FPS = 30.0  # the Prime's OVM7690 (KeyOS os/camera/src/atsama5d2.rs: ISC clock divider 13, "around 30 fps")
CAPTURE_WINDOW_S = 1 / CAMERA_FPS
"""assumed: one capture integrates the monitor over at most one camera frame period (exposure and
rolling-shutter readout together; at 30 fps neither can be longer). KeyOS leaves exposure to the
sensor's automatic control (`set_auto_controls`), so the source gives no figure."""
MAX_FPS = 1 / (1 / CAMERA_FPS + CAPTURE_WINDOW_S)
"""15 fps: a code must stay up one camera period plus one capture window, so that, whatever the
camera's phase, one capture falls wholly inside it; faster, some codes reach the camera only blended
with their neighbours."""
UR_FRAGMENT_LEN = 200  # passport2's UR2 encoder uses 200 (keyos.md §6)

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>QR presenter</title>
<style>html,body{margin:0;height:100%;background:#fff;overflow:hidden;cursor:none}
img{display:block;margin:0 auto;height:100vh;width:100vh;max-width:100vw;max-height:100vw;
image-rendering:pixelated;object-fit:contain}</style></head>
<body><img src="stream.mjpg" alt=""></body></html>
"""


def ur_parts(ur: UR, max_fragment_len: int = UR_FRAGMENT_LEN, rounds: int = 3) -> list[str]:
    """The part strings an animated QR cycles: `rounds` rounds, each every fragment on its own (the
    seqLen pure parts, in order) followed by seqLen // 4 mixed parts that no other round repeats.

    A camera joins the loop at any moment. Wherever it joins, one round and a bit holds every pure
    part, so a camera that misses nothing finishes within seqLen + seqLen // 4 frames (≤ 1.25 × the
    bound), and within seqLen if it joins at a round's start, as BC-UR encoders emit them. The mixed
    parts (fresh in every round) stand in for the pure parts a camera missed; a loop of mixed parts
    instead would cost a camera joining mid-loop ~1.4 × seqLen (the fountain's overhead)."""
    enc = UREncoder(ur, max_fragment_len)
    seq_len = enc.fountain.seq_len
    if enc.is_single_part():
        return [enc.next_part()]
    pure = [enc.next_part() for _ in range(seq_len)]
    return [part for _ in range(rounds) for part in pure + [enc.next_part() for _ in range(seq_len // 4)]]


class Presenter:
    """Serves a still or animated QR (a list of payloads shown in turn at `fps`)."""

    def __init__(self, payloads: Sequence[str | bytes] = (), fps: float = DEFAULT_FPS, size: int = qr.FRAME_SIZE):
        self.size = size
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # new content or stopping: streams stop waiting
        self._stopping = threading.Event()
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.show(payloads, fps)

    # ---------------------------------------------------------------- content
    def show(self, payloads: Sequence[str | bytes], fps: float = DEFAULT_FPS) -> None:
        """Replace what the monitor shows (an empty list shows a blank white frame)."""
        if not 0 < fps <= MAX_FPS:
            raise ValueError(f"fps must be above 0 and at most {MAX_FPS:g} (the Prime's camera needs each code "
                             f"up for two of its frames), not {fps}")
        jpegs = [_jpeg(qr.render(p, self.size)) for p in payloads] or [_jpeg(Image.new("L", (self.size,) * 2, 255))]
        with self._lock:
            self._jpegs = jpegs
            self._fps = fps if len(jpegs) > 1 else min(fps, STATIC_FPS)
            self._t0 = time.monotonic()
            self.generation = getattr(self, "generation", 0) + 1
            self._changed.notify_all()

    def current(self) -> bytes:
        """The JPEG on screen now."""
        with self._lock:
            return self._jpegs[int((time.monotonic() - self._t0) * self._fps) % len(self._jpegs)]

    def after(self, sent: tuple[int, int] | None) -> tuple[tuple[int, int], bytes, float]:
        """The frame a stream sends after `sent` ((generation, tick) of its last frame, None at first):
        ((generation, tick), JPEG, when it goes up). Every tick follows the one before, so a reader that
        fell behind is sent each frame late rather than losing it, up to one whole loop behind; new
        content, or a reader further behind, starts at the frame up now."""
        with self._lock:
            now = int((time.monotonic() - self._t0) * self._fps)
            tick = now
            if sent is not None and sent[0] == self.generation and now - sent[1] <= len(self._jpegs):
                tick = sent[1] + 1
            return (self.generation, tick), self._jpegs[tick % len(self._jpegs)], self._t0 + tick / self._fps

    def wait_until(self, shown_at: float, generation: int) -> bool:
        """Wait for `shown_at`; True at once if the content changes from `generation` or the presenter stops."""
        with self._changed:
            return self._changed.wait_for(lambda: self._stopping.is_set() or self.generation != generation,
                                          timeout=shown_at - time.monotonic())

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def frame_count(self) -> int:
        return len(self._jpegs)

    # ---------------------------------------------------------------- serving
    def start(self, address: str = "http://127.0.0.1:0") -> str:
        """Bind `address` (a station's `qr_display`, port 0 = any) and serve; returns the base URL."""
        parts = urlsplit(address if "//" in address else f"http://{address}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"qr_display {address!r} must look like http://HOST:PORT")
        if self._server is not None:
            raise RuntimeError(f"the presenter already serves {self.url}; stop() it first")
        self._stopping.clear()
        presenter = self

        class Handler(_Handler):
            pass

        Handler.presenter = presenter
        self._server = _Server((parts.hostname, parts.port or 0), Handler)
        self.url = f"http://{parts.hostname}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="qr-presenter", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> Presenter:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _jpeg(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(http.server.BaseHTTPRequestHandler):
    presenter: Presenter

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", PAGE)
        elif path == "/frame.jpg":
            self._send(200, "image/jpeg", self.presenter.current())
        elif path == "/stream.mjpg":
            self._stream()
        else:
            self._send(404, "text/plain", b"not found: use /, /stream.mjpg or /frame.jpg\n")

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        p, sent = self.presenter, None
        try:
            while not p._stopping.is_set():
                sent, jpeg, shown_at = p.after(sent)
                if p.wait_until(shown_at, sent[0]):
                    continue  # new content (or stopping) while this frame waited: it never goes up
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n"
                                 b"X-Display-Time: %.6f\r\n\r\n" % (len(jpeg), shown_at))
                self.wfile.write(jpeg + b"\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
