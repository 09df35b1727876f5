"""Golden screens. Two kinds, for the two ways the harness sees a display:

* a framebuffer (screenshot over the debug link) is exact: its golden is a SHA-256 of the RGBA pixels,
  kept in a JSON file of name -> hash, as Trezor's UI tests keep theirs;
* a camera view is never exact: `compare` judges it against an expected image tile by tile after
  matching exposure and blurring away sensor noise, ignoring masked regions (a clock, a spinner).
  The same comparison cross-checks the camera against the framebuffer, catching a panel that does
  not show what KeyOS drew.
On a mismatch the evidence is one image: expected | actual | difference, failing tiles outlined.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from hil.errors import ConfigError
from hil.vision import evidence as ev


class GoldenMismatch(AssertionError):
    """The screen differs from its golden."""

    def __init__(self, message: str, evidence: list[ev.Evidence]):
        super().__init__(message)
        self.evidence = evidence


def pixel_hash(image: Image.Image) -> str:
    """SHA-256 over the size and the RGBA pixels: equal hashes, equal screens."""
    rgba = image.convert("RGBA")
    return hashlib.sha256(b"%dx%d:" % rgba.size + rgba.tobytes()).hexdigest()


def _bgr(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)
    return image


class Goldens:
    """A JSON file of screen name -> pixel hash. `record=True` writes new or changed hashes instead
    of failing (the way goldens are updated after a reviewed UI change)."""

    def __init__(self, path: str | Path, record: bool = False):
        self.path = Path(path)
        self.record = record
        try:
            self.hashes: dict[str, str] = json.loads(self.path.read_text()) if self.path.exists() else {}
        except json.JSONDecodeError as e:
            raise ConfigError(f"{self.path}: not valid JSON ({e.msg}, line {e.lineno}); fix or re-record it") from None

    def check(self, name: str, image: Image.Image) -> None:
        digest = pixel_hash(image)
        expected = self.hashes.get(name)
        if digest == expected:
            return
        if self.record:
            self.hashes[name] = digest
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.hashes, indent=1, sort_keys=True) + "\n")
            tmp.replace(self.path)
            return
        what = ("has no golden (record with record=True)" if expected is None
                else f"hash {digest[:16]}… != golden {expected[:16]}…")
        raise GoldenMismatch(f"screen {name!r} {what}", [ev.png(f"{name}: actual", _bgr(image))])


@dataclass
class Comparison:
    passed: bool
    worst: float  # the largest tile difference, grey levels
    failing: list[tuple[int, int, int, int]]  # tiles over the threshold, display pixels
    diff_image: np.ndarray  # expected | actual | difference

    def evidence(self, name: str) -> list[ev.Evidence]:
        return [ev.png(f"{name}: expected | actual | diff", self.diff_image)]


def _detail(g: np.ndarray, blur: float) -> np.ndarray:
    """The image without its lighting: slow gradients (a reflection, vignetting) removed, noise blurred."""
    return cv2.GaussianBlur(g, (0, 0), blur) - cv2.GaussianBlur(g, (0, 0), 20)


def compare(expected, actual: np.ndarray, masks: list[tuple[int, int, int, int]] = (),
            tile: int = 16, threshold: float = 30.0, blur: float = 2.5, slack: int = 1) -> Comparison:
    """Tolerant comparison of a rectified camera view with the expected screen (same size, display
    pixels). Lighting gradients are removed and exposure matched over the unmasked area; a tile fails
    when its mean difference exceeds `threshold` grey levels: noise and a pixel or two of
    misregistration stay below it, a changed glyph does not."""
    e = cv2.cvtColor(_bgr(expected), cv2.COLOR_BGR2GRAY).astype(np.float32)
    a = cv2.cvtColor(actual, cv2.COLOR_BGR2GRAY).astype(np.float32)
    if e.shape != a.shape:
        raise ValueError(f"expected {e.shape[1]}x{e.shape[0]} and actual {a.shape[1]}x{a.shape[0]} differ in size")
    keep = np.ones(e.shape, bool)
    for x0, y0, x1, y1 in masks:
        keep[y0:y1, x0:x1] = False
    e, a = _detail(e, blur), _detail(a, blur)
    a *= max(float(e[keep].std()), 1.0) / max(float(a[keep].std()), 1.0)  # exposure
    h, w = e.shape
    ty, tx = -(-h // tile), -(-w // tile)

    def tiles(d: np.ndarray) -> np.ndarray:
        padded = np.zeros((ty * tile, tx * tile), np.float32)
        padded[:h, :w] = np.where(keep, d, 0)
        return padded.reshape(ty, tile, tx, tile).mean(axis=(1, 3))

    # each tile at its best offset within `slack` pixels: registration error is not a difference
    shifts = [(dy, dx) for dy in range(-slack, slack + 1) for dx in range(-slack, slack + 1)]
    per_tile = np.min([tiles(np.abs(e - np.roll(a, s, axis=(0, 1)))) for s in shifts], axis=0)
    d = np.abs(e - a)
    d[~keep] = 0
    failing = [(x * tile, y * tile, min(w, (x + 1) * tile), min(h, (y + 1) * tile))
               for y, x in zip(*np.nonzero(per_tile > threshold))]
    worst = float(per_tile.max())
    heat = cv2.applyColorMap(np.clip(d * 3, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    for x0, y0, x1, y1 in failing:
        cv2.rectangle(heat, (x0, y0), (x1 - 1, y1 - 1), (0, 0, 255), 2)
    for x0, y0, x1, y1 in masks:
        cv2.rectangle(heat, (x0, y0), (x1 - 1, y1 - 1), (128, 128, 128), 1)
    strip = np.hstack([_bgr(expected), actual, heat])
    return Comparison(not failing, worst, failing, strip)


def cross_check(framebuffer: Image.Image, screen, masks=(), **kw) -> Comparison:
    """Does the panel show what KeyOS drew? The framebuffer (screenshot) against the camera's
    rectified view of the same moment."""
    return compare(framebuffer, screen.image, list(masks), **kw)
