"""The App Launcher (``gui-app-launcher``): one row per installed app, tap a row to launch it.

Seeds 0 and 1 list the apps in install order from ``LAUNCHER_ROW_TOP``; every other seed orders them
by a seed-chosen key and starts the rows lower, so only a harness that finds a row by its label taps it.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from hil.emulator import render
from hil.emulator.ui import CLASSIC_SEEDS, LAUNCHER_ROW_HEIGHT, LAUNCHER_ROW_TOP, LAUNCHER_ROWS, Screen

if TYPE_CHECKING:
    from hil.emulator.keyos import App
    from hil.emulator.prime import Prime

ROW_SHIFTS = (30, 60)  # how much lower other seeds start the rows (7 rows still end above the panel's edge)


class LauncherScreen(Screen):
    title = "Apps"

    def __init__(self, prime: Prime):
        self.prime = prime
        classic = prime.seed in CLASSIC_SEEDS
        self.top = LAUNCHER_ROW_TOP + (0 if classic else ROW_SHIFTS[prime.seed % len(ROW_SHIFTS)])
        # a key per app, so an app keeps its place whatever else is installed
        self._order = None if classic else (lambda app: random.Random(f"{prime.seed}:{app.app_id.hex()}").random())

    def apps(self) -> list[App]:
        shown = [a for a in self.prime.keyos.apps.values() if a.in_launcher]
        return (sorted(shown, key=self._order) if self._order else shown)[:LAUNCHER_ROWS]

    def draw(self, canvas: render.Canvas) -> None:
        canvas.title(self.title)
        for i, app in enumerate(self.apps()):
            top = self.top + i * LAUNCHER_ROW_HEIGHT
            canvas.button((10, top, render.WIDTH - 10, top + LAUNCHER_ROW_HEIGHT), app.name, size=30)

    def tap(self, x: int, y: int) -> None:
        row = (y - self.top) // LAUNCHER_ROW_HEIGHT
        apps = self.apps()
        if y >= self.top and 0 <= row < len(apps):
            self.prime.launch_app(apps[row].app_id)
