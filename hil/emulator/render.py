"""Drawing the emulated Prime's 480x800 panel with Pillow and a real TrueType font.

Every screen shares one fixed layout (title region on top, body, buttons at the bottom) and
dark-on-light text in large sizes, so that a camera + OCR reads it the way it reads a real unit.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hil.link.protocol import HEIGHT, WIDTH

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"

BACKGROUND = (245, 245, 240, 255)
INK = (0, 0, 0, 255)
PANEL = (255, 255, 255, 255)
MUTED = (215, 215, 210, 255)
BLACK = (0, 0, 0, 255)

# KeyOS's two system themes, by their colours: paper and ink as the 1.0.0 bootloader's splash screens
# draw them (blassets/light.png: text (35, 31, 32) on (247, 247, 247); dark.png: white on (18, 18, 18)).
# Screens are drawn in the light design above; a theme maps each channel's level onto the theme's
# paper-to-ink ramp. Which theme a unit shows is its user's setting (os/settings GetSystemTheme); the emulator
# chooses it by seed, so a farm shows both.
THEMES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {  # name -> (paper, ink)
    "light": ((247, 247, 247), (35, 31, 32)),
    "dark": ((18, 18, 18), (255, 255, 255)),
}


def theme_for(seed: int) -> str:
    """The system theme of the emulated unit with this seed: odd seeds dark, even light."""
    return "dark" if seed % 2 else "light"


TITLE_BOX = (0, 0, WIDTH, 100)
BUTTON_BAR = (0, 700, WIDTH, HEIGHT)


@functools.lru_cache(maxsize=32)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONT_BOLD if bold else FONT, size)


def blank(color=BACKGROUND) -> Image.Image:
    return Image.new("RGBA", (WIDTH, HEIGHT), color)


class Canvas:
    """One frame being drawn; the helpers place text in the shared layout."""

    def __init__(self, image: Image.Image):
        self.image = image
        self.draw = ImageDraw.Draw(image)
        self.kept: list[tuple[int, int, int, int]] = []  # pasted images that a theme leaves alone (QR codes)

    def paste(self, image: Image.Image, xy: tuple[int, int]) -> None:
        """An image shown as it is in every theme (a QR code stays dark on light)."""
        self.image.paste(image, xy)
        self.kept.append((xy[0], xy[1], xy[0] + image.width, xy[1] + image.height))

    def themed(self, theme: str) -> Image.Image:
        """The frame in `theme` (see THEMES); kept images untouched."""
        paper, ink = THEMES[theme]
        level = np.asarray(self.image.convert("RGB"), np.float32) / 255.0  # per channel: tints survive
        out = (np.float32(ink) + level * (np.float32(paper) - np.float32(ink))).round().astype(np.uint8)
        rgba = np.dstack([out, np.full(level.shape[:2], 255, np.uint8)])
        for x0, y0, x1, y1 in self.kept:
            rgba[y0:y1, x0:x1] = np.asarray(self.image)[y0:y1, x0:x1]
        return Image.fromarray(rgba, "RGBA")

    def text(self, box, text: str, size: int = 32, bold: bool = False, fill=INK) -> None:
        """Text centred in ``box`` (x0, y0, x1, y1)."""
        x0, y0, x1, y1 = box
        self.draw.text(((x0 + x1) / 2, (y0 + y1) / 2), text, font=font(size, bold), fill=fill, anchor="mm")

    def left(self, x: int, y: int, text: str, size: int = 30, bold: bool = False, fill=INK) -> None:
        """Text starting at x, vertically centred on y."""
        self.draw.text((x, y), text, font=font(size, bold), fill=fill, anchor="lm")

    def title(self, text: str) -> None:
        self.draw.rectangle(TITLE_BOX, fill=PANEL)
        self.draw.line((0, TITLE_BOX[3], WIDTH, TITLE_BOX[3]), fill=INK, width=2)
        self.text(TITLE_BOX, text, size=40, bold=True)

    def button(self, box, label: str, size: int = 32, filled: bool = False) -> None:
        x0, y0, x1, y1 = box
        self.draw.rounded_rectangle((x0 + 6, y0 + 6, x1 - 6, y1 - 6), radius=14,
                                    fill=INK if filled else PANEL, outline=INK, width=3)
        self.text(box, label, size=size, bold=True, fill=PANEL if filled else INK)

    def wrapped(self, box, text: str, size: int = 30, bold: bool = False) -> None:
        """Word-wrapped lines centred in ``box``."""
        x0, y0, x1, y1 = box
        f = font(size, bold)
        lines: list[str] = []
        for paragraph in text.split("\n"):
            line = ""
            for word in paragraph.split():
                trial = f"{line} {word}".strip()
                if line and f.getlength(trial) > (x1 - x0) - 20:
                    lines.append(line)
                    line = word
                else:
                    line = trial
            lines.append(line)
        step = int(size * 1.3)
        top = (y0 + y1) / 2 - step * len(lines) / 2
        for i, line in enumerate(lines):
            self.text((x0, top + i * step, x1, top + (i + 1) * step), line, size=size, bold=bold)
