"""The lab camera that watches the emulated Prime: an MJPEG-over-HTTP stream of the display as a camera
on a jig would see it.

A real station films the Prime lying in a jig with four ArUco markers (DICT_4X4_50, ids 0..3) around
it; the lens adds perspective, blur, noise, an exposure and sometimes a reflection of the lab lights.
This module renders that scene from `prime.framebuffer()` so that the harness's vision code is tested on
the same kind of pixels it meets in the lab. It knows nothing of the harness: the jig geometry below is
the physical jig's drawing, which the harness's `hil.vision.locate.Jig` describes independently.

A bench may have no jig (`markers=False`: a plain plate), the camera may look at the panel obliquely
(`tilt`, degrees about the panel's horizontal and vertical axes, a pinhole projection) or be mounted
turned (`rotation`, any angle, 90 and 180 included), and a stylus may cross the panel (`stylus`: where
its tip is, in display fractions). The panel is an LCD with a backlight: its black is lifted by
`black_level` grey levels (assumed: a backlit LCD never shows the case's black; the Prime's panel is an
LCD, reference/keyos.md "Display").

Every frame is deterministic for a seed and a frame number (noise from a seeded generator), so a failing
vision test can be replayed. Faults: ``covered`` (a lens cap: dark frame) and ``glare`` (the panel is
blinded by a reflection).
"""

from __future__ import annotations

import http.server
import socketserver
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Annotated

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# The jig drawing, in display pixels (the panel is (0, 0)-(480, 800)).
PANEL_W, PANEL_H = 480, 800
JIG_RECT = (-150, -70, 630, 1000)  # the jig plate the camera sees
BODY_RECT = (-36, -40, 516, 990)  # the Prime's case (the virtual home button is below the panel)
MARKER_SIZE = 80
MARKERS = {0: (-140, -60), 1: (550, -60), 2: (550, 910), 3: (-140, 910)}  # id -> top-left corner
FAULTS = ("covered", "glare")
NOISE_SLACK = 64


_Unit = Annotated[float, Field(ge=0, le=1)]


class Optics(BaseModel):
    """How one station's camera sees the jig. Tests make it harder per station; the control endpoint
    validates what they send here, so a value OpenCV cannot render never reaches the camera thread."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    # camera resolution (w, h): mounted portrait, like the Prime
    frame: tuple[Annotated[int, Field(ge=64, le=2048)], Annotated[int, Field(ge=64, le=2048)]] = (960, 1280)
    scale: float = Field(1.0, gt=0, le=4)  # jig pixels -> camera pixels
    warp: float = Field(0.03, ge=0, le=0.3)  # perspective: corner jitter as a fraction of the jig size
    rotation: float = Field(0.0, ge=-180, le=180)  # degrees
    blur: float = Field(0.8, ge=0, le=25)  # lens blur, Gaussian sigma in camera pixels
    noise: float = Field(4.0, ge=0, le=128)  # sensor noise, sigma in grey levels
    gain: float = Field(0.9, ge=0, le=4)  # exposure
    glare: tuple[_Unit, _Unit, Annotated[float, Field(gt=0, le=1)], Annotated[float, Field(ge=0, le=1024)]] = (
        0.92, 0.05, 0.10, 60.0)  # x, y (frame fractions), radius (fraction of the frame), strength
    moire: _Unit = 0.0  # amplitude of the screen-door interference (0..1)
    jpeg: int = Field(85, ge=1, le=100)
    fps: float = Field(10.0, gt=0, le=60)
    markers: bool = True  # the jig's fiducials are printed on the plate
    # out-of-plane view angles, degrees (about x, about y)
    tilt: tuple[Annotated[float, Field(ge=-60, le=60)], Annotated[float, Field(ge=-60, le=60)]] = (0.0, 0.0)
    stylus: tuple[_Unit, _Unit] | None = None  # the stylus tip over the panel, display fractions
    black_level: float = Field(0.0, ge=0, le=255)  # the backlit panel's black, grey levels

    @classmethod
    def preset(cls, name: str) -> Optics:
        if name not in PRESETS:
            raise ValueError(f"unknown camera optics {name!r}; known: {', '.join(PRESETS)}")
        return PRESETS[name]


PRESETS = {
    "default": Optics(),
    "hard": Optics(scale=0.78, warp=0.07, rotation=4.0, blur=1.5, noise=9.0, gain=0.7,
                   glare=(0.25, 0.55, 0.12, 90.0), moire=0.06, jpeg=65),
}


def _jig_canvas(markers: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The static parts of the scene (jig plate, markers, the Prime's case) and the panel's offset."""
    x0, y0, x1, y1 = JIG_RECT
    canvas = np.full((y1 - y0, x1 - x0, 3), 150, np.uint8)
    bx0, by0, bx1, by1 = BODY_RECT
    cv2.rectangle(canvas, (bx0 - x0, by0 - y0), (bx1 - x0, by1 - y0), (28, 28, 32), -1)
    aruco = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    for mid, (mx, my) in (MARKERS.items() if markers else ()):
        q = 8  # white quiet zone around each printed marker
        cv2.rectangle(canvas, (mx - x0 - q, my - y0 - q), (mx - x0 + MARKER_SIZE + q, my - y0 + MARKER_SIZE + q),
                      (235, 235, 235), -1)
        m = cv2.aruco.generateImageMarker(aruco, mid, MARKER_SIZE)
        canvas[my - y0:my - y0 + MARKER_SIZE, mx - x0:mx - x0 + MARKER_SIZE] = m[..., None]
    return canvas, np.array([-x0, -y0])


def jig_to_frame(optics: Optics, seed: int) -> np.ndarray:
    """The homography from jig-canvas pixels to camera pixels: where this station's camera is mounted."""
    x0, y0, x1, y1 = JIG_RECT
    w, h = x1 - x0, y1 - y0
    fw, fh = optics.frame
    rng = np.random.default_rng([seed, 7])
    sw, sh = w * optics.scale, h * optics.scale
    a = np.deg2rad(optics.rotation)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    base = _tilted(np.array([[-sw / 2, -sh / 2], [sw / 2, -sh / 2], [sw / 2, sh / 2], [-sw / 2, sh / 2]]),
                   optics.tilt, 1.5 * max(fw, fh)) @ rot.T
    dst = base + [fw / 2, fh / 2] + rng.uniform(-optics.warp, optics.warp, (4, 2)) * [sw, sh]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    return cv2.getPerspectiveTransform(src, dst.astype(np.float32))


def _tilted(corners: np.ndarray, tilt: tuple[float, float], focal: float) -> np.ndarray:
    """Plane corners (centred, camera pixels at the plane's distance) seen by a pinhole camera after the
    plane is turned by `tilt` degrees about its x and y axes."""
    ax, ay = np.deg2rad(tilt)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    p = np.c_[corners, np.zeros(len(corners))] @ (ry @ rx).T + [0, 0, focal]
    return p[:, :2] * focal / p[:, 2:]


def panel_corners(optics: Optics, seed: int) -> np.ndarray:
    """Where the panel's corners land in the camera frame (the truth the harness's locator must find)."""
    x0, y0 = JIG_RECT[:2]
    pts = np.float32([[0, 0], [PANEL_W, 0], [PANEL_W, PANEL_H], [0, PANEL_H]]) - [x0, y0]
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float32), jig_to_frame(optics, seed)).reshape(4, 2)


class Scene:
    """Renders camera frames of one station; the warp of a framebuffer is cached until it changes."""

    def __init__(self, optics: Optics = Optics(), seed: int = 0):
        self.optics, self.seed = optics, seed
        self._canvas, self._offset = _jig_canvas(optics.markers)
        self._H = jig_to_frame(optics, seed)
        fw, fh = optics.frame
        yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
        gx, gy, gr, gs = optics.glare
        d2 = ((xx - gx * fw) ** 2 + (yy - gy * fh) ** 2) / (gr * max(fw, fh)) ** 2
        self._glare = (gs * np.exp(-d2))[..., None].astype(np.float32)
        self._moire = (1 + optics.moire * np.sin(2 * np.pi * (xx * 0.173 + yy * 0.061)))[..., None] \
            if optics.moire else None
        rng = np.random.default_rng([seed, 11])  # one sensor-noise field, drawn once; frames take shifted crops
        self._noise = rng.standard_normal((fh + NOISE_SLACK, fw + NOISE_SLACK, 3), dtype=np.float32)
        self._noise *= np.float32(optics.noise)
        self._cached: tuple[int, np.ndarray] | None = None

    def clean(self, rgb: np.ndarray, key: int) -> np.ndarray:
        """The jig with this framebuffer, seen through the lens but before the sensor (float32 BGR)."""
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        canvas = self._canvas.copy()
        ox, oy = self._offset
        panel = rgb[..., ::-1]
        if self.optics.black_level:
            lift = self.optics.black_level
            panel = (lift + panel.astype(np.float32) * ((255 - lift) / 255)).astype(np.uint8)
        canvas[oy:oy + PANEL_H, ox:ox + PANEL_W] = panel
        if self.optics.stylus is not None:  # a stylus held over the panel, its tip at `stylus`
            tx, ty = ox + self.optics.stylus[0] * PANEL_W, oy + self.optics.stylus[1] * PANEL_H
            tip = np.array([tx, ty])
            end = tip + [260, 700]  # the hand is off the bottom right of the jig
            side = np.array([-(end - tip)[1], (end - tip)[0]]) / np.linalg.norm(end - tip)
            body = np.int32([tip + side * 3, end + side * 22, end - side * 22, tip - side * 3])
            cv2.fillConvexPoly(canvas, body, (45, 40, 38), cv2.LINE_AA)
        img = cv2.warpPerspective(canvas, self._H, self.optics.frame, flags=cv2.INTER_AREA,
                                  borderValue=(90, 90, 90)).astype(np.float32)
        img *= self.optics.gain
        if self._moire is not None:
            img *= self._moire
        img += self._glare
        if self.optics.blur:
            img = cv2.GaussianBlur(img, (0, 0), self.optics.blur)
        self._cached = (key, img)
        return img

    def frame(self, rgb: np.ndarray, n: int, key: int, fault: str | None = None) -> np.ndarray:
        """Frame number `n` as the sensor delivers it (uint8 BGR)."""
        oy, ox = np.random.default_rng([self.seed, n]).integers(NOISE_SLACK, size=2)
        fw, fh = self.optics.frame
        if fault == "covered":
            img = np.full((fh, fw, 3), 6.0, np.float32)
        else:
            img = self.clean(rgb, key)
            if fault == "glare":  # a lamp reflected right over the panel: the sensor clips
                c = panel_corners(self.optics, self.seed).mean(axis=0)
                yy, xx = np.ogrid[0:fh, 0:fw]
                r = 0.3 * max(fw, fh)
                spot = 2000 * np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / r ** 2)
                img = img + spot[..., None].astype(np.float32)
        img = cv2.add(img, self._noise[oy:oy + fh, ox:ox + fw])
        return img.clip(0, 255, out=img).astype(np.uint8)

    def jpeg(self, rgb: np.ndarray, n: int, key: int, fault: str | None = None) -> bytes:
        ok, buf = cv2.imencode(".jpg", self.frame(rgb, n, key, fault), [cv2.IMWRITE_JPEG_QUALITY, self.optics.jpeg])
        return buf.tobytes()


@dataclass
class _State:
    scene: Scene
    fault: str | None = None
    frames: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False


class CameraPeripheral:
    """The ``camera`` endpoint of one Prime: ``http://127.0.0.1:PORT/stream.mjpg`` (``/snapshot.jpg``
    serves one frame). Seeded by the Prime's seed and index; optics and faults change through the
    control endpoint (`control`)."""

    key = "camera"

    def __init__(self, optics: Optics | str = "default"):
        self.optics = Optics.preset(optics) if isinstance(optics, str) else optics
        self.seed = 0
        self._state: _State | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self, prime, host: str = "127.0.0.1", port: int = 0) -> tuple[str, str]:
        self.seed = prime.seed * 1000 + prime.index
        state = self._state = _State(Scene(self.optics, self.seed))
        _RUNNING[prime] = self
        stopping = self._stopping

        def next_jpeg() -> bytes:
            with prime.lock:
                rgba = np.asarray(prime.framebuffer().convert("RGBA"))
                key = prime.frame_counter
            with state.lock:
                n, state.frames = state.frames, state.frames + 1
                return state.scene.jpeg(rgba[..., :3], n, key, state.fault)

        period = 1.0 / self.optics.fps

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):  # the lab log is not for HTTP access lines
                pass

            def do_GET(self):
                if self.path.startswith("/snapshot.jpg"):
                    body = next_jpeg()
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if not self.path.startswith("/stream.mjpg"):
                    self.send_error(404, "try /stream.mjpg or /snapshot.jpg")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                try:
                    while not stopping.is_set():
                        t0 = time.monotonic()
                        body = next_jpeg()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(body) + body + b"\r\n")
                        stopping.wait(max(0.0, period - (time.monotonic() - t0)))
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = _Server((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="emu-camera", daemon=True)
        self._thread.start()
        return self.key, f"http://{host}:{self._server.server_address[1]}/stream.mjpg"

    def set_fault(self, fault: str | None) -> None:
        """``covered``, ``glare`` or None (clear)."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown camera fault {fault!r}; known: {', '.join(FAULTS)}")
        assert self._state is not None, "camera not started"
        with self._state.lock:
            self._state.fault = fault

    def set_optics(self, optics: Optics) -> None:
        """Change this station's optics while running (tests make the view harder)."""
        assert self._state is not None, "camera not started"
        scene = Scene(optics, self.seed)
        try:  # one frame first: optics OpenCV cannot render are refused here, not in the stream's thread
            scene.jpeg(np.zeros((PANEL_H, PANEL_W, 3), np.uint8), 0, -1)
        except cv2.error as e:
            raise ValueError(f"camera optics cannot be rendered ({e.err}); choose gentler values") from None
        self.optics = optics
        with self._state.lock:
            self._state.scene = scene

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None


_RUNNING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # prime -> its CameraPeripheral


def control(prime, request: dict) -> dict:
    """The control endpoint's ``camera`` request: ``fault`` (``covered``, ``glare`` or null) and/or
    ``optics`` (a preset name, or a mapping of `Optics` fields over the current ones)."""
    cam = _RUNNING.get(prime)
    if cam is None:
        raise ValueError("this Prime has no camera running")
    if "optics" in request:
        o = request["optics"]
        if isinstance(o, str):
            cam.set_optics(Optics.preset(o))
        elif isinstance(o, dict):
            try:
                optics = Optics.model_validate({**cam.optics.model_dump(), **o})
            except ValidationError as e:
                err = e.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                known = "; known: " + ", ".join(Optics.model_fields) if err["type"] == "extra_forbidden" else ""
                raise ValueError(f"bad camera optics {where}: {err['msg']}{known}") from None
            cam.set_optics(optics)
        else:
            raise ValueError("camera 'optics' must be a preset name or a mapping of fields")
    if "fault" in request:
        cam.set_fault(request["fault"])
    return {"fault": cam._state.fault, "optics": cam.optics.model_dump()}
