"""What the emulated Prime shows and where a touch lands: screens, the screen stack, modals.

Roles follow KeyOS's ``AppKind``: the LockScreen covers everything while locked, the Launcher sits at
the bottom of the stack, apps are pushed above it, the ControlCenter overlays on a long power press,
and the Alerts role draws system prompts as slide-up popups that never appear over the lock screen.

Tap coordinates (panel pixels, origin top-left) for seeds 0 and 1 (``CLASSIC_SEEDS``); every other seed
lays its screens out differently, so a harness that taps a remembered point fails its own tests: the PIN
pad (``apps/lockscreen.pad_layout``), the launcher's rows (``apps/launcher``), the Settings rows
(``apps/settings``) and the modal's buttons (``modal_layout``)::

    lock screen PIN pad       1 (80,410)  2 (240,410)  3 (400,410)
                              4 (80,510)  5 (240,510)  6 (400,510)
                              7 (80,610)  8 (240,610)  9 (400,610)
                        backspace (80,710)  0 (240,710)  enter (400,710)
    launcher row i (0-based)  (240, 150 + 80*i), up to 7 rows
    settings Developer Mode   (240, 150)  (the toggle row)
    control center slider     swipe (60,720) -> (420,720): shut down; any other tap closes it
    modal button i of n       (240, 800 - 70*(n-i) + 35), full width; a press above y 200 cancels the modal
    virtual home button       (100, 910)  (below the panel: x 0-200, y 850-971)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from PIL import Image, ImageDraw

from hil.emulator import render

if TYPE_CHECKING:
    from hil.emulator.prime import Prime

PIN_KEYS: dict[str, tuple[int, int]] = {
    "1": (80, 410), "2": (240, 410), "3": (400, 410),
    "4": (80, 510), "5": (240, 510), "6": (400, 510),
    "7": (80, 610), "8": (240, 610), "9": (400, 610),
    "back": (80, 710), "0": (240, 710), "enter": (400, 710),
}
CLASSIC_SEEDS = (0, 1)  # the layout in the table above
PIN_KEY_SIZE = (160, 100)
HOME_BUTTON = (0, 850, 200, 971)  # x0, y0, x1, y1 inclusive, below the 800-px panel
LAUNCHER_ROW_TOP, LAUNCHER_ROW_HEIGHT, LAUNCHER_ROWS = 110, 80, 7
MODAL_BUTTON_HEIGHT = 70
MODAL_LIFTS = (40, 80)  # how far other seeds raise a modal's buttons off the panel's bottom edge
# The collapsed Control Center strip, which gui-server composites above every app surface and above a modal's
# dark overlay (os/gui-server/src/layers.rs ``update_layers``). KeyOS makes it 40 px tall
# (api/gui-server/src/consts.rs CONTROL_CENTER_HEIGHT_COLLAPSED_PX); assumed: 30 px here, so the emulator's title
# row keeps its place. It looks the same whether or not a prompt is up: it marks nothing (docs/probe.md §5).
STATUS_BAND = (0, 0, render.WIDTH, 29)
# A SlideUpFixedPopup modal ends MODAL_HEIGHT tall at the bottom of the panel (os/gui-server/src/modal.rs
# ``final_height``, api/gui-server/src/consts.rs MODAL_HEIGHT = 600); behind it a full-panel black layer darkens
# the background app's surface, at alpha 255 - 24 once the modal is up (modal.rs BACKGROUND_DARKEN_ALPHA_MAX).
# A press above the popup cancels it (``modal_process_touch``: not within the modal's area => Collapsing); the
# request it carried is answered as canceled, which a permission prompt takes as a denial, recording nothing
# (os/gui-server/src/permissions.rs ``PendingPermissionPrompt``: ``AlertResult::Canceled`` and its ``Drop``).
MODAL_HEIGHT = 600
MODAL_DARKEN_ALPHA = 255 - 24


def in_home_button(x: int, y: int) -> bool:
    x0, y0, x1, y1 = HOME_BUTTON
    return x0 <= x <= x1 and y0 <= y <= y1


class Screen:
    """One full-panel view. Subclasses draw themselves and react to taps, swipes and keys."""

    title = ""

    def draw(self, canvas: render.Canvas) -> None:
        canvas.title(self.title)

    def tap(self, x: int, y: int) -> None:
        """A touch pressed and released at one point."""

    def swipe(self, sx: int, sy: int, ex: int, ey: int) -> None:
        """A touch dragged from one point to another; by default the press point counts as a tap."""
        self.tap(sx, sy)

    def key(self, char: str) -> None:
        """A ``Key::Char`` press from the keyboard (or INPUT_TEXT)."""


@dataclass
class Modal:
    """A system prompt. ``on_answer`` gets the chosen button label, or None if dropped unanswered."""

    title: str
    body: str
    buttons: list[str]
    on_answer: Callable[[str | None], None]
    lift: int = 0  # the buttons' rise off the bottom edge, and
    reverse: bool = False  # whether they stack in reverse order (other seeds' layouts: `modal_layout`)
    answered: bool = field(default=False, init=False)
    over_lock: bool = field(default=False, init=False)  # only a seeded defect sets it

    def button_box(self, i: int) -> tuple[int, int, int, int]:
        n = len(self.buttons)
        slot = n - 1 - i if self.reverse else i
        top = render.HEIGHT - MODAL_BUTTON_HEIGHT * (n - slot) - self._lift()
        return (0, top, render.WIDTH, top + MODAL_BUTTON_HEIGHT)

    def top(self) -> int:
        return render.HEIGHT - MODAL_BUTTON_HEIGHT * len(self.buttons) - 220 - self._lift()

    def _lift(self) -> int:
        """``lift``, as far as the title stays inside the popup."""
        room = MODAL_HEIGHT - MODAL_BUTTON_HEIGHT * len(self.buttons) - 220 - 10
        return max(0, min(self.lift, room))


def modal_layout(seed: int) -> dict:
    """Where the unit with ``seed`` puts a modal's buttons (`Modal`'s ``lift`` and ``reverse``)."""
    if seed in CLASSIC_SEEDS:
        return {}
    return {"lift": MODAL_LIFTS[seed % 2], "reverse": seed // 2 % 2 == 1}


class UI:
    """The compositor's view of state: which screen is in front, what overlays it, what is queued."""

    def __init__(self, prime: Prime, launcher: Screen, lock_screen: Screen, control_center: Screen):
        self.prime = prime
        self.launcher = launcher
        self.lock_screen = lock_screen
        self.control_center = control_center
        self.onboarding: Screen | None = None  # shown instead of the lock screen while no PIN is set
        self.stack: list[tuple[int, Screen]] = []  # (pid, app screen), last is in front
        self.control_center_open = False
        self.modal: Modal | None = None
        self.queue: list[Modal] = []

    # ------------------------------------------------------------ what is in front
    def front(self) -> Screen:
        if self.onboarding is not None and self.prime.onboarding:
            return self.onboarding
        if self.prime.is_locked():
            return self.lock_screen
        return self.stack[-1][1] if self.stack else self.launcher

    def push_app(self, pid: int, screen: Screen) -> None:
        self.stack = [(p, s) for p, s in self.stack if p != pid] + [(pid, screen)]
        self.changed()

    def remove_app(self, pid: int) -> None:
        self.stack = [(p, s) for p, s in self.stack if p != pid]
        self.changed()

    def go_home(self) -> None:
        """The virtual home button: back to the launcher; the apps keep running."""
        self.control_center_open = False
        self._drop_modal()
        self.stack.clear()
        self.refresh_modals()

    def open_control_center(self) -> None:
        self.control_center_open = True
        self.changed()

    def close_control_center(self) -> None:
        self.control_center_open = False
        self.changed()

    # ------------------------------------------------------------ modals (the Alerts role)
    def show_modal(self, title: str, body: str, buttons: list[str],
                   on_answer: Callable[[str | None], None]) -> Modal:
        """Ask the user; never over the lock screen (queued until unlock)."""
        if not buttons:
            raise ValueError("a modal needs at least one button")
        modal = Modal(title, body, list(buttons), on_answer, **modal_layout(self.prime.seed))
        self.queue.append(modal)
        self.refresh_modals()
        return modal

    def dismiss(self, modal: Modal) -> None:
        """Drop a prompt unanswered (its requester went away)."""
        if modal in self.queue:
            self.queue.remove(modal)
            self._answer(modal, None)
        elif modal is self.modal:
            self._drop_modal()
        self.refresh_modals()

    def refresh_modals(self) -> None:
        """Put the next queued prompt in front when the device is unlocked and nothing else shows."""
        if self._modals_hidden() and self.modal is not None:
            self.queue.insert(0, self.modal)  # hidden by the lock, asked again after unlock
            self.modal = None
        if self.modal is None and self.queue and not self._modals_hidden():
            self.modal = self.queue.pop(0)
        self.changed()

    def _modals_hidden(self) -> bool:
        """Prompts wait behind the lock screen (gui-server ``show_next_permission_prompt``)."""
        head = self.modal or (self.queue[0] if self.queue else None)
        if head is not None and head.over_lock:
            return False
        return self.prime.is_locked() and not self.prime.keyos.defects.has("modal-over-lockscreen")

    def drop_all_modals(self) -> None:
        """Power loss or reboot: every pending prompt is answered None."""
        self._drop_modal()
        while self.queue:
            self._answer(self.queue.pop(0), None)

    def _drop_modal(self) -> None:
        if self.modal is not None:
            modal, self.modal = self.modal, None
            self._answer(modal, None)

    def _answer(self, modal: Modal, answer: str | None) -> None:
        if not modal.answered:
            modal.answered = True
            self.prime.log(f"INFO:gui_server::alerts: modal '{modal.title}' answered {answer!r}")
            modal.on_answer(answer)

    # ------------------------------------------------------------ input routing
    def tap(self, x: int, y: int) -> None:
        if self.control_center_open:
            self.control_center.tap(x, y)
        elif self.modal is not None and not self._modals_hidden():
            self._modal_tap(x, y)
        else:
            self.front().tap(x, y)
        self.changed()

    def swipe(self, sx: int, sy: int, ex: int, ey: int) -> None:
        if self.control_center_open:
            self.control_center.swipe(sx, sy, ex, ey)
        elif self.modal is not None and not self._modals_hidden() and not self.prime.keyos.defects.has("modal-ignores-drags"):
            self._modal_tap(sx, sy)
        else:
            self.front().swipe(sx, sy, ex, ey)
        self.changed()

    def key(self, char: str) -> None:
        if self.modal is None or self._modals_hidden():
            self.front().key(char)
            self.changed()

    def _modal_tap(self, x: int, y: int) -> None:
        modal = self.modal
        top_row = y == ALERT_BOX[1] and self.prime.keyos.defects.has("modal-top-row-cancels")
        if y < ALERT_BOX[1] or top_row:  # a press above the popup collapses it, unanswered (modal.rs modal_process_touch)
            self._drop_modal()
            self.refresh_modals()
            return
        for i, label in enumerate(modal.buttons):
            x0, y0, x1, y1 = modal.button_box(i)
            if x0 <= x < x1 and y0 <= y < y1:
                self.modal = None
                self._answer(modal, label)
                self.refresh_modals()
                return

    # ------------------------------------------------------------ drawing
    def changed(self) -> None:
        self.prime.invalidate()

    def render(self) -> Image.Image:
        theme = render.theme_for(self.prime.seed)
        canvas = render.Canvas(render.blank())
        if self.control_center_open:
            self.control_center.draw(canvas)
        else:
            self.front().draw(canvas)
        canvas.draw.rectangle(STATUS_BAND, fill=render.PANEL)
        frame = canvas.themed(theme)
        if self.modal is None or self._modals_hidden() or self.control_center_open:
            return frame
        if self.prime.keyos.defects.has("app-surface-over-modal"):
            return frame  # the app's surface is stacked over the modal, which still takes the touches
        # layers.rs, GuiState::Modal: the background window, the dark overlay, the modal window, then the
        # Control Center strip on top. gui-server draws all of it, yet an app could draw the same pixels.
        x0, y0, x1, y1 = STATUS_BAND
        strip = frame.crop((x0, y0, x1, y1 + 1))
        frame = Image.blend(frame, Image.new("RGBA", frame.size, render.BLACK), MODAL_DARKEN_ALPHA / 255)
        popup = render.Canvas(render.blank())
        draw_alert(popup, self.modal)
        shape = Image.new("L", frame.size, 0)
        ImageDraw.Draw(shape).rounded_rectangle(ALERT_BOX, radius=24, fill=255)
        frame.paste(popup.themed(theme), (0, 0), shape)
        frame.paste(strip, (x0, y0))
        return frame


ALERT_BOX = (0, render.HEIGHT - MODAL_HEIGHT, render.WIDTH, render.HEIGHT + 20)  # rounded corners on top only


def draw_alert(canvas: render.Canvas, modal: Modal) -> None:
    """The Alerts app's window, as the emulator draws it: title, body and buttons of ``modal``. Any app can
    draw the same (an app holding ShowModal can even have the Alerts app itself draw it: docs/probe.md §5)."""
    top = modal.top()
    canvas.draw.rounded_rectangle(ALERT_BOX, radius=24, fill=render.PANEL, outline=render.INK, width=3)
    canvas.text((0, top + 10, render.WIDTH, top + 70), modal.title, size=36, bold=True)
    canvas.wrapped((10, top + 75, render.WIDTH - 10, top + 215), modal.body, size=28)
    for i, label in enumerate(modal.buttons):
        canvas.button(modal.button_box(i), label, size=30, filled=i == 0)
