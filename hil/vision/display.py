"""What the Prime's display shows, as the station's camera sees it: the `display` API and fixture.

A verification ends in a `Verdict`:
  PASS          the expected text was read, with confidence, where it was expected;
  FAIL          the region was read clearly, and the text is not there: the device showed something else;
  INCONCLUSIVE  the harness could not tell (no panel found, glare over the region, low confidence, prose
                read only a character or so off: `hil.vision.match.near`).
INCONCLUSIVE is never a pass: `expect_text` raises `ScreenUnreadable` (an InfrastructureError, reported
as broken) for it and `TextNotShown` (an AssertionError, reported as failed) for FAIL.

An address, amount or words of a known kind (bech32/bech32m, base58check, hex, PIN, amounts, BIP39
words) are checked by `hil.vision.values`: a look-alike read with confidence is what the display shows
(FAIL); one read unsure is resolved by the kind's alphabet and checksum to a FAIL (no valid value) or an
INCONCLUSIVE (never a pass: the display may show the look-alike). Of an unknown kind, one read only up to
case or a 1/l, 0/O confusion is INCONCLUSIVE.
Glare or a weak read cannot create the expected text, only hide it, so a confident match of prose
passes even with glare elsewhere in the region; for addresses, amounts and words (where a hidden
neighbouring digit or word changes the meaning) any glare over the region is inconclusive.
Matching rules: `hil.vision.match`.
"""

from __future__ import annotations

import enum
import json
import time
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from hil.errors import InfrastructureError
from hil.vision import evidence as ev
from hil.vision import ocr, values
from hil.vision.locate import STANDARD_JIG, Calibration, CalibrationDrift, Jig, Location, ScreenNotFound, locate
from hil.vision.match import TextKind, find, near

# The KeyOS layout (the title bar, the content, the button bar), display pixels.
REGIONS: dict[str, tuple[int, int, int, int]] = {
    "title": (0, 0, 480, 100),
    "body": (0, 100, 480, 700),
    "buttons": (0, 700, 480, 800),
}
MARGIN = 24  # a region is read with this much around it, so a line on its border is read whole
GLARE_LEVEL = 250  # grey level at which the sensor clips
GLARE_FRACTION = 0.01  # clipped share of a region that makes it unreadable
MOVED = 3.0  # frame pixels the panel may shift (marker jitter) before it is taken to have moved
# Ink: what stands out by this many grey levels from the panel's local background, the median of the INK_SPAN
# square around it (a flat fill, or the straight step between two, is background)
INK_CONTRAST = 30
INK_SPAN = 61
INK_SHARE = 0.002  # share of a region that makes it "not blank"
INK_INSET = 4  # px a region is measured inside its edges: a separator or the panel's rim on the border is not in it


class Verdict(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class ScreenUnreadable(InfrastructureError):
    """The camera could not tell what the display shows (INCONCLUSIVE): broken, never a pass."""

    def __init__(self, message: str, verification: Verification | None = None):
        super().__init__(message)
        self.verification = verification


class TextNotShown(AssertionError):
    """The display was read clearly and does not show the expected text: the device did wrong."""

    def __init__(self, message: str, verification: Verification):
        super().__init__(message)
        self.verification = verification


class DisplayTimeout(InfrastructureError):
    """The display did not change, or did not settle, within the time allowed."""


@dataclass
class Screen:
    """One reading of the display."""

    image: np.ndarray  # rectified, 480x800 BGR, display coordinates
    lines: list[ocr.Line]
    regions: dict[str, tuple[int, int, int, int]]  # the display's named regions
    glare: dict[str, float]  # clipped share per region read
    frame: np.ndarray | None = None  # the raw camera frame (None for a screenshot)
    location: Location | None = None
    taken: float = field(default_factory=time.time)

    def lines_in(self, region: str | None = None) -> list[ocr.Line]:
        if region is None:
            return self.lines
        x0, y0, x1, y1 = self.regions[region]
        return [ln for ln in self.lines
                if x0 <= (ln.box[0] + ln.box[2]) / 2 < x1 and y0 <= (ln.box[1] + ln.box[3]) / 2 < y1]

    def text(self, region: str | None = None) -> str:
        return "\n".join(ln.text for ln in self.lines_in(region))

    def to_json(self) -> dict:
        located_by = self.location.method if self.location else "screenshot" if self.frame is None else None
        return {"lines": [ln.to_json() for ln in self.lines], "glare": self.glare,
                "located": located_by is not None, "located_by": located_by or "whole frame"}

    def annotated(self) -> np.ndarray:
        """The rectified image with the regions and the OCR boxes drawn (green confident, red not)."""
        img = self.image.copy()
        for x0, y0, x1, y1 in self.regions.values():
            cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), (255, 160, 0), 1)
        for ln in self.lines:
            colour = (0, 180, 0) if ln.confidence >= 0.85 else (0, 0, 230)
            cv2.rectangle(img, ln.box[:2], ln.box[2:], colour, 2)
            cv2.putText(img, f"{ln.confidence:.2f}", (ln.box[0], max(10, ln.box[1] - 3)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
        return img

    def evidence(self, label: str) -> list[ev.Evidence]:
        items = [ev.png(f"{label}: rectified + OCR", self.annotated()),
                 ev.text(f"{label}: OCR text", json.dumps(self.to_json(), indent=1), "application/json")]
        if self.frame is not None:
            items.insert(0, ev.jpeg(f"{label}: camera frame", self.frame))
        return items


@dataclass
class Verification:
    verdict: Verdict
    expected: str
    kind: TextKind
    region: str | None
    reason: str
    screen: Screen | None

    def evidence(self) -> list[ev.Evidence]:
        label = f"display {self.verdict.value}: {self.expected!r}"
        items = [ev.text(f"{label}: verdict", f"{self.verdict.value}: {self.reason}")]
        return items + (self.screen.evidence(label) if self.screen is not None else [])


def glare(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Share of the region the sensor clipped in blobs (thin white strokes of text do not count)."""
    x0, y0, x1, y1 = box
    g = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    clipped = cv2.morphologyEx((g >= GLARE_LEVEL).astype(np.uint8), cv2.MORPH_OPEN, np.ones((9, 9), np.uint8))
    return float(clipped.mean())


def ink(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Where the region shows ink (bool mask, the region's shape): whatever stands out of its local background,
    dark on light or light on dark, whether or not any of it reads as text. It tells a blank region (a real
    reading: nothing shown) from one whose text could not be read (out of focus, under a stylus, washed out)."""
    x0, y0, x1, y1 = box
    g = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image[y0:y1, x0:x1]
    background = cv2.medianBlur(g, INK_SPAN)  # ink covers less than half of any INK_SPAN square around it
    return cv2.absdiff(cv2.GaussianBlur(g, (0, 0), 1.5), background) >= INK_CONTRAST


def inked(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Share of the region, measured `INK_INSET` inside its edges, that shows ink (`ink`)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (max(0, box[0] + INK_INSET), max(0, box[1] + INK_INSET),
                      min(w, box[2] - INK_INSET), min(h, box[3] - INK_INSET))
    return float(ink(image, (x0, y0, x1, y1)).mean()) if x1 > x0 and y1 > y0 else 0.0


def judge(screen: Screen, expected: str, kind: TextKind, region: str | None,
          min_confidence: float) -> Verification:
    """The verdict of one reading (rules: module docstring)."""
    lines = screen.lines_in(region)
    where = region or "screen"
    glared = [r for r in ([region] if region else screen.regions) if screen.glare.get(r, 0.0) > GLARE_FRACTION]
    m = find(expected, [ln.text for ln in lines], kind)

    def v(verdict: Verdict, reason: str) -> Verification:
        return Verification(verdict, expected, kind, region, reason, screen)

    checked = values.check(expected, lines, kind.value) if kind.strict else None
    if checked is not None:  # a value of a known kind: its alphabet and checksum decide (hil.vision.values)
        if checked.verdict == "pass" and region is None:  # only glare next to the value can hide a character
            glared = [r for r in glared if any(ocr.overlap(_grown(lines[i].box), screen.regions[r]) > 0
                                               for i in checked.lines)]
        if glared and checked.verdict != "inconclusive":
            return v(Verdict.INCONCLUSIVE, f"glare over {', '.join(glared)}: a character may be hidden "
                                           f"({checked.reason})")
        return v(Verdict(checked.verdict), checked.reason)

    if m is not None:
        conf = min(lines[i].confidence for i in m.lines)
        if conf < min_confidence:
            return v(Verdict.INCONCLUSIVE, f"read in the {where} with low confidence {conf:.2f}")
        if glared and kind.strict:
            return v(Verdict.INCONCLUSIVE, f"glare over {', '.join(glared)}: a neighbouring character may be hidden")
        return v(Verdict.PASS, f"read in the {where} (confidence {conf:.2f})")
    if glared:
        return v(Verdict.INCONCLUSIVE, f"glare over {', '.join(glared)}")
    if kind.strict and find(expected, [ln.text for ln in lines], TextKind.PROSE) is not None:
        return v(Verdict.INCONCLUSIVE, "read only up to case or a 1/l, 0/O confusion, which OCR cannot tell "
                                       f"apart and a {kind.value} does not forgive")
    # a weak line could be the expected text misread, unless it is too short to be (a lone "<" key)
    weak = [ln for ln in lines if ln.confidence < min_confidence
            and len(ln.text.strip()) >= min(3, len(expected.strip()))]
    if weak:
        return v(Verdict.INCONCLUSIVE, f"not found, and {len(weak)} line(s) read with low confidence: "
                                       + "; ".join(f"{ln.text!r} {ln.confidence:.2f}" for ln in weak))
    close = near(expected, [ln.text for ln in lines]) if kind is TextKind.PROSE else None
    if close is not None:
        return v(Verdict.INCONCLUSIVE, f"read only as {close.text!r}, {close.edits} character(s) off: a glyph "
                                       "hidden (a stylus, a reflection) or misread, so no clear reading")
    if not lines:  # blank is a reading; ink that no line was read from is not
        share = inked(screen.image, screen.regions[region] if region else (0, 0, *screen.image.shape[1::-1]))
        if share >= INK_SHARE:
            return v(Verdict.INCONCLUSIVE, f"no text read in the {where}, yet {share:.1%} of it shows ink: unreadable "
                                           "(out of focus, under a stylus, washed out), not blank")
        return v(Verdict.FAIL, f"the {where} is blank")
    return v(Verdict.FAIL, f"the {where} shows {' | '.join(ln.text for ln in lines)}")


def _grown(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """A line's box with a line height around it: where a hidden character would be."""
    h = box[3] - box[1]
    return (box[0] - h, box[1] - h, box[2] + h, box[3] + h)


def read_image(image: np.ndarray, regions: dict[str, tuple[int, int, int, int]] = REGIONS,
               reader: ocr.RegionReader | None = None, location: Location | None = None,
               frame: np.ndarray | None = None, only: list[str] | None = None, until=None) -> Screen:
    """Read a rectified 480x800 image (a screenshot, or a rectified camera view): the whole panel in one
    pass, or only the regions named in `only` (each with a margin, so a line on its border is whole).
    With `until` (lines so far -> bool) reading stops once it holds."""
    reader = reader or ocr.RegionReader()
    h, w = image.shape[:2]
    if only is None:
        lines = reader.read(image, (0, 0, w, h), until)
    else:
        lines = []
        for x0, y0, x1, y1 in (regions[r] for r in only):
            def inside(found: list[ocr.Line]) -> list[ocr.Line]:
                return [ln for ln in found
                        if x0 <= (ln.box[0] + ln.box[2]) / 2 < x1 and y0 <= (ln.box[1] + ln.box[3]) / 2 < y1
                        and not any(ocr.overlap(ln.box, other.box) > 0.5 for other in lines)]
            crop = (max(0, x0 - MARGIN), max(0, y0 - MARGIN), min(w, x1 + MARGIN), min(h, y1 + MARGIN))
            lines += inside(reader.read(image, crop, until and (lambda found: until(lines + inside(found)))))
            if until is not None and until(lines):
                break
    gl = {name: glare(image, box) for name, box in regions.items()} if frame is not None else {}
    return Screen(image, ocr.sort_lines(ocr.told_apart(lines)), dict(regions), gl, frame, location)


SURROUND_SCALE = 4  # the surround is compared at 1/4 scale


def _surround(frame: np.ndarray, loc: Location) -> np.ndarray:
    """The frame around the panel (the panel, whose content changes, filled flat), small, grey and
    smoothed: what the camera's motion is estimated on."""
    g = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame.copy()
    cv2.fillConvexPoly(g, loc.corners.astype(np.int32), int(g.mean()))
    small = cv2.resize(g, None, fx=1 / SURROUND_SCALE, fy=1 / SURROUND_SCALE, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small.astype(np.float32), (0, 0), 1.5)


def text_angle(quads: list[np.ndarray]) -> float:
    """The text lines' direction in degrees (mod 180, in [-90, 90)), weighted by line length: the
    average of doubled angles, so 89 and -89 degrees agree."""
    z = 0j
    for q in quads:
        e = max((q[1] - q[0], q[2] - q[1]), key=lambda v: float(np.hypot(*v)))
        z += float(np.hypot(*e)) * np.exp(2j * np.arctan2(e[1], e[0]))
    return float((np.degrees(np.angle(z)) / 2 + 90) % 180 - 90)


def _box(quad: np.ndarray) -> tuple[int, int, int, int]:
    (x0, y0), (x1, y1) = quad.min(axis=0), quad.max(axis=0)
    return int(x0), int(y0), int(x1), int(y1)


def read_frame(frame: np.ndarray) -> Screen:
    """Read a whole camera frame in which no panel was located: its text lines, turned upright (the camera
    may be mounted at any angle, and a line is upside down when the classifier says most are). The
    lines' boxes are in the upright frame's pixels, not display pixels, so no region can be asked for."""
    plain = ocr.quads(frame, ocr.frame_engine())  # and on the frame equalised, for text the display dims
    quads = plain + [q for q in ocr.quads(ocr.equalised(frame), ocr.frame_engine())
                     if not any(ocr.overlap(_box(q), _box(p)) > 0.5 or ocr.overlap(_box(p), _box(q)) > 0.5
                                for p in plain)]
    h, w = frame.shape[:2]
    angle = text_angle(quads) if quads else 0.0
    M = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(M[0, 0]), abs(M[0, 1])
    size = (int(h * sin + w * cos), int(h * cos + w * sin))
    M[:, 2] += np.array(size) / 2 - (w / 2, h / 2)

    def boxes_through(m: np.ndarray, qs: list[np.ndarray]) -> list[tuple[int, int, int, int]]:
        out = []
        for q in qs:
            p = cv2.transform(q.reshape(-1, 1, 2), m).reshape(-1, 2)
            x0, y0 = np.maximum(np.floor(p.min(axis=0)), 0).astype(int)
            x1, y1 = np.minimum(np.ceil(p.max(axis=0)), size).astype(int)
            if x1 - x0 >= 4 and y1 - y0 >= 4:
                out.append((int(x0), int(y0), int(x1), int(y1)))
        return out

    upright = cv2.warpAffine(frame, M, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    boxes = boxes_through(M, quads)
    if ocr.upside_down(upright, boxes_through(M, plain or quads)):  # judged on the lines at full contrast
        M = np.vstack([[-1, 0, size[0]], [0, -1, size[1]]]) @ np.vstack([M, [0, 0, 1]])
        upright = cv2.warpAffine(frame, M, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        boxes = boxes_through(M, quads)
    boxes, bars = ocr.with_marks(ocr.equalised(upright), boxes)
    lines = [ocr.marked(bars[box], box) if box in bars else ocr.read_line(upright, box) for box in boxes]
    whole = {"frame": (0, 0, size[0], size[1])}
    return Screen(upright, ocr.sort_lines(ocr.told_apart([ln for ln in lines if ln.text])), whole,
                  {"frame": glare(upright, whole["frame"])}, frame, None)


class Display:
    """The display of one station, watched by its camera (anything with `grab(timeout) -> BGR frame`)."""

    def __init__(self, camera, jig: Jig | None = STANDARD_JIG, calibration: Calibration | None = None,
                 regions: dict[str, tuple[int, int, int, int]] = REGIONS, min_confidence: float = 0.85,
                 frame_timeout: float = 5.0):
        self.camera = camera
        self.jig = jig
        self.calibration = calibration
        self.regions = dict(regions)
        self.min_confidence = min_confidence
        self.frame_timeout = frame_timeout
        self.reader = ocr.RegionReader()
        self.verifications: deque[Verification] = deque(maxlen=20)
        self.extra_evidence: list[ev.Evidence] = []
        self._location: Location | None = None
        self._surround: np.ndarray | None = None  # the frame around the panel when the calibration was first used

    # ------------------------------------------------------------ seeing
    def _located(self, frame: np.ndarray, fresh: bool = False) -> Location:
        """The panel's location: found once and cached (the camera and jig do not move during a test);
        `fresh` finds it again, and a station calibration is checked when it is first found."""
        if self._location is None or fresh:
            try:
                loc = locate(frame, self.jig)
            except ScreenNotFound:
                if self.calibration is None:
                    raise
                loc = self._calibrated(frame)
            if self.calibration is not None:
                self.calibration.verify(loc)
            if self._location is None or loc.drift(self._location) > MOVED:
                self.reader.forget()
                self._location = loc  # within MOVED, the old one stays: readings remain comparable
        return self._location

    def _calibrated(self, frame: np.ndarray) -> Location:
        """The station's calibrated location, for a panel that cannot be located in the frame (a dark
        screen, no jig). The camera's steadiness is checked on what surrounds the panel, which does not
        change: its shift since this display first used the calibration must stay within tolerance."""
        loc = self.calibration.location
        surround = _surround(frame, loc)
        if self._surround is None:
            self._surround = surround
        warp = np.eye(2, 3, dtype=np.float32)
        try:
            _, warp = cv2.findTransformECC(self._surround, surround, warp, cv2.MOTION_AFFINE,
                                           (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4), None, 5)
        except cv2.error:
            raise CalibrationDrift("the scene around the panel no longer matches the one first seen: the "
                                   "camera moved; re-seat it or recalibrate") from None
        small = loc.corners / SURROUND_SCALE
        moved = cv2.transform(small.reshape(-1, 1, 2), warp).reshape(-1, 2) - small
        shift = float(np.linalg.norm(moved, axis=1).max()) * SURROUND_SCALE
        if shift > self.calibration.tolerance:
            raise CalibrationDrift(f"the camera moved {shift:.1f} px since the calibrated panel was first used "
                                   f"(tolerance {self.calibration.tolerance:.1f}); re-seat it or recalibrate")
        return loc

    def rectified(self, fresh: bool = False) -> tuple[np.ndarray, np.ndarray, Location]:
        frame = self.camera.grab(self.frame_timeout)
        if not fresh and self._location is not None and self._location.method == "calibration":
            self._calibrated(frame)  # nothing in the frame vouches for the panel: check the camera every time
        loc = self._located(frame, fresh)
        return loc.rectify(frame), frame, loc

    def read(self, regions: list[str] | None = None, fresh: bool = False, until=None) -> Screen:
        """Read the display now (all regions, or the named ones; `until`: see `read_image`)."""
        image, frame, loc = self.rectified(fresh)
        return read_image(image, self.regions, self.reader, loc, frame, regions, until)

    # ------------------------------------------------------------ verifying
    def verify_text(self, text: str, kind: TextKind = TextKind.PROSE, region: str | None = None) -> Verification:
        """One reading, one verdict. A FAIL or INCONCLUSIVE reading is confirmed by locating the panel
        afresh, so a moved camera is never mistaken for a device that shows the wrong thing: where the panel
        moved, the display is read again. Where it did not, a FAIL is read again on that fresh frame, from
        scratch (nothing reused from the first reading): a FAIL there too stands, a PASS there makes the two
        frames disagree, which is INCONCLUSIVE (a misread frame is then no false FAIL, and a screen that showed
        the wrong value for a frame is never a PASS). No reading of one frame is ever taken twice. An
        INCONCLUSIVE stands."""
        return self._verify(text, kind, region, reread=True)

    def _verify(self, text: str, kind: TextKind, region: str | None, reread: bool) -> Verification:
        """`verify_text`, its FAIL read again from scratch only with `reread` (that costs a whole reading)."""
        if region is not None and region not in self.regions:
            raise ValueError(f"unknown display region {region!r}; known: {', '.join(self.regions)}")
        names = [region] if region else None

        def found(lines: list[ocr.Line]) -> bool:  # read no further than the expected text
            checked = values.check(text, ocr.told_apart(lines), kind.value) if kind.strict else None
            if checked is not None:
                # an address or amount read up to look-alikes stays inconclusive however many lines follow
                # (values.check_code ranks it before any fail, check_amount decides on its first reading): only a
                # second copy of an address, or a later line showing the font's l as a bare stroke
                # (ocr.told_apart), could still make it pass; reading stops there, never passing more
                return checked.verdict == "pass" or (
                    kind in (TextKind.ADDRESS, TextKind.AMOUNT) and checked.verdict == "inconclusive")
            return find(text, [ln.text for ln in lines], kind) is not None

        try:
            result = judge(self.read(names, until=found), text, kind, region, self.min_confidence)
            if result.verdict is not Verdict.PASS:
                seen = self._location
                image, frame, loc = self.rectified(fresh=True)
                if loc is not seen:  # the panel moved: what was read is not comparable, so read it again
                    result = judge(read_image(image, self.regions, self.reader, loc, frame, names), text, kind,
                                   region, self.min_confidence)
                elif reread and result.verdict is Verdict.FAIL and not np.array_equal(frame, result.screen.frame):
                    again = judge(read_image(image, self.regions, ocr.RegionReader(), loc, frame, names, found),
                                  text, kind, region, self.min_confidence)
                    if again.verdict is Verdict.PASS:
                        result = Verification(Verdict.INCONCLUSIVE, text, kind, region,
                                              f"two frames disagree: one read as FAIL ({result.reason}), the next "
                                              "as PASS", result.screen)
        except ScreenNotFound as e:
            self._location = None
            result = Verification(Verdict.INCONCLUSIVE, text, kind, region, str(e), None)
        self.verifications.append(result)
        return result

    def expect_text(self, text: str, kind: TextKind = TextKind.PROSE, region: str | None = None,
                    timeout: float = 5.0) -> Verification:
        """Wait until the display shows `text` (PASS, returned). At the timeout the last reading decides:
        FAIL raises TextNotShown, INCONCLUSIVE raises ScreenUnreadable. Readings while waiting use what is
        cached; only the last one reads a FAIL again from scratch (`verify_text`), so waiting stays cheap."""
        deadline = time.monotonic() + timeout
        while True:
            last = time.monotonic() >= deadline
            result = self._verify(text, kind, region, reread=last)
            if result.verdict is Verdict.PASS:
                return result
            if last:
                break
            # no pause before the next reading: it waits for the camera's next frame (`Camera.grab`)
        shown = f"; it shows: {result.screen.text(region)!r}" if result.screen is not None else ""
        msg = (f"display {result.verdict.value} for {text!r} ({kind.value}) after {timeout:.1f} s: "
               f"{result.reason}{shown}")
        if result.verdict is Verdict.FAIL:
            raise TextNotShown(msg, result)
        raise ScreenUnreadable(msg, result)

    # ------------------------------------------------------------ waiting
    def wait_for_change(self, timeout: float = 5.0, since: np.ndarray | None = None) -> np.ndarray:
        """Wait until the panel differs from `since` (a rectified image; default: what it shows now);
        returns the changed rectified image."""
        reference = ocr.signature(since if since is not None else self.rectified()[0])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            image = self.rectified()[0]
            if ocr.difference(reference, ocr.signature(image)) > self.reader.threshold:
                return image
        raise DisplayTimeout(f"the display did not change within {timeout:.1f} s")

    def wait_stable(self, timeout: float = 5.0, frames: int = 3) -> np.ndarray:
        """Wait until `frames` consecutive frames show the same panel (an animation or a redraw has
        finished); returns the last rectified image."""
        deadline = time.monotonic() + timeout
        image = self.rectified()[0]
        same = 1
        while time.monotonic() < deadline:
            nxt = self.rectified()[0]
            same = same + 1 if ocr.difference(ocr.signature(image), ocr.signature(nxt)) \
                <= self.reader.threshold else 1
            image = nxt
            if same >= frames:
                return image
        raise DisplayTimeout(f"the display did not settle ({frames} equal frames) within {timeout:.1f} s")

    def expect_screen(self, expected, masks=(), name: str = "screen"):
        """The panel looks like `expected` (a golden image, or the framebuffer KeyOS drew: the
        cross-check), tolerantly, masks ignored. Raises GoldenMismatch with the visual diff, or
        ScreenUnreadable when glare hides part of the panel."""
        from hil.vision.golden import GoldenMismatch, compare

        try:
            image, frame, loc = self.rectified()
        except ScreenNotFound as e:
            raise ScreenUnreadable(f"{name}: {e}") from None
        glared = [r for r, box in self.regions.items() if glare(image, box) > GLARE_FRACTION]
        if glared:
            raise ScreenUnreadable(f"{name}: glare over {', '.join(glared)}; the panel cannot be compared")
        result = compare(expected, image, list(masks))
        self.extra_evidence += result.evidence(name) + [ev.jpeg(f"{name}: camera frame", frame)]
        if not result.passed:
            raise GoldenMismatch(f"{name}: the panel differs from the expected screen in {len(result.failing)} "
                                 f"tile(s) (worst {result.worst:.0f} grey levels)", result.evidence(name))
        return result

    def evidence(self) -> list[ev.Evidence]:
        """Evidence of every verification kept (the last 20) and of screen comparisons, for the report."""
        return [item for v in self.verifications for item in v.evidence()] + self.extra_evidence
