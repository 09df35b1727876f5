"""QR symbols rendered for a camera: segno (never Micro QR, which OpenCV and most phones cannot
read), integer module scale, centred on a white square with the four-module quiet zone."""

from __future__ import annotations

import io

import segno
from PIL import Image

FRAME_SIZE = 480
"""The Prime's camera crops its OVM7690 frames to 480x480 (keyos.md §4); frames match that."""


def symbol(data: str | bytes, error: str = "m") -> segno.QRCode:
    """The QR code for `data`. UR strings go upper-case so they fit QR's dense alphanumeric mode;
    digit strings (Standard SeedQR) use numeric mode and bytes byte mode, as segno picks."""
    if isinstance(data, str) and data[:3].lower() == "ur:":
        data = data.upper()
    return segno.make(data, error=error, micro=False)


def render(data: str | bytes, size: int = FRAME_SIZE, error: str = "m") -> Image.Image:
    """A `size`×`size` greyscale frame with the symbol as large as whole modules allow."""
    qr = symbol(data, error)
    modules = qr.symbol_size(border=4)[0]
    scale = size // modules
    if scale < 1:
        raise ValueError(f"a version-{qr.version} QR ({modules} modules) does not fit {size} px; "
                         "use a smaller UR fragment or a larger frame")
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=scale, border=4)
    img = Image.open(buf).convert("L")
    frame = Image.new("L", (size, size), 255)
    frame.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return frame
