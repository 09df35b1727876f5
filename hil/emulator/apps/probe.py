"""The probe app's screen (docs/probe.md): its own surface, where ``draw_prompt`` paints a look-alike."""

from __future__ import annotations

from hil.emulator import render
from hil.emulator.apps.generic import AppScreen
from hil.emulator.ui import STATUS_BAND, SYSTEM_PROMPT_MARKER


class ProbeScreen(AppScreen):
    """The probe's own app surface; ``draw_prompt`` paints a look-alike of a system prompt on it."""

    look_alike: tuple[str, str, list[str]] | None = None

    def draw(self, canvas: render.Canvas) -> None:
        if self.look_alike is None:
            super().draw(canvas)
            return
        title, body, buttons = self.look_alike
        canvas.text(STATUS_BAND, SYSTEM_PROMPT_MARKER, size=20, bold=True)  # the spoof gui-server must paint over
        top = render.HEIGHT - 70 * len(buttons) - 220
        canvas.draw.rounded_rectangle((0, top, render.WIDTH, render.HEIGHT + 20), radius=24,
                                      fill=render.PANEL, outline=render.INK, width=3)
        canvas.text((0, top + 10, render.WIDTH, top + 70), title, size=36, bold=True)
        canvas.wrapped((10, top + 75, render.WIDTH - 10, top + 215), body, size=28)
        for i, label in enumerate(buttons):
            y0 = render.HEIGHT - 70 * (len(buttons) - i)
            canvas.button((0, y0, render.WIDTH, y0 + 70), label, size=30, filled=i == 0)
