"""Fixtures of the security suites: the probe app, the lab's publisher identity, the capability matrix,
and reading the display (the station's camera where it has one, else a screenshot) to see prompts."""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from hil import probe as probe_mod
from hil.errors import InfrastructureError
from hil.flash.manifest import CapabilityMatrix, Manifest, load_capability_matrix, load_templates, loads
from hil.link.client import PrimeClient

PROMPT_TITLE = "Allow Access?"
PROMPT_BUTTONS = ("Always Allow", "Not Now", "Never Allow")
SYSTEM_MARKER = "KeyOS SYSTEM PROMPT"  # docs/probe.md §5: drawn by gui-server in the status band
REGIONS = {"status": (0, 0, 480, 30), "title": (0, 30, 480, 100), "body": (0, 100, 480, 700),
           "buttons": (0, 700, 480, 800)}
SETTINGS_APP = "0xc192b79230473875f159d4423d74d00f"  # built into every KeyOS release (1.0.0 apps/)


@pytest.fixture(scope="session")
def matrix(request) -> CapabilityMatrix:
    return load_capability_matrix(request.config.getoption("--capability-matrix"))


@pytest.fixture(scope="session")
def templates(request) -> dict:
    return load_templates(request.config.getoption("--permission-templates"))


@pytest.fixture(scope="session")
def nonce() -> str:
    """Per session: probe app ids never repeat across sessions, so old grants cannot leak in."""
    return os.urandom(6).hex()


@pytest.fixture
def probe_id(nonce, request) -> Callable[[str], str]:
    return lambda label="": probe_mod.probe_app_id(f"{request.node.nodeid}:{label}:{nonce}")


@pytest.fixture(scope="session")
def publisher(device_under_test) -> probe_mod.Publisher:
    return probe_mod.Publisher.create(device_under_test.client.system_time())


@pytest.fixture(scope="session")
def _installed_publishers() -> set[str]:
    return set()


@pytest.fixture
def probe(unlocked_prime: PrimeClient, publisher, _installed_publishers, request) -> probe_mod.Probe:
    """The probe app on the unlocked device, signed by the lab's publisher (installed once)."""
    if publisher.fingerprint not in _installed_publishers:
        unlocked_prime.install_certificate(publisher.fingerprint, publisher.pem)
        _installed_publishers.add(publisher.fingerprint)
    elf = Path(request.config.getoption("--probe-elf")).read_bytes()
    p = probe_mod.Probe(unlocked_prime, elf, publisher)
    yield p
    p.close_all()  # their prompts go with them
    probe_mod.drain(unlocked_prime)


def manifest_for(app_id: str, name: str, permissions: dict[str, list[str]], templates: dict,
                 template: tuple[str, ...] = ("gui-app",), **extra) -> Manifest:
    """A current-form probe manifest, written the way a developer would (templates expanded)."""
    import json

    doc = {"manifestVersion": "0", "appId": app_id, "appName": {"en": name},
           "permissions": {"template": list(template), **permissions}, **extra}
    return loads(json.dumps(doc), f"<probe {name}>/manifest.json", templates)


def twin(manifest: Manifest, app_id: str) -> Manifest:
    """The probe holding exactly what ``manifest`` declares, under the probe's own app id."""
    out = copy.deepcopy(manifest)
    out.app_id = app_id
    out.servers = {}  # a twin exposes no servers: it must not collide with the app it mirrors
    out.file_hashes = {}
    out.app_signature = "0x00"
    return out


# ------------------------------------------------------------------------------------------ display


class ScreenReader:
    """What the panel shows, read by the station's camera when it has one, else by a screenshot."""

    def __init__(self, station, prime: PrimeClient):
        self.prime = prime
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
            return self._display.read(regions, fresh=False)
        shot = np.asarray(self.prime.screenshot().convert("RGB"))[:, :, ::-1].copy()
        return read_image(shot, REGIONS, only=regions)

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
            if any(normal(text) in normal(line.text) for line in lines):
                return screen
            time.sleep(0.2)
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
    return " ".join(text.lower().replace("…", "...").split())


@pytest.fixture
def screen(station, unlocked_prime) -> ScreenReader:
    reader = ScreenReader(station, unlocked_prime)
    yield reader
    reader.close()


def answer_prompt(screen: ScreenReader, button: str, body: str | None = None, timeout: float = 15.0) -> None:
    """Wait for the system permission prompt, check it is the real one, and press ``button``."""
    shown = screen.wait_for(PROMPT_TITLE, timeout)
    text = " ".join(line.text for line in shown.lines)
    for label in PROMPT_BUTTONS:
        assert normal(label) in normal(text), f"prompt lacks the {label!r} button; read: {text!r}"
    if body is not None:
        assert normal(body) in normal(text), f"prompt body is not {body!r}; read: {text!r}"
    status = shown.text("status")
    assert normal(SYSTEM_MARKER) in normal(status), \
        f"a prompt without gui-server's marker in the status band (read {status!r}): not a system prompt"
    screen.tap_text(button, shown)


def assert_no_prompt(screen: ScreenReader) -> None:
    """Positive evidence that no prompt is up: the screen was read, and it has neither title nor marker."""
    shown = screen.read()
    text = " ".join(line.text for line in shown.lines)
    if not text.strip():
        raise PromptNotSeen("nothing read on the display: cannot tell whether a prompt is up")
    assert normal(PROMPT_TITLE) not in normal(text), f"a permission prompt is on screen: {text!r}"
