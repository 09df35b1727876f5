"""What the security suites share: probe manifests, and reading the display to see prompts."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import coincurve
import numpy as np
import pytest

from hil.errors import InfrastructureError
from hil.flash import cosign2, emulated
from hil.flash.manifest import Manifest, loads
from hil.link.client import DeviceLocked, PrimeClient
from hil.machine import scaled

PROMPT_TITLE = "Allow Access?"
PROMPT_GONE_S = 10.0  # deadline for a withdrawn or dismissed prompt to leave the screen (it goes at once)
PROMPT_BUTTONS = ("Always Allow", "Not Now", "Never Allow")
REGIONS = {"title": (0, 30, 480, 100), "body": (0, 100, 480, 700),
           "buttons": (0, 700, 480, 800)}
SETTINGS_APP = "0xc192b79230473875f159d4423d74d00f"  # built into every KeyOS release (1.0.0 apps/)
BITCOIN_APP = "0x426974636f696e2057616c6c65740000"  # built into every KeyOS release (1.0.0 apps/)
BUILTIN_SETTINGS = "gui-app-settings"  # its process name in the kernel's process list


def manifest_for(app_id: str, name: str, permissions: dict[str, list[str]], templates: dict,
                 template: tuple[str, ...] = ("gui-app",), **extra) -> Manifest:
    """A current-form probe manifest, written the way a developer would (templates expanded). It declares the
    oldest KeyOS it runs on: newer app-managers skip a sideloaded bundle without one (``os/app-manager/src/
    registry.rs`` ``load_app``: "manifest does not declare minKeyosVersion"); older ones ignore the key."""
    doc = {"manifestVersion": "0", "appId": app_id, "appName": {"en": name}, "minKeyosVersion": "1.0.0",
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

    def __init__(self, station, prime: PrimeClient, camera=None):
        """``camera``: the station's, already open (the session's `station_camera`); without it the reader
        opens the station's own and closes it with itself."""
        from hil.vision.readings import Readings

        self.prime = prime
        self.readings = Readings()  # attached to the check's Allure result as steps (hil.plugin)
        self._display = None
        self._owned = None
        if camera is None and station.camera:
            camera = self._owned = station.open_camera()
        if camera is not None:
            self._display = station.display(camera, regions=REGIONS)

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()

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
        deadline = time.monotonic() + scaled(timeout)
        seen = ""
        while time.monotonic() < deadline:
            screen = self.read([region] if region else None)
            lines = screen.lines_in(region) if region else screen.lines
            seen = " | ".join(line.text for line in lines)
            if normal(text) in normal(seen.replace(" | ", "")):
                return screen  # else read again at once: a read waits for a new camera frame or screenshot
        raise PromptNotSeen(f"{text!r} not read on the display within {waited(timeout)}; it shows: {seen!r}")

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


def title_shown(title: str, text: str) -> bool:
    """Whether the text read shows ``title`` (case, spacing and look-alikes folded). A read a character or so off
    it is no evidence either way: `PromptNotSeen` (absence is passed only on a read that is clearly not it)."""
    from hil.vision.match import TextKind, find, near

    if find(title, [text], TextKind.PROSE) is not None:
        return True
    if (off := near(title, [text])) is not None:
        raise PromptNotSeen(f"{title!r} read only as {off.text!r}: cannot tell whether it is up")
    return False


def prompt_shown(text: str) -> bool:
    """Whether the text read shows the permission prompt (`title_shown`). Its buttons read without its title is
    no evidence either way: the title may be there unread (glare, a stylus), so `PromptNotSeen`."""
    from hil.vision.match import TextKind, find

    if title_shown(PROMPT_TITLE, text):
        return True
    if (buttons := [b for b in PROMPT_BUTTONS if find(b, [text], TextKind.PROSE) is not None]):
        raise PromptNotSeen(f"the prompt's {buttons} read but not its title {PROMPT_TITLE!r}: cannot tell whether it "
                            f"is up (read: {text!r})")
    return False


def answer_prompt(screen: ScreenReader, button: str, *, run, step: int, body: str | None = None,
                  timeout: float = 15.0) -> dict:
    """Wait for the permission prompt of ``run``'s parked ``step`` (with ``body``, if given), press ``button``,
    and return the step's record.

    No pixel tells gui-server's prompt from an app's look-alike (docs/probe.md §5), so the evidence that what
    was answered is the broker's prompt is the broker's own: the step stays parked until the prompt shows
    (answered before: decided without asking, failed) and is answered once ``button`` is pressed.  A prompt
    that leaves the screen while the step stays parked was not the broker's (failed); one still up after the
    tap was not reached (broken)."""
    deadline = time.monotonic() + scaled(timeout)
    other = ""  # the last prompt read with another body (an app's look-alike, say)
    while True:
        run.pump(0.05)
        if step in run.records:
            raise AssertionError(f"step {step} was answered {run.records[step]['result']!r} without a prompt")
        shown = screen.read()
        text = " ".join(line.text for line in shown.lines)
        if normal(PROMPT_TITLE) in normal(text):
            if body is None or normal(body) in normal(text):
                break
            other = text
        if time.monotonic() > deadline:
            if other:
                raise AssertionError(f"within {waited(timeout)} the only prompts read had a body other than {body!r}; "
                                     f"last read: {other!r}")
            raise PromptNotSeen(f"{PROMPT_TITLE!r} not read on the display within {waited(timeout)}; it shows: {text!r}")
    for label in PROMPT_BUTTONS:
        assert normal(label) in normal(text), f"prompt lacks the {label!r} button; read: {text!r}"
    screen.tap_text(button, shown)
    deadline = time.monotonic() + scaled(timeout)
    while step not in run.records:
        if time.monotonic() > deadline:
            after = screen.text()
            if not after.strip() or prompt_shown(after):
                raise PromptNotSeen(f"{button!r} tapped, step {step} still parked after {waited(timeout)} and the "
                                    f"prompt not seen to leave (it shows: {after!r}): the tap did not reach it")
            raise AssertionError(f"{button!r} tapped and the prompt left the screen, but step {step} is still "
                                 f"parked: what was answered was not the broker's prompt (it shows: {after!r})")
        run.pump(0.05)
    return run.records[step]


def waited(timeout: float) -> str:
    """A wait's length for its message: the deadlines scale with the machine's load (``scaled``)."""
    here = scaled(timeout)
    return f"{timeout:g} s" if here == timeout else f"{here:.0f} s ({timeout:g} s on an idle machine)"


def outside_the_prompt(profile) -> tuple[int, int]:
    """A point above the prompt's popup (the panel's bottom ``display.modal_height``) and below the Control
    Center strip (40 px, api/gui-server/src/consts.rs CONTROL_CENTER_HEIGHT_COLLAPSED_PX), whatever the
    popup shows."""
    return profile.display.width // 2, (profile.display.height - profile.display.modal_height) // 2


def result_without_prompt(screen: ScreenReader, run, step: int, timeout: float = 20.0) -> dict:
    """The step's record, which must arrive with no prompt shown (a stored decision, or not grantable)."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        run.pump(0.05)
        if step in run.records:
            return run.records[step]
        assert_no_prompt(screen, f" while step {step} was pending")
        if time.monotonic() > deadline:
            raise PromptNotSeen(f"step {step} neither answered nor prompted within {waited(timeout)}")


def assert_no_prompt(screen: ScreenReader, when: str = "") -> None:
    """Positive evidence that no prompt is up: the screen was read, and it has no prompt title.
    ``when`` (" while ...") says in the message what was going on."""
    shown = screen.read()
    text = " ".join(line.text for line in shown.lines)
    if not text.strip():
        raise PromptNotSeen(f"nothing read on the display{when}: cannot tell whether a prompt is up")
    assert not prompt_shown(text), f"a permission prompt is on screen{when}: {text!r}"


def assert_no_prompt_for(screen: ScreenReader, seconds: float, when: str = "", wake_timeout: float = 5.0) -> None:
    """``assert_no_prompt`` on every read for ``seconds``: one early read could precede the prompt.  The
    watch starts at the first read that shows anything (a display just woken may still be dark, or the
    camera a frame behind); from then on, a read that shows nothing is broken."""
    wait_readable(screen, wake_timeout)
    deadline = time.monotonic() + scaled(seconds)  # the device reacts as slowly as the machine runs
    while True:
        assert_no_prompt(screen, when)
        if time.monotonic() > deadline:
            return
        time.sleep(0.2)  # the watch is a span of time; its reads need not come back to back


def wait_prompt_gone(screen: ScreenReader, timeout: float, when: str = "") -> None:
    """Until a read shows the display without a prompt: failed if the prompt is still read at the deadline,
    broken if the display reads as nothing (no evidence either way)."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        text = screen.text()
        try:
            if text.strip() and not prompt_shown(text):
                return
        except PromptNotSeen:
            if time.monotonic() > deadline:
                raise
            continue
        if time.monotonic() > deadline:
            if not text.strip():
                raise PromptNotSeen(f"nothing read on the display{when}: cannot tell whether the prompt left")
            raise AssertionError(f"the permission prompt is still on screen{when}, {waited(timeout)} on: {text!r}")


def wait_readable(screen: ScreenReader, timeout: float) -> None:
    """Until the display shows some text; broken if it never does."""
    deadline = time.monotonic() + scaled(timeout)
    while not screen.text().strip():
        if time.monotonic() > deadline:
            raise PromptNotSeen(f"nothing read on the display within {waited(timeout)}")


def trusted_lab_signers(request, keys: cosign2.KeySet | None = None) -> list[coincurve.PrivateKey]:
    """The signing keys the lab holds (``--firmware-signers``) that the units trust (``keys``; by default the
    station profile's ``firmware_keys`` or ``--firmware-keys``); skipped when the lab holds fewer than two, as for
    units signed by Foundation, whose keys no lab has."""
    opt = request.config.getoption
    if keys is None:
        keys = emulated.keyset(opt("--firmware-keys") or request.getfixturevalue("station").profile.firmware_keys)
    held = cosign2.load_keyset(Path(opt("--firmware-signers")))
    trusted = [s.private_key() for s in held.signers if s.secret is not None and s.pubkey in keys.pubkeys]
    if len(trusted) < 2:
        pytest.skip(f"the lab holds no two signing keys of key set {keys.name} (--firmware-signers)")
    return trusted
