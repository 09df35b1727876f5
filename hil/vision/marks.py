"""Lone marks the text detector does not see: a dash standing alone (the empty PIN field's `-`).

The detector scores a line by its text-likeness; a lone short bar, on a camera view, scores next to
nothing (its probability map peaks at 0.00-0.02 on 9 of 10 views of the PIN field: docs/benchmarks.md
"Camera OCR"), and the recogniser, given the bar alone, reads `-`, the CJK `一`, `二`, `=` or `■` at
0.2-0.9 (measured on 16 views). So the bar is told by its shape, not by either model: a solid blob of ink,
wider than tall, with background all round it. No font or layout is assumed; the limits below are
relative to the mark itself, except its least size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# assumed: a dash, hyphen or minus is wider than tall in every font, and no font draws one 8 times wider
# than thick (an em dash is about 1 em by 0.07-0.1 em; beyond, it is a rule of the layout, not a character)
ASPECT = (1.5, 8.0)
SOLID = 0.7  # the least share of its box a bar fills (a blurred bar's: 0.82-0.99 on 16 views; a stroke
# fragment of a button outline or a glyph's serif measured 0.70-0.89 too, which the surround tells apart)
# assumed: width, height in display pixels: well under the PIN field's dash (16x6: `ocr.DET_BOX_THRESH`); a hyphen
# of small text (under about 2 px thick) is not looked for: no speck of sensor noise passed on the 96 benchmark views
MIN_SIZE = (6, 3)
# the surround (one bar length on each side) holds no ink of anything else: the bars measured at most 7 % of
# a side's pixels over noise (the hard optics), a stylus tip over a button or an outline's fragment 17-86 %
CLEAR = 0.2
BACKGROUND_SCALE = 4  # the background is the median at 1/4 scale: wider than a glyph, narrower than a panel


@dataclass(frozen=True)
class Mark:
    """A lone mark as read by its shape: its text, box (x0, y0, x1, y1) and how solid it is (0-1)."""

    text: str
    box: tuple[int, int, int, int]
    confidence: float


def ink(flat: np.ndarray) -> tuple[np.ndarray, float]:
    """Each pixel's distance from the local background (either polarity: dark and light themes) and the
    level that separates ink from it (Otsu's, over the whole image)."""
    g = cv2.cvtColor(flat, cv2.COLOR_BGR2GRAY) if flat.ndim == 3 else flat
    h, w = g.shape
    small = cv2.resize(g, (max(1, w // BACKGROUND_SCALE), max(1, h // BACKGROUND_SCALE)), interpolation=cv2.INTER_AREA)
    background = cv2.resize(cv2.medianBlur(small, 9), (w, h), interpolation=cv2.INTER_LINEAR)
    diff = cv2.absdiff(g, background)
    level, _ = cv2.threshold(diff, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return diff, float(level)


def lone_bars(flat: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> tuple[list[Mark], set[int]]:
    """The lone bars in `flat` (a region, its contrast equalised), and the indexes of the detector's `boxes`
    that hold such a bar and no other ink (the bar is their text, whatever the recogniser would read: `一`)."""
    diff, level = ink(flat)
    strong = (diff > level).astype(np.uint8)
    weak = cv2.morphologyEx((diff > level / 2).astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(strong)
    H, W = strong.shape
    marks, whole = [], set()
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if w < MIN_SIZE[0] or h < MIN_SIZE[1] or not ASPECT[0] <= w / h <= ASPECT[1] or area < SOLID * w * h:
            continue
        m = max(w, h)
        if x < m or y < m or x + w + m > W or y + h + m > H or not _alone(weak, labels == i, (x, y, w, h), m):
            continue
        held = [k for k, b in enumerate(boxes) if x < b[2] and b[0] < x + w and y < b[3] and b[1] < y + h]
        if any(set(np.unique(labels[b[1]:b[3], b[0]:b[2]])) - {0, i} for b in (boxes[k] for k in held)):
            continue  # part of a detected line with other ink (a hyphen in a word): the recogniser reads it
        whole.update(held)
        marks.append(Mark("-", (x, y, x + w, y + h), round(area / (w * h), 3)))
    return marks, whole


def _alone(weak: np.ndarray, own: np.ndarray, bar: tuple[int, int, int, int], m: int) -> bool:
    """Whether the bar's faint ink stays within a bar height of it (no fragment of a longer stroke) and each
    side of its surround, `m` pixels wide, is clear of other ink (`CLEAR`)."""
    x, y, w, h = bar
    window = weak[y - m:y + h + m, x - m:x + w + m]
    n, labels, stats, _ = cv2.connectedComponentsWithStats(window)
    mine = set(np.unique(labels[own[y - m:y + h + m, x - m:x + w + m]])) - {0}
    for j in mine:
        jx, jy, jw, jh = stats[j][:4]
        if jx < m - h or jy < m - h or jx + jw > m + w + h or jy + jh > m + h + h:
            return False
    other = (labels > 0) & ~np.isin(labels, list(mine))
    return max(other[:m].mean(), other[-m:].mean(), other[:, :m].mean(), other[:, -m:].mean()) <= CLEAR
