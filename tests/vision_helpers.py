"""Screens drawn with Pillow and a camera that films them through the emulator's optics, for the
vision tests that do not need a running emulator."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hil.emulator.camera import Optics, Scene

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONT_BOLD if bold else FONT, size)


def _screen(title: str, dark: bool = False) -> tuple[Image.Image, ImageDraw.ImageDraw, str]:
    bg, ink = ("black", "white") if dark else ((245, 245, 240), "black")
    im = Image.new("RGBA", (480, 800), bg)
    d = ImageDraw.Draw(im)
    d.text((240, 50), title, font=_font(40, True), fill=ink, anchor="mm")
    d.line((0, 100, 480, 100), fill=ink, width=2)
    return im, d, ink


def pin_pad(words: tuple[str, str] | None = None) -> Image.Image:
    im, d, ink = _screen("Enter PIN")
    d.text((240, 140), " ".join(words) if words else "Security words", font=_font(36 if words else 28, bool(words)),
           fill=ink, anchor="mm")
    for i, key in enumerate("123456789<0✓"):
        cx, cy = 80 + 160 * (i % 3), 410 + 100 * (i // 3)
        d.rounded_rectangle((cx - 74, cy - 44, cx + 74, cy + 44), 14, outline=ink, width=3)
        d.text((cx, cy), "OK" if key == "✓" else key, font=_font(40, True), fill=ink, anchor="mm")
    return im


def permission_prompt(app: str = "Bitcoin Wallet", group: str = "App-scoped seed") -> Image.Image:
    im, d, ink = _screen("Bitcoin Wallet")
    d.rectangle((0, 102, 480, 370), fill=(215, 215, 210))
    d.rounded_rectangle((0, 370, 480, 820), 24, fill="white", outline=ink, width=3)
    d.text((240, 410), "Allow Access?", font=_font(36, True), fill=ink, anchor="mm")
    d.text((240, 470), f"{app} wants to access", font=_font(28), fill=ink, anchor="mm")
    d.text((240, 510), group, font=_font(28), fill=ink, anchor="mm")
    for i, label in enumerate(("Always Allow", "Not Now", "Never Allow")):
        top = 590 + 70 * i
        d.rounded_rectangle((6, top + 6, 474, top + 64), 14, fill=ink if i == 0 else "white", outline=ink, width=3)
        d.text((240, top + 35), label, font=_font(30, True), fill="white" if i == 0 else ink, anchor="mm")
    return im


def send_screen(amount: str = "0.01250000 BTC",
                address: str = "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh", dark: bool = False) -> Image.Image:
    im, d, ink = _screen("Send", dark)
    d.text((240, 160), amount, font=_font(34, True), fill=ink, anchor="mm")
    for i in range(0, len(address), 14):
        d.text((240, 240 + 40 * (i // 14)), address[i:i + 14], font=_font(30), fill=ink, anchor="mm")
    return im


class FilmedScreen:
    """A camera (``grab(timeout)``) filming whatever `screen` is set to, through `Scene` optics, with
    the emulator camera's JPEG path; `fault` as in the emulator."""

    def __init__(self, screen: Image.Image, optics: str | Optics = "default", seed: int = 1):
        self.scene = Scene(Optics.preset(optics) if isinstance(optics, str) else optics, seed)
        self.fault: str | None = None
        self.frames = 0
        self._key = 0
        self.show(screen)

    def show(self, screen: Image.Image) -> None:
        self._rgb = np.asarray(screen.convert("RGB"))
        self._key += 1  # the scene re-renders the lens view only when this changes

    def grab(self, timeout: float = 5.0) -> np.ndarray:
        self.frames += 1
        jpeg = self.scene.jpeg(self._rgb, self.frames, self._key, self.fault)
        return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
