"""The Control Center (long power press): status and the shutdown slider."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hil.emulator import render
from hil.emulator.ui import Screen

if TYPE_CHECKING:
    from hil.emulator.prime import Prime

SLIDER = (20, 680, render.WIDTH - 20, 760)
SLIDE_FROM_X, SLIDE_TO_X = 120, 360  # a swipe must start left of the first and end right of the second


class ControlCenterScreen(Screen):
    title = "Control Center"

    def __init__(self, prime: Prime):
        self.prime = prime

    def draw(self, canvas: render.Canvas) -> None:
        canvas.title(self.title)
        canvas.left(30, 160, "Battery 100%", size=30)
        canvas.left(30, 210, "USB connected", size=30)
        canvas.draw.rounded_rectangle(SLIDER, radius=40, fill=render.PANEL, outline=render.INK, width=3)
        canvas.draw.ellipse((SLIDER[0] + 6, SLIDER[1] + 6, SLIDER[0] + 74, SLIDER[3] - 6), fill=render.INK)
        canvas.text((SLIDER[0] + 80, SLIDER[1], SLIDER[2], SLIDER[3]), "Slide to shut down", size=28, bold=True)

    def tap(self, x: int, y: int) -> None:
        self.prime.ui.close_control_center()

    def swipe(self, sx: int, sy: int, ex: int, ey: int) -> None:
        on_slider = SLIDER[1] <= sy <= SLIDER[3] and SLIDER[1] <= ey <= SLIDER[3]
        if on_slider and sx <= SLIDE_FROM_X and ex >= SLIDE_TO_X:
            self.prime.shut_down()
        else:
            self.prime.ui.close_control_center()
