"""An app without its own emulated UI: shows its name and what was typed into it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hil.emulator import render
from hil.emulator.ui import Screen

if TYPE_CHECKING:
    from hil.emulator.keyos import App
    from hil.emulator.prime import Prime


class AppScreen(Screen):
    def __init__(self, prime: Prime, app: App):
        self.prime = prime
        self.app = app
        self.title = app.name
        self.typed = ""

    def draw(self, canvas: render.Canvas) -> None:
        canvas.title(self.title)
        canvas.text((0, 200, render.WIDTH, 260), self.app.name, size=34, bold=True)
        canvas.text((0, 300, render.WIDTH, 350), "Text:", size=28)
        canvas.wrapped((20, 350, render.WIDTH - 20, 600), self.typed or "-", size=30)

    def key(self, char: str) -> None:
        self.typed = self.typed[:-1] if char == "\b" else self.typed + char
