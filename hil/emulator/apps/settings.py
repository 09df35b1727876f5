"""Settings (``gui-app-settings``): the Developer Mode toggle and About (KeyOS version, serial).

Seeds 0 and 1 put the Developer Mode row first; other seeds put About first and the row below it,
so only a harness that finds the row by its label taps it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hil.emulator import render
from hil.emulator.ui import CLASSIC_SEEDS, Screen

if TYPE_CHECKING:
    from hil.emulator.keyos import App
    from hil.emulator.prime import Prime

DEVELOPER_MODE_ROW = (10, 110, render.WIDTH - 10, 190)  # seeds 0 and 1
ABOUT_HEIGHT = 200


class SettingsScreen(Screen):
    title = "Settings"

    def __init__(self, prime: Prime, app: App):
        self.prime = prime
        about_first = prime.seed not in CLASSIC_SEEDS
        x0, y0, x1, y1 = DEVELOPER_MODE_ROW
        self.row = (x0, y0 + ABOUT_HEIGHT, x1, y1 + ABOUT_HEIGHT) if about_first else DEVELOPER_MODE_ROW
        self.about_top = 110 if about_first else 230

    def draw(self, canvas: render.Canvas) -> None:
        canvas.title(self.title)
        x0, y0, x1, y1 = self.row
        canvas.draw.rounded_rectangle(self.row, radius=14, fill=render.PANEL, outline=render.INK, width=3)
        canvas.left(x0 + 20, (y0 + y1) // 2, "Developer Mode", size=30, bold=True)
        on = self.prime.developer_mode
        canvas.button((x1 - 130, y0 + 5, x1 - 10, y1 - 5), "On" if on else "Off", size=28, filled=on)
        top = self.about_top
        canvas.left(30, top + 30, "About", size=30, bold=True)
        canvas.left(30, top + 80, f"KeyOS {self.prime.build.version}", size=28)
        canvas.left(30, top + 125, f"Serial {self.prime.serial}", size=28)
        canvas.left(30, top + 170, f"Build {self.prime.build.flavour}", size=28)

    def tap(self, x: int, y: int) -> None:
        x0, y0, x1, y1 = self.row
        if x0 <= x <= x1 and y0 <= y <= y1:
            self.prime.set_developer_mode(not self.prime.developer_mode)
