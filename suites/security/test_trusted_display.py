"""The trusted display (keyos.md §2.3): system prompts come only from gui-server's Alerts role and are
told apart from an app's look-alike by the marker gui-server draws in its status band, where no app
surface reaches (docs/probe.md §5); no prompt shows over the lock screen; a locked production unit
refuses screenshot and input over the debug link."""

from __future__ import annotations

import pytest

from hil import probe as P
from hil.link.client import DeviceLocked
from hil.link.state import is_locked, show_lock_screen, wait_unlocked
from hil.stimuli.touch import enter_pin
from hil.vision.pin_screen import wait_pin_screen
from security_helpers import PROMPT_TITLE, answer_prompt, assert_no_marker, assert_no_prompt_for, manifest_for

pytestmark = [pytest.mark.security, pytest.mark.trusted_display]
LOCKED_WATCH_S = 3.0  # how long the lock screen is watched for a prompt that should stay queued


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
    assert_no_marker(shown)  # and that its status band was seen without gui-server's marker


def test_no_prompt_over_the_lock_screen(probe, probe_id, templates, screen, unlocked_prime, touch, look, pin):
    prime = unlocked_prime
    run = probe.run(manifest_for(probe_id(), "Queued", {"os/security": ["GetAppSeed"]}, templates),
                    [P.send("os/security", "GetAppSeed", wait=True, timeout_s=90)])
    screen.wait_for(PROMPT_TITLE)  # positive evidence the request is parked with its prompt pending
    run.pump(0.05)
    assert 0 not in run.records, f"step 0 answered while its prompt was up: {run.records[0]}"
    show_lock_screen(prime, touch)  # lock, wake to the lock screen (a production unit: by robot and relay)
    assert is_locked(prime)
    assert_no_prompt_for(screen, LOCKED_WATCH_S, " over the lock screen")  # read, again and again: no prompt
    enter_pin(touch, wait_pin_screen(look), pin)  # the keys where the lock screen shows them
    assert wait_unlocked(prime), "the test PIN typed on the lock screen did not unlock"
    answer_prompt(screen, "Not Now", run=run, step=0)  # queued while locked, shown after unlock
    assert run.step(0, timeout=60)["result"] == "AccessDenied"


@pytest.mark.production_only
def test_locked_production_unit_refuses_screenshot_and_input(prime):
    if not is_locked(prime):
        prime.press_power()  # a short press locks
    assert is_locked(prime)
    app = "0x" + "5e" * 16
    for name, command in [("SCREENSHOT", prime.screenshot), ("SWIPE", lambda: prime.tap(*prime.home_button)),
                          ("INPUT_TEXT", lambda: prime.type_text("1")), ("POWER_BTN", lambda: prime.press_power()),
                          ("CLOSE_APP", lambda: prime.close_app(1)), ("LAUNCH_APP", lambda: prime.launch_app(app)),
                          ("LOAD_APP", lambda: prime.sideload(app, {"manifest.json": b"{}"}))]:
        with pytest.raises(DeviceLocked, match=name.split("_")[0]):
            command()
