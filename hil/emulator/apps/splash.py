"""The boot splash the bootloader shows while KeyOS starts."""

from hil.emulator import render
from hil.emulator.ui import Screen


class BootSplash(Screen):
    def draw(self, canvas: render.Canvas) -> None:
        canvas.draw.rectangle((0, 0, render.WIDTH, render.HEIGHT), fill=render.BLACK)
        canvas.text((0, 300, render.WIDTH, 380), "Passport Prime", size=46, bold=True, fill=render.PANEL)
        canvas.text((0, 400, render.WIDTH, 460), "KeyOS", size=40, fill=render.PANEL)
