"""Smoke: the Prime answers on its debug link, shows its lock screen, unlocks with the PIN by taps,
launches its apps, and a production build keeps a locked device closed.  Runs against any Prime."""

import re
import time

import pytest

from hil.link.client import DeviceError, DeviceLocked
from hil.link.protocol import HEIGHT, WIDTH, LaunchStatus
from hil.link.state import is_locked, running_processes, show_lock_screen, wait_unlocked
from hil.machine import scaled
from hil.lab.pin_guard import screenshot_bgr
from hil.stimuli.touch import DebugTouch, enter_pin
from hil.vision.controls import wait_control
from hil.vision.pin_screen import wait_pin_screen

# "Bitcoin Wallet", a built-in app of KeyOS 1.0.0 (KeyOS-Releases 1.0.0/apps/*/manifest.json)
BITCOIN_APP = "0x426974636f696e2057616c6c65740000"
BITCOIN_NAME, BITCOIN_PROCESS = "Bitcoin Wallet", "gui-app-bitcoin"  # its manifest's name and ELF
LAUNCH_S = 5.0  # a tapped launcher row has started its app within this
NO_SUCH_APP = "0x" + "ee" * 16


def test_version(prime):
    assert re.fullmatch(r"\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?", prime.version())


@pytest.mark.development_only
def test_screenshot_is_480x800_and_shows_the_lock_screen(prime, station):
    show_lock_screen(prime)
    shot = prime.screenshot()
    assert shot.size == (WIDTH, HEIGHT)
    assert is_locked(prime)
    pad = wait_pin_screen(lambda: screenshot_bgr(prime), DebugTouch(prime, prime.home_button))
    assert pad.remaining == 10, f"the lock screen shows {pad.failed} failed PIN attempts"


def test_unlock_with_the_pin_by_taps(prime, touch, look, pin):
    """By the debug link or, where the build refuses it while locked, the stylus robot and relay; the
    keys are tapped where the screen shows them."""
    show_lock_screen(prime, touch)
    assert is_locked(prime)
    enter_pin(touch, wait_pin_screen(look, touch), pin)
    assert wait_unlocked(prime), "the test PIN typed on the lock screen did not unlock"


def test_launch_a_builtin_app(unlocked_prime):
    result = unlocked_prime.launch_app(BITCOIN_APP)
    assert result.status in (LaunchStatus.LAUNCHED, LaunchStatus.ALREADY_RUNNING)
    assert result.pid > 0
    # the kernel's compact list ('t'): STATE PID PPID NAME ...
    assert re.search(rf"^\w+ {result.pid} \d+ gui-app-bitcoin\b", unlocked_prime.process_list(), re.MULTILINE), \
        f"PID {result.pid} (gui-app-bitcoin) missing from the process list"
    unlocked_prime.close_app(result.pid)


def test_launch_a_builtin_app_from_its_launcher_row(unlocked_prime, touch, look):
    """The launcher lists the app under its name (assumed: gui-app-launcher labels apps with their manifest
    name; its screens are not in the public index); a tap where the screen shows that row starts it."""
    for row in unlocked_prime.process_list().splitlines():  # not running yet, so the tap is what starts it
        if row.split()[3:4] == [BITCOIN_PROCESS]:
            unlocked_prime.close_app(int(row.split()[1]))
    touch.home()
    touch.tap(*wait_control(look, BITCOIN_NAME))
    deadline = time.monotonic() + scaled(LAUNCH_S)
    while BITCOIN_PROCESS not in running_processes(unlocked_prime):
        assert time.monotonic() < deadline, f"tapping the {BITCOIN_NAME!r} row started no {BITCOIN_PROCESS} process"
        unlocked_prime.wait_log(0.1)
    touch.home()


def test_unknown_app_id_gives_app_id_not_found(unlocked_prime):
    result = unlocked_prime.launch_app(NO_SUCH_APP)
    assert result.status is LaunchStatus.APP_ID_NOT_FOUND


@pytest.mark.production_only
def test_locked_production_device_answers_locked(prime):
    if not is_locked(prime):
        prime.press_power()  # lock it
    assert is_locked(prime)
    with pytest.raises(DeviceLocked):
        prime.screenshot()
    with pytest.raises(DeviceLocked):
        prime.tap(*prime.home_button)  # any point: the build must refuse the input itself
    with pytest.raises(DeviceLocked):
        prime.type_text("1")
    with pytest.raises(DeviceLocked):
        prime.launch_app(BITCOIN_APP)
    with pytest.raises(DeviceError):
        prime.kernel_cmd("p")  # not in production at all
    assert prime.version()  # and the link itself stays up
