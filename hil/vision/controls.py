"""Controls found by what they show: the centre of the one line of text that reads as a label.

A suite or driver taps a control where the screen (a screenshot, or the camera's rectified view)
shows its label, never at a remembered coordinate: layouts differ between builds, themes and units.
A label read nowhere, or twice, is `ControlNotFound` (infrastructure: no verdict on the device).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from hil.errors import InfrastructureError
from hil.machine import scaled
from hil.vision import ocr


class ControlNotFound(InfrastructureError):
    """The label is not read exactly once on the screen."""


def normal(text: str) -> str:
    """Labels compare as OCR reads them: case and spacing do not count."""
    return "".join(text.lower().split())


def centre(box: tuple[int, int, int, int]) -> tuple[int, int]:
    return (box[0] + box[2]) // 2, (box[1] + box[3]) // 2


def find_control(lines: list[ocr.Line], label: str) -> tuple[int, int]:
    """The centre (display pixels) of the one line in ``lines`` that reads ``label``."""
    hits = [ln for ln in lines if normal(ln.text) == normal(label)]
    if len(hits) != 1:
        said = ", ".join(repr(ln.text[:30]) for ln in lines[:14]) or "nothing"
        raise ControlNotFound(f"{label!r} read {len(hits)} times on the screen (read: {said})")
    return centre(hits[0].box)


def locate_control(image: np.ndarray, label: str) -> tuple[int, int]:
    """`find_control` on a rectified 480x800 BGR image."""
    from hil.vision.display import read_image

    return find_control(read_image(image).lines, label)


def wait_control(look: Callable[[], np.ndarray], label: str, timeout: float = 10.0) -> tuple[int, int]:
    """`locate_control` on ``look()`` until the label is read once (a screen just asked for may not be up
    yet); the last reading's `ControlNotFound` after ``timeout`` idle-machine seconds."""
    deadline = time.monotonic() + scaled(timeout)
    while True:  # no pause: a camera's look() waits for its next frame, a screenshot is taken anew
        try:
            return locate_control(look(), label)
        except ControlNotFound:
            if time.monotonic() > deadline:
                raise
