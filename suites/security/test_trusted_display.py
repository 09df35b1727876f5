"""The trusted display (keyos.md §2.3): system prompts come only from gui-server's Alerts role; no pixel
tells one from an app's look-alike, so a prompt counts as the system's by what the broker does when it is
answered, and a look-alike drawn under a real prompt cannot take the user's answer (docs/probe.md §5); no
prompt shows over the lock screen; a locked production unit refuses screenshot and input over the debug link."""

from __future__ import annotations

import pytest

from hil import probe as P
from hil.link.client import DeviceLocked
from hil.link.state import is_locked, show_lock_screen, wait_unlocked
from hil.stimuli.touch import enter_pin
from hil.vision.pin_screen import wait_pin_screen
from security_helpers import (PROMPT_BUTTONS, PROMPT_GONE_S, PROMPT_TITLE, answer_prompt, assert_no_prompt_for,
                              manifest_for, wait_prompt_gone)

pytestmark = [pytest.mark.security, pytest.mark.trusted_display]
LOCKED_WATCH_S = 3.0  # how long the lock screen is watched for a prompt that should stay queued


def test_permission_prompt_is_a_system_prompt(probe, probe_id, templates, screen):
    run = probe.run(manifest_for(probe_id(), "Prompted", {"os/security": ["GetAppSeed"]}, templates),
                    [P.send("os/security", "GetAppSeed", wait=True, timeout_s=60)])
    # the step parked until the prompt showed, and the broker answered it when 'Not Now' was pressed
    assert answer_prompt(screen, "Not Now", run=run, step=0)["result"] == "AccessDenied"


def test_app_look_alike_is_told_apart(probe, probe_id, templates, screen):
    """An app paints a harmless-looking look-alike on its own surface ('Not Now' where the real prompt has
    'Always Allow'), then asks for its app seed.  The real prompt must come up over it, and its 'Not Now', as
    the display shows it, must deny: the broker answers only its own prompt.  Were the app's surface stacked
    over the modal (which takes the touches), the display would go on showing the look-alike."""
    swapped = [PROMPT_BUTTONS[1], PROMPT_BUTTONS[0], *PROMPT_BUTTONS[2:]]
    run = probe.run(manifest_for(probe_id(), "Spoof", {"os/security": ["GetAppSeed"]}, templates),
                    [P.draw_prompt(PROMPT_TITLE, "Spoof wants to access Haptics and LED", swapped),
                     P.send("os/security", "GetAppSeed", wait=True, timeout_s=60)])
    assert run.step(0)["result"] == "Ok"  # the look-alike is on the app's surface
    answer = answer_prompt(screen, "Not Now", body="Spoof wants to access App-scoped seed", run=run, step=1)
    assert answer["result"] == "AccessDenied", f"'Not Now' on the prompt the display showed answered {answer}"


def test_prompt_leaves_with_its_request(probe, probe_id, templates, screen):
    """A prompt lives as long as the send it asks about: once its app is closed the kernel withdraws the
    request and the prompt leaves the screen (an answer to it could only mislead the user)."""
    run = probe.run(manifest_for(probe_id(), "Withdrawn", {"os/security": ["GetAppSeed"]}, templates),
                    [P.send("os/security", "GetAppSeed", wait=True, timeout_s=60)])
    screen.wait_for(PROMPT_TITLE)
    probe.close(run)
    wait_prompt_gone(screen, PROMPT_GONE_S, " after its app was closed")


def test_prompt_leaves_when_its_send_gives_up(probe, probe_id, templates, screen):
    """A send that stops waiting (its timeout ran out: ``Timeout``) takes its request back, and the broker is told
    (permission_requests.rs: a withdrawn request's prompt is dismissed), so its prompt leaves the screen: an answer
    to it could only mislead the user."""
    run = probe.run(manifest_for(probe_id(), "Impatient", {"os/security": ["GetAppSeed"]}, templates),
                    [P.send("os/security", "GetAppSeed", wait=True, timeout_s=20), P.await_locked(timeout_s=120)])
    screen.wait_for(PROMPT_TITLE)
    gave_up = run.step(0, timeout=60)
    assert gave_up["result"] == "Timeout", f"the unanswered send (control) answered {gave_up}"
    try:
        wait_prompt_gone(screen, PROMPT_GONE_S, " after its send gave up")
    finally:
        probe.close(run)


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
    enter_pin(touch, wait_pin_screen(look, touch), pin)  # the keys where the lock screen shows them
    assert wait_unlocked(prime), "the test PIN typed on the lock screen did not unlock"
    # queued while locked, shown after unlock
    assert answer_prompt(screen, "Not Now", run=run, step=0)["result"] == "AccessDenied"


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
