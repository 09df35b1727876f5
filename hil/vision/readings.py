"""The readings of the display a check relied on, kept as evidence of what it saw: the camera frame with
the located panel outlined (or the screenshot), the rectified view with the OCR boxes, and the OCR lines
with their confidences. A reader polls; only readings that differ from the one before are kept, and the
last few of them, so the report shows each screen the check went through, not a hundred copies of one.
"""

from __future__ import annotations

import json
import re
from collections import deque

import cv2
import numpy as np

from hil.vision import evidence as ev
from hil.vision.display import Screen

PANEL_OUTLINE = (0, 200, 255)  # BGR: the located panel on the camera frame


def outlined(frame: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """The camera frame with the panel's located corners joined."""
    img = frame.copy()
    cv2.polylines(img, [np.int32(corners).reshape(-1, 1, 2)], True, PANEL_OUTLINE, 3)
    return img


class Readings:
    """What one check read off the display, in order (see the module's docstring)."""

    def __init__(self, keep: int = 6) -> None:
        self._screens: deque[tuple[int, Screen]] = deque(maxlen=keep)
        self._count = 0

    def add(self, screen: Screen) -> Screen:
        self._count += 1
        last = self._screens[-1][1] if self._screens else None
        if last is None or [ln.text for ln in last.lines] != [ln.text for ln in screen.lines]:
            self._screens.append((self._count, screen))
        return screen

    def steps(self) -> list[tuple[str, list[ev.Evidence]]]:
        """(step title, its evidence) per kept reading."""
        out = []
        for n, screen in self._screens:
            words = re.sub(r"[\x00-\x1f\x7f]", " ", " | ".join(ln.text for ln in screen.lines))[:80] or "no text read"
            items = []
            if screen.frame is not None and screen.location is not None:
                items.append(ev.jpeg("camera frame, panel outlined", outlined(screen.frame, screen.location.corners)))
            else:
                items.append(ev.png("screenshot", screen.image))
            items += [ev.png("rectified view with OCR boxes", screen.annotated()),
                      ev.text("OCR lines with confidences", json.dumps(screen.to_json(), indent=1), "application/json")]
            out.append((f"display reading {n}: {words}", items))
        return out
