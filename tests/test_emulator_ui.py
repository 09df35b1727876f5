"""The emulated Prime's screens, lock screen, power button and system prompts (in process)."""

from __future__ import annotations

import time

import pytest
from embit import bip39
from embit.wordlists.bip39 import WORDLIST

from hil.emulator.apps.controlcenter import SLIDER
from hil.emulator.apps.lockscreen import LockScreen
from hil.emulator.build import Build
from hil.emulator.keyos import SETTINGS, USER_APPS
from hil.emulator.prime import Prime, provisioned_seed
from hil.provisioning import TEST_MNEMONIC
from hil.emulator.secure_element import MAX_LOGIN_ATTEMPTS, SecureElement
from hil.emulator.ui import LAUNCHER_ROW_HEIGHT, LAUNCHER_ROW_TOP, MODAL_HEIGHT, PIN_KEYS, STATUS_BAND, Modal

HOME = (100, 910)


def make(seed: int = 1, **opts) -> Prime:
    return Prime(index=1, seed=seed, build=Build(flavour="development"), boot_seconds=0, **opts)


def show_pad(prime: Prime) -> None:
    """Swipe up from the lock screen's hint, well past the 80 px threshold: the PIN pad shows."""
    prime.swipe(240, 760, 240, 460)


def enter_pin(prime: Prime, pin: str) -> None:
    show_pad(prime)
    for key in [*pin, "enter"]:
        prime.touch(*PIN_KEYS[key])


def tap_keys(prime: Prime, keys) -> None:
    for key in keys:
        prime.touch(*PIN_KEYS[key])


def is_black(prime: Prime) -> bool:
    return prime.framebuffer().convert("L").getextrema() == (0, 0)


def test_boot_splash_then_lock_screen():
    prime = Prime(boot_seconds=0.2)
    splash = prime.framebuffer().tobytes()
    assert prime.booting and prime.launch_app(SETTINGS.app_id).outcome == "NotReady"
    prime.touch(*PIN_KEYS["1"])  # ignored while booting
    time.sleep(0.25)
    assert not prime.booting and prime.framebuffer().tobytes() != splash
    assert isinstance(prime.ui.front(), LockScreen) and prime.ui.lock_screen.entered == ""


def test_pin_taps_unlock_to_the_launcher():
    prime = make()
    assert prime.is_locked() and isinstance(prime.ui.front(), LockScreen)
    enter_pin(prime, "123456")
    assert not prime.is_locked() and prime.ui.front() is prime.ui.launcher


def test_short_pin_does_not_cost_an_attempt():
    """KeyOS's accept button takes no PIN under 6 digits (app.slint ``accept-button-enabled``): the entry stays."""
    prime = make()
    enter_pin(prime, "12345")
    assert prime.se.attempts_remaining == MAX_LOGIN_ATTEMPTS
    assert prime.ui.lock_screen.entered == "12345"


def test_wrong_pins_count_down_then_wipe():
    prime = make()
    enter_pin(prime, "000000")
    assert prime.se.attempts_remaining == 9 and prime.ui.lock_screen.entered == ""
    resets = []
    prime.on_link_reset(lambda: resets.append(1))
    for _ in range(MAX_LOGIN_ATTEMPTS - 1):
        enter_pin(prime, "000000")
    assert prime.se.wiped and resets  # erased, and the reboot dropped the USB link
    enter_pin(prime, "123456")
    assert prime.is_locked() and not prime.login("123456")
    with pytest.raises(ValueError):
        prime.se.mnemonic()
    assert prime.ui.front().title == "Enter PIN" and prime.se.attempts_remaining == 0


def test_backspace_edits_the_pin():
    prime = make()
    show_pad(prime)
    tap_keys(prime, ["1", "2", "9", "back", "3", "4", "5", "6", "enter"])
    assert not prime.is_locked()


def test_the_lock_screen_shows_the_pad_only_after_a_swipe_up_past_the_threshold():
    """app.slint: the login shows once a swipe moves up more than 80 px; before it, taps and keys reach no PIN
    entry, and every lock hides the login again (main.rs Custom2)."""
    prime = make()
    hint = prime.framebuffer().tobytes()
    tap_keys(prime, [*"123456", "enter"])
    prime.type_text("123456\n")
    assert prime.is_locked() and prime.ui.lock_screen.entered == "" and not prime.ui.lock_screen.show_login
    prime.swipe(240, 760, 240, 680)  # 80 px: not more than the threshold
    prime.swipe(240, 400, 240, 700)  # down
    assert not prime.ui.lock_screen.show_login and prime.framebuffer().tobytes() == hint
    prime.swipe(240, 760, 240, 679)
    assert prime.ui.lock_screen.show_login and prime.framebuffer().tobytes() != hint
    prime.type_text("123456\n")
    assert not prime.is_locked()
    prime.press_power(long=False)
    prime.press_power(long=False)
    assert prime.is_locked() and not prime.ui.lock_screen.show_login and prime.framebuffer().tobytes() == hint


def test_security_words_appear_after_the_prefix_and_are_deterministic():
    prime, same, other = make(seed=1), make(seed=1), make(seed=2)
    show_pad(prime)
    before = prime.framebuffer().tobytes()
    tap_keys(prime, "123")
    three = prime.framebuffer().tobytes()
    prime.touch(*PIN_KEYS["4"])
    assert prime.framebuffer().tobytes() != three
    words = prime.se.security_words("1234")
    assert words == same.se.security_words("1234") != other.se.security_words("1234")
    assert all(w in WORDLIST for w in words) and words != prime.se.security_words("1235")
    assert before != three


def test_security_words_latch_at_the_fourth_digit_until_the_input_is_reset():
    """app.slint ``changed pin``: the words are those of the first 4-digit prefix of an entry; deleting and
    typing another prefix keeps them, and only ``reset_input_state`` (here a wrong PIN's result, or a lock)
    clears them, so the next entry shows its own prefix's."""
    prime = make()
    show_pad(prime)
    tap_keys(prime, "1234")
    first = prime.ui.lock_screen.words
    assert first == prime.se.security_words("1234")
    latched = prime.framebuffer().tobytes()
    tap_keys(prime, ["back"] * 4 + list("5678"))
    assert prime.ui.lock_screen.words == first and prime.framebuffer().tobytes() == latched
    tap_keys(prime, ["5", "6", "enter"])  # 567856: a wrong PIN, judged: the input is reset
    assert prime.ui.lock_screen.words is None and prime.ui.lock_screen.show_login
    tap_keys(prime, "5678")
    assert prime.ui.lock_screen.words == prime.se.security_words("5678") != first
    prime.press_power(long=False)
    prime.press_power(long=False)
    assert prime.ui.lock_screen.words is None


def test_no_security_words_while_the_setting_is_off():
    """KeyOS's default (os/settings/src/sys/mod.rs: ShowSecurityWords false): the prefix shows no words."""
    words_band = (0, 100, 480, 185)  # where the emulator draws the words (or the "Security words" label)
    prime = make(show_security_words=False)
    show_pad(prime)
    tap_keys(prime, "12")
    two = prime.framebuffer().crop(words_band).tobytes()
    tap_keys(prime, "34")
    assert prime.ui.lock_screen.words is None and prime.framebuffer().crop(words_band).tobytes() == two


def test_the_seed_is_the_provisioned_mnemonics():
    twelve, twentyfour = TEST_MNEMONIC, bip39.mnemonic_from_bytes(bytes(range(32)))
    a = SecureElement(5, "EMU-0001", provisioned_seed(twelve))
    assert a.mnemonic() == twelve
    assert SecureElement(5, "EMU-0001", provisioned_seed(twentyfour)).mnemonic() == twentyfour
    for bad in (bip39.mnemonic_from_bytes(bytes(20)), "all " * 11 + "abandon"):  # 15 words; a bad checksum
        with pytest.raises(ValueError):
            provisioned_seed(bad)
    assert a.app_seed(b"\x01" * 16) != a.app_seed(b"\x02" * 16)
    with pytest.raises(ValueError):
        a.set_seed_and_pin("12345")


def test_same_seed_same_screens():
    frames = []
    for _ in range(2):
        prime = make(seed=9)
        enter_pin(prime, "123456")
        prime.touch(240, prime.ui.launcher.top + LAUNCHER_ROW_HEIGHT // 2)  # its first row, where seed 9 puts it
        frames.append(prime.framebuffer().tobytes())
    assert frames[0] == frames[1]


def test_short_power_locks_and_blanks_then_wakes_to_lock_screen():
    prime = make()
    enter_pin(prime, "123456")
    prime.press_power(long=False)
    assert prime.is_locked() and is_black(prime)
    prime.swipe(240, 760, 240, 460)  # only wakes
    assert not is_black(prime) and isinstance(prime.ui.front(), LockScreen) and not prime.ui.lock_screen.show_login
    assert prime.ui.lock_screen.entered == ""
    prime.press_power(long=False)
    prime.press_power(long=False)  # a press wakes too
    assert not is_black(prime) and prime.is_locked()


def test_long_power_opens_control_center_and_slider_shuts_down():
    prime = make()
    enter_pin(prime, "123456")
    prime.press_power(long=True)
    assert prime.ui.control_center_open
    prime.touch(240, 300)  # a tap closes it
    assert not prime.ui.control_center_open
    prime.press_power(long=True)
    y = (SLIDER[1] + SLIDER[3]) // 2
    prime.swipe(60, y, 420, y, 300, 10)
    assert not prime.powered and is_black(prime) and not prime.debug_available()
    prime.press_power(long=True)
    assert prime.powered and prime.is_locked()


def test_launcher_rows_launch_apps_and_home_returns():
    prime = make()
    enter_pin(prime, "123456")
    prime.touch(240, LAUNCHER_ROW_TOP + LAUNCHER_ROW_HEIGHT + 40)  # row 1
    assert prime.ui.front().title == USER_APPS[1].name
    prime.touch(*HOME)
    assert prime.ui.front() is prime.ui.launcher
    assert prime.keyos.running(USER_APPS[1].app_id) is not None  # home does not close the app
    prime.touch(100, 990)  # below the home button area: nothing
    assert prime.ui.front() is prime.ui.launcher


def test_settings_toggle_developer_mode():
    prime = make()
    enter_pin(prime, "123456")
    prime.launch_app(SETTINGS.app_id)
    prime.touch(240, 150)
    assert not prime.developer_mode
    prime.touch(240, 150)
    assert prime.developer_mode


def test_frame_counter_moves_on_redraw():
    prime = make()
    prime.framebuffer()
    before = prime.frame_counter
    show_pad(prime)
    prime.framebuffer()
    assert prime.frame_counter > before


# ---------------------------------------------------------------- system prompts


def test_modal_waits_for_unlock_and_returns_the_button():
    prime = make()
    answers = []
    prime.ui.show_modal("Allow Access?", "Bitcoin Wallet wants to access App-scoped seed",
                        ["Always Allow", "Not Now", "Never Allow"], answers.append)
    assert prime.ui.modal is None and isinstance(prime.ui.front(), LockScreen)  # never over the lock screen
    enter_pin(prime, "123456")
    modal = prime.ui.modal
    assert isinstance(modal, Modal) and modal.title == "Allow Access?"
    prime.touch(240, 800 - MODAL_HEIGHT + 10)  # inside the popup, off the buttons: ignored
    assert answers == [] and prime.ui.modal is modal
    x0, y0, x1, y1 = modal.button_box(1)
    prime.touch(240, (y0 + y1) // 2)
    assert answers == ["Not Now"] and prime.ui.modal is None


def two_prompts():
    """An unlocked unit with prompts "First" (up) and "Second" (queued), and the list their answers go to."""
    prime = make()
    enter_pin(prime, "123456")
    answers = []
    prime.ui.show_modal("First", "body", ["OK"], answers.append)
    prime.ui.show_modal("Second", "body", ["OK"], answers.append)
    return prime, answers


def test_a_touch_above_the_popup_cancels_it_and_the_next_prompt_shows():
    """modal.rs modal_process_touch: a press outside the popup collapses the modal, unanswered."""
    prime, answers = two_prompts()
    prime.touch(240, 800 - MODAL_HEIGHT - 10)
    assert answers == [None] and prime.ui.modal.title == "Second"


@pytest.mark.parametrize("seed", [0, 1])  # light and dark theme
def test_modal_is_composited_as_gui_server_does(seed):
    """layers.rs: the app's surface, a black overlay at alpha 255 - 24, the 600-px popup, the strip on top."""
    prime = make(seed=seed)
    enter_pin(prime, "123456")
    before = prime.framebuffer().convert("L")
    prime.ui.show_modal("Allow Access?", "Bitcoin Wallet wants to access App-scoped seed",
                        ["Always Allow", "Not Now", "Never Allow"], lambda answer: None)
    after = prime.framebuffer().convert("L")
    top = 800 - MODAL_HEIGHT
    behind = (0, STATUS_BAND[3] + 1, 480, top - 30)
    assert max(after.crop(behind).getextrema()) <= 0.1 * max(before.crop(behind).getextrema()) + 2
    strip = (0, 0, 480, STATUS_BAND[3] + 1)
    assert after.crop(strip).tobytes() == before.crop(strip).tobytes()  # drawn over the overlay, undimmed
    assert after.crop((0, top + 30, 480, 800)).tobytes() != before.crop((0, top + 30, 480, 800)).tobytes()


def test_app_surface_over_modal_defect_hides_the_prompt_that_still_takes_the_touch():
    prime = Prime(index=1, seed=1, build=Build(flavour="development", defects=("app-surface-over-modal",)),
                  boot_seconds=0)
    enter_pin(prime, "123456")
    before = prime.framebuffer().tobytes()
    answers = []
    modal = prime.ui.show_modal("Allow Access?", "body", ["Always Allow", "Not Now"], answers.append)
    assert prime.framebuffer().tobytes() == before  # nothing of the prompt shows
    x0, y0, x1, y1 = modal.button_box(0)
    prime.touch(240, (y0 + y1) // 2)
    assert answers == ["Always Allow"]


def test_modal_hidden_by_lock_and_dropped_by_home_or_power_loss():
    prime, answers = two_prompts()
    prime.press_power(long=False)
    assert prime.ui.modal is None and answers == []  # requeued, not answered
    prime.press_power(long=False)
    enter_pin(prime, "123456")
    assert prime.ui.modal.title == "First"
    prime.touch(*HOME)
    assert answers == [None] and prime.ui.modal.title == "Second"
    prime.power_cut()
    assert answers == [None, None]


def test_dismiss_a_queued_modal():
    prime = make()
    answers = []
    modal = prime.ui.show_modal("Queued", "body", ["OK"], answers.append)
    prime.ui.dismiss(modal)
    enter_pin(prime, "123456")
    assert answers == [None] and prime.ui.modal is None
