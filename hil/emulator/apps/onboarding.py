"""Onboarding (``gui-app-onboarding``): what a unit with no PIN shows instead of the lock screen.

The emulator models only that it runs (gui-server answers Locked to launches meanwhile, keyos.md §10)
and that it is not the PIN pad; its pages are not in the public source, so its text is the emulator's.
"""

from __future__ import annotations

from hil.emulator import render
from hil.emulator.ui import Screen


class OnboardingScreen(Screen):
    title = "Welcome"

    def draw(self, canvas: render.Canvas) -> None:
        canvas.title(self.title)
        canvas.wrapped((20, 200, render.WIDTH - 20, 500), "Set up your Passport Prime", size=32, bold=True)
