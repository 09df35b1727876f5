"""Finding the Prime's panel in a camera frame and undoing the perspective to 480x800 display pixels.

Two ways, tried in this order: the jig's ArUco fiducials (DICT_4X4_50, whose positions relative to the
panel are the jig's drawing, so they work whatever the screen shows, even a black one), and the panel's
own bright contour (for a bench without fiducials; needs a lit, light screen; turned upright by its
text, so a camera mounted at 90 or 180 degrees is fine). A dark screen on a bench without fiducials
has no outline to find: a station then uses its calibration (`hil.vision.display.Display`), and
`hil vision ocr` reads the whole frame. The result is a
`Location`: a homography frame -> display plus the panel corners in the frame. A station stores the
corners as its calibration (`lab_config.yaml`: `camera_calibration.corners`) and the health check
re-locates and compares, so a bumped camera is caught before it yields a wrong reading.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from hil.errors import InfrastructureError

DISPLAY_SIZE = (480, 800)
PANEL = np.float32([[0, 0], [480, 0], [480, 800], [0, 800]])


class ScreenNotFound(InfrastructureError):
    """The camera frame shows no panel (camera covered, moved, or the jig's markers hidden)."""


class CalibrationDrift(InfrastructureError):
    """The panel is no longer where the station's calibration says: the camera or the jig moved."""


@dataclass(frozen=True)
class Jig:
    """The fiducials printed on a jig: marker id -> top-left corner and side, in display pixels
    (the panel spans (0, 0)-(480, 800); markers lie outside it)."""

    markers: dict[int, tuple[float, float, float]] = field(default_factory=lambda: {
        0: (-140, -60, 80), 1: (550, -60, 80), 2: (550, 910, 80), 3: (-140, 910, 80)})
    dictionary: int = cv2.aruco.DICT_4X4_50

    def corners(self, mid: int) -> np.ndarray:
        x, y, s = self.markers[mid]
        return np.float32([[x, y], [x + s, y], [x + s, y + s], [x, y + s]])


STANDARD_JIG = Jig()


@dataclass(frozen=True)
class Location:
    """Where the panel is in one camera frame."""

    homography: np.ndarray  # frame pixels -> display pixels
    corners: np.ndarray  # the panel's TL, TR, BR, BL in frame pixels
    method: str  # "aruco", "contour" or "calibration"
    residual: float = 0.0  # mean reprojection error of the fiducials, display pixels

    @classmethod
    def from_corners(cls, corners, method: str = "calibration") -> Location:
        c = np.float32(corners).reshape(4, 2)
        return cls(cv2.getPerspectiveTransform(c, PANEL), c, method)

    def rectify(self, frame: np.ndarray, size: tuple[int, int] = DISPLAY_SIZE) -> np.ndarray:
        """The panel as the display drew it: 480x800, display coordinates."""
        return cv2.warpPerspective(frame, self.homography, size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)

    def drift(self, other: Location) -> float:
        """How far (frame pixels) the panel corners moved between two locations."""
        return float(np.linalg.norm(self.corners - other.corners, axis=1).max())


_detectors: dict[int, cv2.aruco.ArucoDetector] = {}


def _aruco(dictionary: int) -> cv2.aruco.ArucoDetector:
    if dictionary not in _detectors:
        params = cv2.aruco.DetectorParameters()
        params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        _detectors[dictionary] = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(dictionary), params)
    return _detectors[dictionary]


def _gray(frame: np.ndarray) -> np.ndarray:
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def by_markers(frame: np.ndarray, jig: Jig = STANDARD_JIG, min_markers: int = 2) -> Location | None:
    """The homography from the jig's fiducials, or None when fewer than `min_markers` are seen."""
    corners, ids, _ = _aruco(jig.dictionary).detectMarkers(_gray(frame))
    if ids is None:
        return None
    seen = [(int(i), c.reshape(4, 2)) for i, c in zip(ids.flatten(), corners) if int(i) in jig.markers]
    if len({i for i, _ in seen}) < min_markers:
        return None
    src = np.concatenate([c for _, c in seen]).astype(np.float32)
    dst = np.concatenate([jig.corners(i) for i, _ in seen])
    H, _ = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if H is None:
        return None
    err = np.linalg.norm(cv2.perspectiveTransform(src.reshape(-1, 1, 2), H).reshape(-1, 2) - dst, axis=1).mean()
    corners_frame = cv2.perspectiveTransform(PANEL.reshape(-1, 1, 2), np.linalg.inv(H)).reshape(4, 2)
    return Location(H, corners_frame, "aruco", float(err))


def by_contour(frame: np.ndarray, min_area: float = 0.05) -> Location | None:
    """The homography from the lit panel's outline: the largest bright quadrilateral with a portrait
    aspect, or None."""
    g = cv2.GaussianBlur(_gray(frame), (5, 5), 0)
    t, bw = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    if g[bw > 0].mean() - g[bw == 0].mean() < 60:  # no lit panel against a darker surround
        return None
    bw = cv2.morphologyEx(bw, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
    contours, _ = cv2.findContours(bw, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    area = frame.shape[0] * frame.shape[1]
    for c in sorted(contours, key=cv2.contourArea, reverse=True)[:5]:
        if cv2.contourArea(c) < min_area * area:
            break
        quad = cv2.approxPolyDP(cv2.convexHull(c), 0.02 * cv2.arcLength(c, True), True)
        if len(quad) != 4:
            continue
        q = _order(quad.reshape(4, 2).astype(np.float32))
        if q.min() < 2 or (q[:, 0].max() > frame.shape[1] - 3) or (q[:, 1].max() > frame.shape[0] - 3):
            continue  # cut by the frame's edge: not the whole panel
        w = np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])
        h = np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])
        if 1.3 < w / max(h, 1) < 2.1:  # a camera mounted turned a quarter: the long side is across
            q, w, h = np.roll(q, -1, axis=0), h, w
        if 1.3 < h / max(w, 1) < 2.1:  # 800/480 = 1.67 under some perspective
            return _upright(frame, Location.from_corners(q, "contour"))
    return None


def _upright(frame: np.ndarray, loc: Location) -> Location:
    """An outline has no top: the panel is turned half round when most of its text lines are upside down."""
    from hil.vision import ocr

    image = loc.rectify(frame)
    small = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)  # lines found at half the
    boxes = [tuple(2 * v for v in b) for b in ocr.detect(small)]  # panel's scale (~1/4 of the CPU), read at full
    if ocr.upside_down(image, boxes):
        return Location.from_corners(np.roll(loc.corners, 2, axis=0), loc.method)
    return loc


def _order(q: np.ndarray) -> np.ndarray:
    """TL, TR, BR, BL."""
    s, d = q.sum(axis=1), np.diff(q, axis=1).ravel()
    return np.float32([q[np.argmin(s)], q[np.argmin(d)], q[np.argmax(s)], q[np.argmax(d)]])


def locate(frame: np.ndarray, jig: Jig | None = STANDARD_JIG) -> Location:
    """Find the panel, fiducials first. Raises ScreenNotFound: never guesses."""
    if frame is None or frame.size == 0:
        raise ScreenNotFound("empty camera frame")
    loc = (by_markers(frame, jig) if jig is not None else None) or by_contour(frame)
    if loc is None:
        g = _gray(frame)
        raise ScreenNotFound(
            f"no panel in the camera frame (mean brightness {g.mean():.0f}, contrast {g.std():.0f}; "
            f"{'jig markers not seen' if jig else 'no fiducials configured'}): is the camera covered, "
            "moved or out of focus?")
    return loc


@dataclass(frozen=True)
class Calibration:
    """A station's stored camera calibration: the panel corners in the camera image. Serialises to the
    `camera_calibration` block of a station in `lab_config.yaml`."""

    corners: tuple[tuple[float, float], ...]
    tolerance: float = 6.0  # frame pixels the panel may move before the station is recalibrated

    @classmethod
    def measure(cls, frame: np.ndarray, jig: Jig | None = STANDARD_JIG) -> Calibration:
        loc = locate(frame, jig)
        return cls(tuple((round(float(x), 2), round(float(y), 2)) for x, y in loc.corners))

    @classmethod
    def from_config(cls, block) -> Calibration:
        """From a `camera_calibration` mapping or model (`corners: [[x, y] * 4]`)."""
        corners = block.get("corners") if isinstance(block, dict) else getattr(block, "corners", None)
        try:
            ok = corners is not None and np.asarray(corners, dtype=float).shape == (4, 2)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError("camera_calibration.corners must be four [x, y] points (TL, TR, BR, BL); "
                             "run `hil farm health` to measure them")
        return cls(tuple((float(x), float(y)) for x, y in corners))

    def to_config(self) -> dict:
        return {"corners": [list(c) for c in self.corners]}

    @property
    def location(self) -> Location:
        return Location.from_corners(self.corners)

    def check(self, frame: np.ndarray, jig: Jig | None = STANDARD_JIG) -> float:
        """Re-locate the panel; the drift in frame pixels. Raises CalibrationDrift beyond tolerance."""
        return self.verify(locate(frame, jig))

    def verify(self, found: Location) -> float:
        """The drift of a location found now; raises CalibrationDrift beyond tolerance."""
        drift = found.drift(self.location)
        if drift > self.tolerance:
            raise CalibrationDrift(f"the panel moved {drift:.1f} px from the station's calibration "
                                   f"(tolerance {self.tolerance:.1f}); re-seat the device or recalibrate")
        return drift
