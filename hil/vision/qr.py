"""QR codes on the Prime's display, read through the camera with zxing-cpp (the most robust decoder
measured here, and the only one that also reads Micro QR: dependencies.md §3).

Also: an animated BC-UR (the Bitcoin app's signed PSBT) gathered across frames, and the bootloader's
error screens, whose QR codes link to foundation.xyz pages (KeyOS `blassets/*_qr.png`; the bootloader
bakes each QR's URL into its asset metadata).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import zxingcpp

from hil.errors import InfrastructureError
from hil.stimuli.ur import UR, URDecoder

# The bootloader's error QR codes (release 1.0.0 `blassets/`): URL -> error kind.
ERROR_SCREENS = {f"https://foundation.xyz/{kind}": kind for kind in
                 ("custom-fw", "fw-error", "pubkey-error", "rec-error", "sys-error", "tamper-error")}


class QrTimeout(InfrastructureError):
    """No (complete) code was read from the display in the time allowed."""


@dataclass(frozen=True)
class Code:
    text: str
    data: bytes
    corners: tuple[tuple[int, int], ...]  # TL, TR, BR, BL in the image decoded

    def to_json(self) -> dict:
        return {"text": self.text, "corners": [list(c) for c in self.corners]}


def decode(image: np.ndarray) -> list[Code]:
    """Every QR / Micro QR code in an image (grey or BGR)."""
    img = image if image.ndim == 2 else np.ascontiguousarray(image[..., ::-1])  # zxing wants RGB
    found = zxingcpp.read_barcodes(img, formats=(zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.MicroQRCode))
    out = []
    for r in found:
        p = r.position
        out.append(Code(r.text, bytes(r.bytes), tuple((pt.x, pt.y) for pt in
                                                      (p.top_left, p.top_right, p.bottom_right, p.bottom_left))))
    return out


def classify_error(text: str) -> str | None:
    """The bootloader error an error screen's QR names (``tamper-error``…), or None for any other code.
    Exact URLs only: a look-alike link is not a known error screen."""
    return ERROR_SCREENS.get(text.strip())


def read_display(display, timeout: float = 5.0) -> list[Code]:
    """The codes the display shows now: tried on the rectified panel, then on the raw frame."""
    deadline = time.monotonic() + timeout
    while True:
        image, frame, _ = display.rectified()
        codes = decode(image) or decode(frame)
        if codes:
            return codes
        if time.monotonic() >= deadline:
            raise QrTimeout(f"no QR code read from the display in {timeout:.1f} s")


def error_screen(display, timeout: float = 5.0) -> str:
    """Which bootloader error screen is shown; raises QrTimeout if no code is read, ValueError naming
    the code if it is not one of the bootloader's."""
    codes = read_display(display, timeout)
    for c in codes:
        kind = classify_error(c.text)
        if kind is not None:
            return kind
    raise ValueError(f"the QR code(s) shown ({', '.join(repr(c.text[:60]) for c in codes)}) are not bootloader "
                     f"error screens; known: {', '.join(ERROR_SCREENS.values())}")


def collect_ur(grab, timeout: float = 30.0) -> UR:
    """Gather an animated BC-UR from successive frames (`grab()` -> image) until the fountain decoder
    has the whole message. Frames without a code, repeats and lost parts are expected; a part that is
    not UR, or of another UR, raises `URError`."""
    decoder = URDecoder()
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for code in decode(grab()):
            if code.text != last:
                last = code.text
                decoder.receive_part(code.text)
        if decoder.is_complete():
            return decoder.result
    raise QrTimeout(f"animated UR incomplete after {timeout:.1f} s ({decoder.progress:.0%} received)")
