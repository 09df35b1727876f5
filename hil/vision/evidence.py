"""Evidence of a verification: what the camera saw, what the harness made of it, what it read.

Items are plain (name, bytes, mimetype) so that a report can hash them (sign-off lists evidence by
hash) and any sink can store them; `attach` hands them to Allure, the only place vision meets allure.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Evidence:
    name: str
    data: bytes
    mimetype: str


def png(name: str, image: np.ndarray) -> Evidence:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"cannot encode {name} as PNG")
    return Evidence(name, buf.tobytes(), "image/png")


def jpeg(name: str, image: np.ndarray, quality: int = 90) -> Evidence:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode {name} as JPEG")
    return Evidence(name, buf.tobytes(), "image/jpeg")


def text(name: str, content: str, mimetype: str = "text/plain") -> Evidence:
    return Evidence(name, content.encode(), mimetype)


def attach(items) -> None:
    """Attach evidence items to the current Allure test (no-op where allure-pytest is not running)."""
    import allure

    kinds = {"image/png": allure.attachment_type.PNG, "image/jpeg": allure.attachment_type.JPG,
             "text/plain": allure.attachment_type.TEXT, "application/json": allure.attachment_type.JSON}
    for item in items:
        allure.attach(item.data, name=item.name, attachment_type=kinds.get(item.mimetype, item.mimetype))


def attach_steps(steps) -> None:
    """Each (title, evidence items) as a named step of the current Allure test, its items attached in it."""
    import allure

    for title, items in steps:
        with allure.step(title):
            attach(items)
