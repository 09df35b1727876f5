"""The App Launcher (``gui-app-launcher``): one row per installed app, tap a row to launch it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hil.emulator import render
from hil.emulator.ui import LAUNCHER_ROW_HEIGHT, LAUNCHER_ROW_TOP, LAUNCHER_ROWS, Screen

if TYPE_CHECKING:
    from hil.emulator.keyos import App
    from hil.emulator.prime import Prime


class LauncherScreen(Screen):
    title = "Apps"

    def __init__(self, prime: Prime):
        self.prime = prime

    def apps(self) -> list[App]:
        return [a for a in self.prime.keyos.apps.values() if a.in_launcher][:LAUNCHER_ROWS]

    def draw(self, canvas: render.Canvas) -> None:
        canvas.title(self.title)
        for i, app in enumerate(self.apps()):
            top = LAUNCHER_ROW_TOP + i * LAUNCHER_ROW_HEIGHT
            canvas.button((10, top, render.WIDTH - 10, top + LAUNCHER_ROW_HEIGHT), app.name, size=30)

    def tap(self, x: int, y: int) -> None:
        row = (y - LAUNCHER_ROW_TOP) // LAUNCHER_ROW_HEIGHT
        apps = self.apps()
        if y >= LAUNCHER_ROW_TOP and 0 <= row < len(apps):
            self.prime.launch_app(apps[row].app_id)
