"""Text on the rectified display, read by RapidOCR (PP-OCRv6 small, ONNX models shipped in the wheel:
works offline; the most accurate engine measured on this machine, dependencies.md §4).

The engine loads once per process (about a second) and runs on one thread: lab workers run in
parallel, one per station. Recognition costs about 40 ms per text line, so a verification reads only
the display regions it needs, and `RegionReader` skips a region whose pixels have not changed since
it was last read.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Line:
    """One line of text as read: its box (x0, y0, x1, y1) in display pixels and the engine's confidence."""

    text: str
    box: tuple[int, int, int, int]
    confidence: float

    def to_json(self) -> dict:
        return {"text": self.text, "box": list(self.box), "confidence": round(self.confidence, 4)}


@functools.cache
def engine():
    """The process's one RapidOCR engine (models from the wheel, no download)."""
    from rapidocr import RapidOCR

    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    return RapidOCR(params={
        "Global.log_level": "error",
        "Global.use_cls": False,  # the panel is rectified: text is upright
        "Global.text_score": 0.3,  # keep weak reads: a low confidence is reported, not hidden
        "Det.limit_type": "max",  # never upscale a region crop: display pixels are already large
        "Det.limit_side_len": 800,
        "EngineConfig.onnxruntime.intra_op_num_threads": 1,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    })


def read(image: np.ndarray, origin: tuple[int, int] = (0, 0)) -> list[Line]:
    """All text lines in `image` (BGR, display pixels), boxes shifted by `origin`, top to bottom."""
    if image.size == 0:
        return []
    out = engine()(image)
    if out.boxes is None or out.txts is None:
        return []
    ox, oy = origin
    lines = []
    for box, text, score in zip(out.boxes, out.txts, out.scores):
        xs, ys = np.asarray(box)[:, 0], np.asarray(box)[:, 1]
        lines.append(Line(str(text), (int(xs.min()) + ox, int(ys.min()) + oy, int(xs.max()) + ox,
                                      int(ys.max()) + oy), float(score)))
    return sort_lines(lines)


def sort_lines(lines: list[Line]) -> list[Line]:
    """Reading order: rows top to bottom (boxes whose centres are within half a line height share a
    row), left to right within a row."""
    rows: list[list[Line]] = []
    for ln in sorted(lines, key=lambda ln: (ln.box[1] + ln.box[3]) / 2):
        cy, h = (ln.box[1] + ln.box[3]) / 2, ln.box[3] - ln.box[1]
        if rows and abs(cy - np.mean([(r.box[1] + r.box[3]) / 2 for r in rows[-1]])) < h / 2:
            rows[-1].append(ln)
        else:
            rows.append([ln])
    return [ln for row in rows for ln in sorted(row, key=lambda ln: ln.box[0])]


def signature(image: np.ndarray) -> np.ndarray:
    """A blurred, half-size grey copy: what `difference` compares."""
    g = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.GaussianBlur(cv2.resize(g, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
                            (5, 5), 0).astype(np.int16)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """The largest grey-level change between two signatures. The maximum, not a mean: a mean over a
    region would hide one changed digit."""
    return float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")


class RegionReader:
    """Reads display regions, reusing the last result of a region whose pixels have not changed:
    no pixel of its `signature` moved by more than `threshold` grey levels (sensor noise stays below
    it; a changed glyph does not)."""

    def __init__(self, threshold: float = 20.0):
        self.threshold = threshold
        self._last: dict[tuple[int, int, int, int], tuple[np.ndarray, list[Line]]] = {}
        self.calls = 0  # engine runs, for benchmarks

    def read(self, image: np.ndarray, box: tuple[int, int, int, int]) -> list[Line]:
        x0, y0, x1, y1 = box
        crop = image[y0:y1, x0:x1]
        sig = signature(crop)
        last = self._last.get(box)
        if last is not None and difference(last[0], sig) <= self.threshold:
            return last[1]
        self.calls += 1
        lines = read(np.ascontiguousarray(crop), (x0, y0))
        self._last[box] = (sig, lines)
        return lines

    def forget(self) -> None:
        """After the camera or panel moved: nothing cached is comparable any more."""
        self._last.clear()
