"""Evidence of a verification: what the camera saw, what the harness made of it, what it read.

Items are plain (name, mimetype, bytes) so that a report can hash them (sign-off lists evidence by
hash) and any sink can store them; `attach` hands them to Allure, the only place vision meets allure.

An image is encoded (PNG, JPEG) only when its bytes are first needed, and `attach` has that done off the
test's critical path: the attachment is entered in the test's Allure result at once, in order, and its file
is encoded and written on one background thread while the worker goes on to its next test. `flush` waits
for every file; the plugin calls it when the session ends, before anything reads the results. The image is
copied when the item is made, so whatever the test does afterwards (or how it fails) changes nothing.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from uuid import uuid4

import cv2
import numpy as np


@dataclass(frozen=True)
class Evidence:
    name: str
    mimetype: str
    encode: Callable[[], bytes] = field(repr=False, compare=False)

    @cached_property
    def data(self) -> bytes:
        return self.encode()


def _encoder(name: str, image: np.ndarray, ext: str, params: list[int]) -> Callable[[], bytes]:
    kept = np.array(image, copy=True)

    def encode() -> bytes:
        ok, buf = cv2.imencode(ext, kept, params)
        if not ok:
            raise ValueError(f"cannot encode {name} as {ext[1:].upper()}")
        return buf.tobytes()
    return encode


def png(name: str, image: np.ndarray) -> Evidence:
    return Evidence(name, "image/png", _encoder(name, image, ".png", []))


def jpeg(name: str, image: np.ndarray, quality: int = 90) -> Evidence:
    return Evidence(name, "image/jpeg", _encoder(name, image, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality]))


def text(name: str, content: str, mimetype: str = "text/plain") -> Evidence:
    data = content.encode()
    return Evidence(name, mimetype, lambda: data)


IMAGES = ("image/png", "image/jpeg")


class BackgroundFiles:
    """The Allure files of image evidence, encoded and written on one thread, in the order attached."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evidence")
        self._pending: list[Future] = []
        self._lock = threading.Lock()

    def attach(self, reporter, item: Evidence, kind) -> None:
        """Enter ``item`` in the current Allure result now (its place among the steps is kept); its file follows."""
        from allure_commons import plugin_manager

        file_name = reporter._attach(uuid4(), name=item.name, attachment_type=kind)  # noqa: SLF001 (no public API)
        job = self._pool.submit(lambda: plugin_manager.hook.report_attached_data(body=item.data, file_name=file_name))
        with self._lock:
            self._pending.append(job)

    def flush(self) -> list[str]:
        """Wait for every file attached so far; what could not be written, one line each."""
        with self._lock:
            jobs, self._pending = self._pending, []
        return [f"{type(e).__name__}: {e}" for e in (job.exception() for job in jobs) if e is not None]


_FILES = BackgroundFiles()
atexit.register(_FILES.flush)  # a session that never reached its end still writes what it attached


def _reporter():
    """allure-pytest's reporter of the running test, if it runs (its listener holds it)."""
    from allure_commons import plugin_manager

    return next((p.allure_logger for p in plugin_manager.get_plugins() if hasattr(p, "allure_logger")), None)


def attach(items) -> None:
    """Attach evidence items to the current Allure test (no-op where allure-pytest is not running); images
    are encoded and written in the background (`flush`)."""
    import allure

    kinds = {"image/png": allure.attachment_type.PNG, "image/jpeg": allure.attachment_type.JPG,
             "text/plain": allure.attachment_type.TEXT, "application/json": allure.attachment_type.JSON}
    reporter = _reporter()
    if reporter is None:
        return
    for item in items:
        if item.mimetype in IMAGES:
            _FILES.attach(reporter, item, kinds[item.mimetype])
        else:
            allure.attach(item.data, name=item.name, attachment_type=kinds.get(item.mimetype, item.mimetype))


def flush() -> list[str]:
    """Every attached image's file written (see the module's docstring); what failed, one line each."""
    return _FILES.flush()


def attach_steps(steps) -> None:
    """Each (title, evidence items) as a named step of the current Allure test, its items attached in it."""
    import allure

    for title, items in steps:
        with allure.step(title):
            attach(items)
