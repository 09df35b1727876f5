"""What the security suites share: probe manifests, and reading the display to see prompts."""

from __future__ import annotations

import copy
import json
import time

import numpy as np

from hil.errors import InfrastructureError
from hil.flash.manifest import Manifest, loads
from hil.link.client import DeviceLocked, PrimeClient

PROMPT_TITLE = "Allow Access?"
PROMPT_BUTTONS = ("Always Allow", "Not Now", "Never Allow")
SYSTEM_MARKER = "KeyOS SYSTEM PROMPT"  # docs/probe.md §5: drawn by gui-server in the status band
REGIONS = {"status": (0, 0, 480, 30), "title": (0, 30, 480, 100), "body": (0, 100, 480, 700),
           "buttons": (0, 700, 480, 800)}
BLANK_BAND_STD = 6.0  # grey-level spread of a status band with nothing drawn in it (camera noise: ~2)
BAND_INSET = 4  # pixels left out at the band's edges, where a rectified camera view catches the bezel
SETTINGS_APP = "0xc192b79230473875f159d4423d74d00f"  # built into every KeyOS release (1.0.0 apps/)
BUILTIN_SETTINGS = "gui-app-settings"  # its process name in the kernel's process list


def manifest_for(app_id: str, name: str, permissions: dict[str, list[str]], templates: dict,
                 template: tuple[str, ...] = ("gui-app",), **extra) -> Manifest:
    """A current-form probe manifest, written the way a developer would (templates expanded)."""
    doc = {"manifestVersion": "0", "appId": app_id, "appName": {"en": name},
           "permissions": {"template": list(template), **permissions}, **extra}
    return loads(json.dumps(doc), f"<probe {name}>/manifest.json", templates)


def twin(manifest: Manifest, app_id: str) -> Manifest:
    """The probe holding exactly what ``manifest`` declares, under the probe's own app id."""
    out = copy.deepcopy(manifest)
    out.app_id = app_id
    out.servers = {}  # a twin exposes no servers: it must not collide with the app it mirrors
    out.file_hashes = {}
    return out


# ------------------------------------------------------------------------------------------ display


class ScreenNotReadable(InfrastructureError):
    """Neither a camera nor a screenshot can show the display: no verdict, broken."""


class ScreenReader:
    """What the panel shows, read by the station's camera when it has one, else by a screenshot."""

    def __init__(self, station, prime: PrimeClient):
        from hil.vision.readings import Readings

        self.prime = prime
        self.readings = Readings()  # attached to the check's Allure result as steps (hil.plugin)
        self._display = None
        if station.camera:
            from hil.vision.camera import Camera
            from hil.vision.display import Display

            self._camera = Camera(station.camera)
            self._display = Display(self._camera, regions=REGIONS)

    def close(self) -> None:
        if self._display is not None:
            self._camera.close()

    def read(self, regions: list[str] | None = None):
        from hil.vision.display import read_image

        if self._display is not None:
            return self.readings.add(self._display.read(regions, fresh=False))
        try:
            shot = np.asarray(self.prime.screenshot().convert("RGB"))[:, :, ::-1].copy()
        except DeviceLocked as e:  # a locked production unit: only a camera can see its screen
            raise ScreenNotReadable(f"{e}; this station has no camera to read the display instead") from None
        return self.readings.add(read_image(shot, REGIONS, only=regions))

    def text(self, region: str | None = None) -> str:
        screen = self.read([region] if region else None)
        return " ".join(line.text for line in screen.lines_in(region)) if region else \
            " ".join(line.text for line in screen.lines)

    def wait_for(self, text: str, timeout: float = 10.0, region: str | None = None) -> object:
        """The screen once ``text`` is read on it; broken (not failed) if it never is."""
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            screen = self.read([region] if region else None)
            lines = screen.lines_in(region) if region else screen.lines
            seen = " | ".join(line.text for line in lines)
            if normal(text) in normal(seen.replace(" | ", "")):
                return screen  # else read again at once: a read waits for a new camera frame or screenshot
        raise PromptNotSeen(f"{text!r} not read on the display within {timeout:g} s; it shows: {seen!r}")

    def tap_text(self, label: str, screen=None) -> None:
        """Tap the centre of the text line ``label`` (a prompt button)."""
        screen = screen or self.read()
        for line in screen.lines:
            if normal(line.text) == normal(label):
                x0, y0, x1, y1 = line.box
                self.prime.tap((x0 + x1) // 2, (y0 + y1) // 2)
                return
        raise PromptNotSeen(f"button {label!r} not found; read: {[line.text for line in screen.lines]}")


class PromptNotSeen(InfrastructureError):
    """The expected text was not read on the display: no verdict (unreadable, or not there yet)."""


def normal(text: str) -> str:
    """Compare text as OCR reads it: case, spacing and line breaks do not count."""
    return "".join(text.lower().replace("…", "...").split())


def answer_prompt(screen: ScreenReader, button: str, body: str | None = None, timeout: float = 15.0,
                  run=None, step: int | None = None) -> None:
    """Wait for the system permission prompt, check it is the real one, and press ``button``.

    With a probe ``run`` and its parked ``step``: that step answering before any prompt shows is a
    device failure (it decided without asking), not a display problem."""
    deadline = time.monotonic() + timeout
    while True:
        if run is not None:
            run.pump(0.05)
            if step in run.records:
                raise AssertionError(f"step {step} was answered {run.records[step]['result']!r} without a prompt")
        shown = screen.read()
        text = " ".join(line.text for line in shown.lines)
        if normal(PROMPT_TITLE) in normal(text):
            break
        if time.monotonic() > deadline:
            raise PromptNotSeen(f"{PROMPT_TITLE!r} not read on the display within {timeout:g} s; it shows: {text!r}")
    for label in PROMPT_BUTTONS:
        assert normal(label) in normal(text), f"prompt lacks the {label!r} button; read: {text!r}"
    if body is not None:
        assert normal(body) in normal(text), f"prompt body is not {body!r}; read: {text!r}"
    status = shown.text("status")
    assert normal(SYSTEM_MARKER) in normal(status), \
        f"a prompt without gui-server's marker in the status band (read {status!r}): not a system prompt"
    screen.tap_text(button, shown)


def result_without_prompt(screen: ScreenReader, run, step: int, timeout: float = 20.0) -> dict:
    """The step's record, which must arrive with no prompt shown (a stored decision, or not grantable)."""
    deadline = time.monotonic() + timeout
    while True:
        run.pump(0.05)
        if step in run.records:
            return run.records[step]
        assert_no_prompt(screen, f" while step {step} was pending")
        if time.monotonic() > deadline:
            raise PromptNotSeen(f"step {step} neither answered nor prompted within {timeout:g} s")


def assert_no_prompt(screen: ScreenReader, when: str = "") -> None:
    """Positive evidence that no prompt is up: the screen was read, and it has neither title nor marker.
    ``when`` (" while ...") says in the message what was going on."""
    shown = screen.read()
    text = " ".join(line.text for line in shown.lines)
    if not text.strip():
        raise PromptNotSeen(f"nothing read on the display{when}: cannot tell whether a prompt is up")
    assert normal(PROMPT_TITLE) not in normal(text) and normal(SYSTEM_MARKER) not in normal(text), \
        f"a permission prompt is on screen{when}: {text!r}"


def assert_no_prompt_for(screen: ScreenReader, seconds: float, when: str = "", wake_timeout: float = 5.0) -> None:
    """``assert_no_prompt`` on every read for ``seconds``: one early read could precede the prompt.  The
    watch starts at the first read that shows anything (a display just woken may still be dark, or the
    camera a frame behind); from then on, a read that shows nothing is broken."""
    wait_readable(screen, wake_timeout)
    deadline = time.monotonic() + seconds
    while True:
        assert_no_prompt(screen, when)
        if time.monotonic() > deadline:
            return
        time.sleep(0.2)  # the watch is a span of time; its reads need not come back to back


def wait_readable(screen: ScreenReader, timeout: float) -> None:
    """Until the display shows some text; broken if it never does."""
    deadline = time.monotonic() + timeout
    while not screen.text().strip():
        if time.monotonic() > deadline:
            raise PromptNotSeen(f"nothing read on the display within {timeout:g} s")


def assert_no_marker(shown) -> None:
    """Positive evidence that gui-server's marker is not in the status band of ``shown`` (a screen read):
    the band reads as text that is not the marker, or its pixels are blank (nothing drawn there).  A band
    with ink on it but no text read is unreadable: broken."""
    if not shown.lines:
        raise PromptNotSeen("nothing read on the display: cannot tell whether the marker is in the status band")
    status = shown.text("status")
    assert normal(SYSTEM_MARKER) not in normal(status), \
        f"gui-server's system-prompt marker is in the status band (read {status!r})"
    if status.strip():
        return
    x0, y0, x1, y1 = (c + d for c, d in zip(shown.regions["status"], (BAND_INSET, BAND_INSET, -BAND_INSET, -BAND_INSET)))
    band = np.asarray(shown.image[y0:y1, x0:x1], dtype=np.float32).mean(axis=2)
    if band.std() > BLANK_BAND_STD:
        raise PromptNotSeen(f"the status band shows something (pixel spread {band.std():.1f}) but no text was read "
                            "there: cannot tell whether the marker is in it")


def deny_lines_reach_the_lab(station, record_property) -> bool:
    """Whether the kernel's deny lines come over the debug link on this profile (``kernel_log``); where
    they go only to the serial console, the check says it relies on the AccessDenied results alone."""
    if station.profile.kernel_log == "debug-link":
        return True
    record_property("relies_on", f"AccessDenied results only: profile {station.profile.name} sends the kernel's "
                                 "deny lines to its serial console, not the debug link")
    return False
