"""The probe app's screen (docs/probe.md): its own surface, where ``draw_prompt`` paints a look-alike."""

from __future__ import annotations

from hil.emulator import render
from hil.emulator.apps.generic import AppScreen
from hil.emulator.ui import Modal, draw_alert


class ProbeScreen(AppScreen):
    """The probe's own app surface; ``draw_prompt`` paints a look-alike of a system prompt on it, just where the
    Alerts app draws one (an app can: its surface is the whole panel, docs/probe.md §5)."""

    look_alike: tuple[str, str, list[str]] | None = None

    def draw(self, canvas: render.Canvas) -> None:
        super().draw(canvas)
        if self.look_alike is not None:
            title, body, buttons = self.look_alike
            draw_alert(canvas, Modal(title, body, buttons, lambda answer: None))
