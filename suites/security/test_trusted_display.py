"""The trusted display (keyos.md §2.3): system prompts come only from gui-server's Alerts role and are
told apart from an app's look-alike by the marker gui-server draws in its status band, where no app
surface reaches (docs/probe.md §5); no prompt shows over the lock screen; a locked production unit
refuses screenshot and input over the debug link."""

from __future__ import annotations

import pytest

from hil import probe as P
from hil.link.client import DeviceLocked
from hil.link.state import is_locked, show_lock_screen
from hil.stimuli.touch import enter_pin
from security_helpers import (PROMPT_TITLE, SYSTEM_MARKER, answer_prompt, assert_no_prompt, manifest_for,
                              normal)

pytestmark = [pytest.mark.security, pytest.mark.trusted_display]


def test_permission_prompt_is_a_system_prompt(probe, probe_id, templates, screen):
    run = probe.run(manifest_for(probe_id(), "Prompted", {"os/security": ["GetAppSeed"]}, templates),
                    [P.send("os/security", "GetAppSeed", wait=True, timeout_s=60)])
    answer_prompt(screen, "Not Now", run=run, step=0)  # checks the marker in the status band first
    assert run.step(0, timeout=60)["result"] == "AccessDenied"


def test_app_look_alike_is_told_apart(probe, probe_id, templates, screen):
    """An app paints the prompt's very words on its surface: the display shows them, but not the marker."""
    run = probe.run(manifest_for(probe_id(), "Spoof", {}, templates),
                    [P.draw_prompt(PROMPT_TITLE, "Bitcoin Wallet wants to access App-scoped seed",
                                   ["Always Allow", "Not Now", "Never Allow"])])
    assert run.finish()[0]["result"] == "Ok"
    shown = screen.wait_for(PROMPT_TITLE)  # positive evidence the look-alike is on screen
    assert normal(SYSTEM_MARKER) not in normal(shown.text("status")), \
        "an app surface shows gui-server's system-prompt marker: its look-alike cannot be told apart"


def test_no_prompt_over_the_lock_screen(probe, probe_id, templates, screen, unlocked_prime, touch, station, pin):
    prime = unlocked_prime
    run = probe.run(manifest_for(probe_id(), "Queued", {"os/security": ["GetAppSeed"]}, templates),
                    [P.send("os/security", "GetAppSeed", wait=True, timeout_s=90)])
    show_lock_screen(prime, touch)  # lock, wake to the lock screen (a production unit: by robot and relay)
    assert is_locked(prime)
    assert_no_prompt(screen)  # the lock screen was read, and no prompt is over it
    enter_pin(touch, station.profile.touch.pin_pad, pin)
    assert not is_locked(prime)
    answer_prompt(screen, "Not Now", run=run, step=0)  # queued while locked, shown after unlock
    assert run.step(0, timeout=60)["result"] == "AccessDenied"


@pytest.mark.production_only
def test_locked_production_unit_refuses_screenshot_and_input(prime):
    if not is_locked(prime):
        prime.press_power()  # a short press locks
    assert is_locked(prime)
    app = "0x" + "5e" * 16
    for name, command in [("SCREENSHOT", prime.screenshot), ("SWIPE", lambda: prime.tap(240, 400)),
                          ("INPUT_TEXT", lambda: prime.type_text("1")), ("POWER_BTN", lambda: prime.press_power()),
                          ("CLOSE_APP", lambda: prime.close_app(1)), ("LAUNCH_APP", lambda: prime.launch_app(app)),
                          ("LOAD_APP", lambda: prime.sideload(app, {"manifest.json": b"{}"}))]:
        with pytest.raises(DeviceLocked, match=name.split("_")[0]):
            command()
