"""Secure element gating (keyos.md §2.2, §2.3): app seeds only after the user allows them, one per app;
the master seed only for Foundation apps; 10 PIN attempts then the seed is wiped; the security
words on the lock screen."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections import Counter

import pytest
from embit.wordlists.bip39 import WORDLIST

from hil import probe as P
from hil.errors import InfrastructureError
from hil.link.state import (PIN_CHECK_SECONDS, PinRejected, is_locked, screen_is_dark, show_lock_screen, wait_ready,
                            wait_unlocked)
from hil.lab.pin_guard import screenshot_bgr
from hil.machine import scaled
from hil.link.transport import LinkError
from hil.stimuli.boot_menu import power_cycle
from hil.stimuli.touch import DebugTouch, enter_pin
from hil.vision.display import read_image
from hil.vision.pin_screen import NotAPinScreen, PinScreen, find_pin_screen, wait_pin_screen, wait_swipe_hint
from security_helpers import (PromptNotSeen, answer_prompt, manifest_for, result_without_prompt,
                              waited)

pytestmark = [pytest.mark.security, pytest.mark.secure_element]

BIP39 = set(WORDLIST)
PIN_PREFIX = 4  # the lock screen shows the security words once this many digits are typed
# os/security's log of the lockout (keyos.md §2.2: "On 0 attempts left: lockout erasing seed + reboot")
# or, after the reboot, its report of the erased seed
MAX_LOGIN_ATTEMPTS = 10  # api/security/src/lib.rs (keyos.md §2.2)
LOCKED_WATCH_S = 3.0  # how long a locked unit is watched for a seed it must not serve (a defect answers at once)
WIPE_LOG = re.compile(r"security.*(erasing the seed|seed erased)", re.IGNORECASE)


def _seed_manifest(app_id, templates):
    return manifest_for(app_id, "Seed Probe", {"os/security": ["GetAppSeed"]}, templates)


def test_app_seed_needs_the_users_grant_and_is_per_app(probe, probe_id, templates, screen, deny_lines):
    a, b = probe_id("a"), probe_id("b")
    steps = [P.send("os/security", "GetAppSeed", wait=False), P.send("os/security", "GetAppSeed", wait=True, timeout_s=60)]
    run = probe.run(_seed_manifest(a, templates), steps)
    first = run.step(0)
    assert first["result"] == "AccessDenied", f"GetAppSeed answered before the user allowed it: {first}"
    if deny_lines:
        assert run.deny_for(first["id"]), "the refused GetAppSeed has no kernel deny line"
    answer_prompt(screen, "Always Allow", body="Seed Probe wants to access App-scoped seed", run=run, step=1)
    seed_a = run.step(1, timeout=60)
    assert seed_a["result"] == "Ok" and seed_a["len"] == 32, seed_a
    probe.close(run)
    again = probe.launch(a)
    assert again.step(0)["sha256"] == seed_a["sha256"], "the same app got a different seed on its next run"
    probe.close(again)
    other = probe.run(_seed_manifest(b, templates), steps)
    assert other.step(0)["result"] == "AccessDenied"
    answer_prompt(screen, "Always Allow", run=other, step=1)
    seed_b = other.step(1, timeout=60)
    assert seed_b["result"] == "Ok" and seed_b["len"] == 32
    assert seed_b["sha256"] != seed_a["sha256"], "two apps received the same app seed"


def test_an_app_seed_follows_from_the_provisioned_seed(probe, probe_id, templates, screen, seed_entropy):
    """An app's seed is HMAC-SHA256 keyed by its 16-byte app id over the master seed's BIP39 entropy (os/security/
    src/atsama5d2.rs ``get_app_seed``: ``crypto.hmac256(sender_app_id, master_seed)``; api/crypto/src/lib.rs
    ``hmac256(key, data)``), and a 12-word seed is 16 bytes, a 24-word one 32 (keyos.md §2.2, ``Seed``).  The lab
    provisioned the unit with its test mnemonic (--mnemonic), so the seed an app gets is known apart from the
    unit: a seed kept at another length, another seed, or another derivation serves another app seed."""
    app_id = probe_id()
    run = probe.run(_seed_manifest(app_id, templates), [P.send("os/security", "GetAppSeed", wait=True, timeout_s=60)])
    answer_prompt(screen, "Always Allow", run=run, step=0)
    (seed,) = run.finish(timeout=90)
    assert seed["result"] == "Ok" and seed["len"] == 32, f"the granted GetAppSeed failed: {seed}"
    expected = hmac.new(bytes.fromhex(app_id.removeprefix("0x")), seed_entropy, hashlib.sha256).digest()
    assert seed["sha256"] == hashlib.sha256(expected).hexdigest(), (
        "the app seed is not HMAC-SHA256(app id, entropy of the provisioned mnemonic): the unit holds another seed, "
        "or keeps it at another length, or derives app seeds otherwise")


def test_master_seed_is_foundation_only(probe, probe_id, templates, screen):
    m = manifest_for(probe_id(), "Master", {"os/security": ["GetSeed", "GetSeedFingerprint"]}, templates)
    run = probe.run(m, [P.send("os/security", "GetSeed", wait=False), P.send("os/security", "GetSeed", wait=True, timeout_s=20),
                        P.send("os/security", "GetSeedFingerprint", wait=False)])
    records = [result_without_prompt(screen, run, i) for i in range(3)]
    assert [r["result"] for r in records] == ["AccessDenied"] * 3, records
    assert all("sha256" not in r for r in records)


def test_granted_app_seed_waits_for_the_login(probe, probe_id, templates, screen, unlocked_prime, touch, look, pin):
    """Requests made while logged out are queued until login (``os/security/src/atsama5d2.rs``, keyos.md
    §2.2): an app holding the grant gets no seed while the unit is locked, and the same seed after."""
    app_id = probe_id()
    granted = probe.run(_seed_manifest(app_id, templates), [P.send("os/security", "GetAppSeed", wait=True, timeout_s=60)])
    answer_prompt(screen, "Always Allow", run=granted, step=0)
    (seed,) = granted.finish(timeout=90)
    assert seed["result"] == "Ok" and seed["len"] == 32, f"the granted GetAppSeed failed (control): {seed}"
    probe.close(granted)
    probe.install(_seed_manifest(app_id, templates),
                  [P.await_locked(timeout_s=60), P.send("os/security", "GetAppSeed", wait=True, timeout_s=120)])
    run = probe.launch(app_id)
    try:
        show_lock_screen(unlocked_prime, touch)
        assert run.step(0, timeout=60)["result"] == "Ok", "the probe never saw the unit lock"
        # the seed is sent the moment the lock is seen; a build that serves it answers within the watch
        deadline = time.monotonic() + scaled(LOCKED_WATCH_S)
        while time.monotonic() < deadline and 1 not in run.records:
            run.pump(0.1)
        assert 1 not in run.records, f"GetAppSeed was answered while the unit was locked: {run.records[1]}"
    finally:
        pad = wait_pin_screen(look, touch)  # the keys where the lock screen shows them
        run.pump(0.05)  # and what the probe logged while they were found: the unit is still locked
        served_locked = run.records.get(1)
        enter_pin(touch, pad, pin)
    assert served_locked is None, f"GetAppSeed was answered while the unit was locked: {served_locked}"
    assert wait_unlocked(unlocked_prime), "the test PIN typed on the lock screen did not unlock"
    after = run.step(1, timeout=60)
    assert after["result"] == "Ok" and after["sha256"] == seed["sha256"], f"after the login: {after}"


def _failed_after_a_wrong_pin(look, timeout: float = PIN_CHECK_SECONDS) -> int:
    """The failed-attempt count the PIN screen shows once the wrong PIN is judged (KeyOS's
    ``IncorrectPinWarning``, read by `hil.vision.pin_screen`); 0 if the screen, still readable as the
    PIN screen, shows none by the deadline (KeyOS judges a login within its random delay)."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        failed = wait_pin_screen(look).failed  # the pad stays after a wrong PIN: nothing to swipe
        if failed or time.monotonic() > deadline:
            return failed
        time.sleep(0.2)


def test_one_wrong_pin_leaves_exactly_one_attempt_less(unlocked_prime, touch, look, pin):
    """MAX_LOGIN_ATTEMPTS = 10 (``api/security/src/lib.rs``): one wrong PIN shows exactly one failed attempt,
    and a correct login restores the count, so the next wrong one shows one again.  Never more than one
    wrong PIN between two correct logins, and none on a unit that already shows a failed attempt: no unit
    comes near its wipe."""
    wrong = "".join(str((int(c) + 5) % 10) for c in pin)
    seen = []
    for round_ in range(2):
        show_lock_screen(unlocked_prime, touch)
        pad = wait_pin_screen(look, touch)
        restored_by = time.monotonic() + scaled(PIN_CHECK_SECONDS)
        while round_ and pad.failed and time.monotonic() < restored_by:
            pad = wait_pin_screen(look, touch)  # a camera frame from before the login may still show the count
        if pad.failed and round_ == 0:
            raise PinRejected(f"{unlocked_prime.device} shows {pad.failed} failed attempt(s) before the check typed; "
                              "not typing a wrong PIN on it")
        assert pad.failed == 0, f"a correct login did not restore the attempt count: {pad.failed} failed shown"
        wiped = False
        try:
            enter_pin(touch, pad, wrong)
            seen.append(_failed_after_a_wrong_pin(look))
        except InfrastructureError:
            wiped = _reports_a_wipe(unlocked_prime)  # the PIN screen went away: the unit's own word says why
            if not wiped:
                raise
        finally:
            if not wiped:
                _unlock_after_a_wrong_pin(unlocked_prime, touch, look, pin)
        assert not wiped, "one wrong PIN erased the seed (the unit logged the wipe)"
    assert seen == [1, 1], f"failed attempts shown after one wrong PIN, twice with a correct login between: {seen}"


def test_a_power_cycle_ends_the_login_and_keeps_the_failed_attempt(unlocked_prime, station_relay, touch, look, pin):
    """Neither the login nor the count of failed attempts belongs to one boot's memory the wrong way round: the login is
    os/security's ``pin_hash``, which a boot starts without, and the count is the secure element's
    (``os/security/src/atsama5d2.rs`` ``GetAttemptsRemaining`` reads the SE's last-success record), so a reboot
    between guesses buys none back. An unlocked unit power-cycled by the button relay comes back locked; one wrong
    PIN, then a second power cycle, and it still shows that one failed attempt; the right PIN then unlocks (and
    restores the count).  One wrong PIN, on a unit showing none."""
    prime = unlocked_prime
    locked = _power_cycled(prime, station_relay)
    if not locked:
        show_lock_screen(prime, touch)  # the check's own state back: the next one starts from a lock screen
    assert locked, "an unlocked unit came back from a power cycle unlocked: the login outlived the boot"
    wrong = "".join(str((int(c) + 5) % 10) for c in pin)
    pad = wait_pin_screen(look, touch)
    if pad.failed:
        raise PinRejected(f"{prime.device} shows {pad.failed} failed attempt(s) before the check typed; "
                          "not typing a wrong PIN on it")
    enter_pin(touch, pad, wrong)
    after = None
    try:
        before = _failed_after_a_wrong_pin(look)
        if _power_cycled(prime, station_relay):
            wait_swipe_hint(look)  # a boot's own lock screen: a camera frame from before it showed the count too
            after = wait_pin_screen(look, touch).failed
    finally:
        if is_locked(prime) is not False:
            _unlock_after_a_wrong_pin(prime, touch, look, pin)
    assert (before, after) == (1, 1), \
        f"failed attempts shown after one wrong PIN, then after a power cycle: {before}, {after} (expected 1, 1)"


def _power_cycled(prime, relay) -> bool:
    """Off by the button relay's long hold and on again, the link back and the GUI up; whether the unit is locked."""
    power_cycle(relay)
    _reconnect(prime)
    return wait_ready(prime, 60)


def _unlock_after_a_wrong_pin(prime, touch, look, pin: str) -> None:
    """The test PIN typed on the PIN screen after a check's wrong one; a unit it does not unlock is the lab's
    to look at (`PinRejected` quarantines the station, and the PIN guard types on no unit showing failures)."""
    enter_pin(touch, wait_pin_screen(look, touch), pin)
    if not wait_unlocked(prime):
        raise PinRejected(f"{prime.device}: the test PIN did not unlock after one wrong PIN")


def test_only_the_whole_pin_unlocks(unlocked_prime, touch, look, pin):
    """The PIN is judged whole, not by the digits it shares with what was typed: os/security keys the seed with
    sha256(PIN ‖ "SeedEncryption") (keyos.md §2.2), so the PIN with one digit more is a wrong PIN. It does not
    unlock and counts one failed attempt; the PIN itself then unlocks.  One wrong PIN, on a unit showing none.
    assumed: the PIN pad takes a digit beyond the test PIN's length (KeyOS's PIN length limit is not in
    keyos.md); a pad that dropped it would unlock, and this check would wrongly fail."""
    prime = unlocked_prime
    show_lock_screen(prime, touch)
    pad = wait_pin_screen(look, touch)
    if pad.failed:
        raise PinRejected(f"{prime.device} shows {pad.failed} failed attempt(s) before the check typed; "
                          "not typing a wrong PIN on it")
    unlocked = False
    try:
        enter_pin(touch, pad, pin + pin[-1])
        try:
            failed = _failed_after_a_wrong_pin(look)
        except InfrastructureError:  # no PIN screen to read: the unit unlocked, or the screen is lost (broken)
            unlocked = is_locked(prime) is False
            if not unlocked:
                raise
    finally:
        if not unlocked:
            _unlock_after_a_wrong_pin(prime, touch, look, pin)
    assert not unlocked, "the PIN with one digit more unlocked the unit"
    assert failed == 1, f"the PIN with one digit more showed {failed} failed attempts, not 1"


ERASE_WARNING_FROM = 6  # remaining attempts at and below which KeyOS's warning names them (app.slint)


def _attempts_shown(look) -> tuple[PinScreen, int | None]:
    """The PIN screen and the remaining attempts its erase warning states (None: no warning shown), read
    from one frame (`hil.vision.pin_screen`: a count not read surely is no count)."""
    deadline = time.monotonic() + scaled(10.0)
    while True:  # no pause between readings: a camera's look() waits for its next frame
        image = look()
        try:
            pad = find_pin_screen(read_image(image).lines, image)
        except NotAPinScreen:
            if time.monotonic() > deadline:
                raise
            continue  # a frame from before the wake or the judgement
        return pad, pad.left


def _attempts_shown_as(look, expected: tuple[int, int | None]) -> tuple[PinScreen, int | None]:
    """The PIN screen once it shows ``expected`` (failed count, attempts left), or at the deadline (KeyOS
    judges a login within its random delay) what it shows then: a camera's frame may still show the entry
    being typed (security words, no warning) or the screen before it."""
    deadline = time.monotonic() + scaled(PIN_CHECK_SECONDS)
    while True:
        pad, left = _attempts_shown(look)
        if (pad.failed, left) == expected or time.monotonic() > deadline:
            return pad, left


def _settled_pin_screen(look) -> PinScreen:
    """The PIN screen once two readings in a row show the same count and warning: the last wrong PIN judged,
    not a frame from during KeyOS's random delay, so the right PIN typed next is taken whole. Broken if it
    never settles (nothing is typed then; the unit shows its failed attempts, and the lab's PIN guard types
    on no unit that does)."""
    deadline = time.monotonic() + scaled(PIN_CHECK_SECONDS)
    pad, left = _attempts_shown(look)
    while True:
        again, again_left = _attempts_shown(look)
        if (again.failed, again_left) == (pad.failed, left):
            return again
        if time.monotonic() > deadline:
            raise InfrastructureError(f"the PIN screen did not settle within {PIN_CHECK_SECONDS} s: read "
                                      f"{(pad.failed, left)} then {(again.failed, again_left)}; the right PIN was not typed")
        pad, left = again, again_left


def _expected_after(failed: int) -> tuple[int, int | None]:
    """What KeyOS shows after ``failed`` wrong PINs: that count, and the attempts left once it warns."""
    left = MAX_LOGIN_ATTEMPTS - failed
    return failed, left if left <= ERASE_WARNING_FROM else None


def test_the_last_attempt_is_the_tenth_and_still_takes_the_right_pin(unlocked_prime, touch, look, pin, station):
    """MAX_LOGIN_ATTEMPTS = 10 (``api/security/src/lib.rs``; the lockout on 0 left, ``os/security/src/
    atsama5d2.rs``, keyos.md §2.2), at its boundary and without a wipe: nine wrong PINs, each shown as one
    more failed attempt, the erase warning stating exactly 10 - n left (so "1 more attempt" after the
    ninth), then the right PIN unlocks, and the count starts over.  A wrong PIN is typed only while what
    KeyOS shows is what a 10-attempt limit shows after the ones typed so far, and never on a unit that
    shows a failed attempt before the check: a unit whose limit is lower stops the check with attempts left.
    It leaves a unit one mistyped PIN from erasing its seed, so it runs only where the PIN is typed over the
    debug link (no stylus to miss a key) or where the profile allows a wipe; the right PIN is typed only on a
    settled PIN screen."""
    if not isinstance(touch, DebugTouch) and not station.profile.allows_wipe:
        pytest.skip(f"nine wrong PINs typed by the stylus could leave {unlocked_prime.device} one slip from erasing "
                    f"its seed; profile {station.profile.name} does not allow wiping (allows_wipe)")
    prime = unlocked_prime
    wrong = "".join(str((int(c) + 5) % 10) for c in pin)
    show_lock_screen(prime, touch)
    wait_pin_screen(look, touch)  # past the swipe hint
    pad, left = _attempts_shown(look)
    if pad.failed or left is not None:
        raise PinRejected(f"{prime.device} shows {pad.failed} failed attempt(s) (attempts left: {left}) before the "
                          "check typed; not typing a wrong PIN on it")
    seen: list[tuple[int, int | None]] = []
    wiped = False
    try:
        for typed in range(1, MAX_LOGIN_ATTEMPTS):
            if seen and seen[-1] != _expected_after(typed - 1):
                break  # the unit does not count as a 10-attempt limit does: no further wrong PIN on it
            enter_pin(touch, pad, wrong)
            pad, left = _attempts_shown_as(look, _expected_after(typed))
            seen.append((pad.failed, left))
    except InfrastructureError:
        wiped = _reports_a_wipe(prime)  # the PIN screen went away: the unit's own word says why
        if not wiped:
            raise
    finally:
        if not wiped:
            enter_pin(touch, _settled_pin_screen(look), pin)
    assert not wiped, f"fewer than 10 wrong PINs erased the seed (the unit logged the wipe); shown before: {seen}"
    unlocked = wait_unlocked(prime)
    expected = [_expected_after(n) for n in range(1, MAX_LOGIN_ATTEMPTS)]
    assert seen == expected, f"(failed, attempts left) shown after each wrong PIN: {seen}, not {expected}"
    assert unlocked, "the right PIN with one attempt left did not unlock"
    show_lock_screen(prime, touch)
    wait_pin_screen(look, touch)  # past the swipe hint
    pad, left = _attempts_shown_as(look, (0, None))
    try:
        assert (pad.failed, left) == (0, None), f"a correct login did not restore the attempts: {pad.failed} failed shown"
    finally:
        enter_pin(touch, pad, pin)
        if not wait_unlocked(prime):
            raise PinRejected(f"{prime.device}: the test PIN did not unlock after the attempt-limit check")


def _reports_a_wipe(prime) -> bool:
    """Whether the unit logs that its seed was erased (the lockout, or its report after the reboot); the
    link is taken again first if the reboot dropped it."""
    try:
        lines = list(prime.logs(1.0))
    except LinkError:
        _reconnect(prime)
        wait_ready(prime, 60)
        lines = list(prime.logs(1.0))
    return any(WIPE_LOG.search(line) for line in lines)


# --------------------------------------------------------------------------- the lock screen


def _lock_screen(prime):
    """A fresh lock screen (lock, then wake), swiped up to its PIN pad over the debug link."""
    prime.press_power()
    if screen_is_dark(prime):
        prime.press_power()
    assert is_locked(prime)
    _pin_pad_over_link(prime)


def _pin_pad_over_link(prime) -> PinScreen:
    """The PIN pad, past the swipe hint, read and swiped over the debug link (a development build's)."""
    return wait_pin_screen(lambda: screenshot_bgr(prime), DebugTouch(prime, prime.home_button))


def _words(screen) -> Counter[str]:
    """The BIP39 words on the screen, counted: a security word may be a word the screen already shows
    (seed 8's "unlock" beside the Unlock key), so only a count tells it appeared."""
    return Counter(w.lower() for w in screen.text().replace(",", " ").split() if w.lower() in BIP39)


def _settled_words(screen, before: Counter[str], changed=lambda words: True, timeout: float = 15.0) -> Counter[str]:
    """The BIP39 words that appeared since ``before``, once the display shows them settled: ``changed``
    (the change expected, past camera lag) or, at the timeout, the same two or more words on the last
    reads.  Broken if the words never settle (an unreadable screen proves nothing either way)."""
    deadline = time.monotonic() + scaled(timeout)
    last: Counter[str] | None = None
    while True:
        words = _words(screen) - before
        settled = words.total() >= 2 and words == last
        if settled and changed(words):
            return words
        if time.monotonic() > deadline:
            if settled:
                return words
            raise PromptNotSeen(f"no settled security words within {waited(timeout)}; read {screen.text()!r}")
        last = words
        time.sleep(0.2)


def test_security_words_show_on_the_lock_screen(unlocked_prime, touch, look, screen, pin):
    """The words follow the PIN prefix: one prefix, then another, then the first again, each typed on a fresh
    entry. KeyOS latches the words at an entry's 4th digit until ``reset_input_state`` (a login result, a cancel,
    a lock: ``os/gui-app-lock-screen/src/main.rs``, ``ui/app.slint`` ``locked-prefix``), so each prefix is typed
    after a lock, never by editing the entry. Needs Settings' security words on (KeyOS defaults them off,
    `hil.provisioning.SHOW_SECURITY_WORDS`): a unit that shows none is broken, not passed."""
    prime = unlocked_prime

    def words_of(prefix: str, changed=lambda words: True) -> tuple[Counter[str], PinScreen]:
        """A fresh entry (lock, swipe up to the pad), ``prefix`` typed on it, and the words it shows."""
        show_lock_screen(prime, touch)
        assert is_locked(prime)
        wait_swipe_hint(look)  # the fresh entry's own screen, not a frame of the last entry's pad
        pad = wait_pin_screen(look, touch)  # the keys where the lock screen shows them
        before = _words(screen)
        for k in prefix:  # by the debug link or (production) the robot
            touch.tap(*pad.keys[k])
        try:
            return _settled_words(screen, before, changed), pad
        except PromptNotSeen as e:
            raise PromptNotSeen(f"{e}; is Settings' security words on (KeyOS's default is off)?") from None

    shown, _ = words_of(pin[:PIN_PREFIX])
    other = "".join(str((int(c) + 1) % 10) for c in pin[:PIN_PREFIX])
    different, _ = words_of(other, lambda w: w != shown)
    assert shown.total() >= 2 and different.total() >= 2, (shown, different)
    assert different != shown, "the security words do not depend on the PIN"
    again, pad = words_of(pin[:PIN_PREFIX], lambda w: w == shown)
    assert again.total() >= 2 and again == shown, f"the same PIN prefix gave different security words: {shown} then {again}"
    enter_pin(touch, pad, pin[PIN_PREFIX:])  # the rest of this entry
    assert wait_unlocked(prime), "the test PIN typed on the lock screen did not unlock"


def _wrong_pin_refused(prime, look, failed: int) -> None:
    """The ``failed``-th wrong PIN in a row left the unit locked: read once the PIN screen shows it judged (that
    many failed attempts: the event), or, where it never shows that, once KeyOS's login window is waited out.
    Waiting out all of them (19 here, each scaled with the load) outran the run's hang limit on a loaded host."""
    pad, _ = _attempts_shown_as(look, _expected_after(failed))
    if pad.failed == failed:
        assert is_locked(prime), "a wrong PIN unlocked the device"
    else:
        assert not wait_unlocked(prime), "a wrong PIN unlocked the device"


@pytest.mark.destructive
@pytest.mark.development_only
def test_ten_wrong_pins_wipe_the_seed(unlocked_prime, pin, look):
    prime = unlocked_prime
    wrong = "".join(str((int(c) + 5) % 10) for c in pin)
    _lock_screen(prime)
    for failed in range(1, 10):
        prime.type_text(wrong + "\n")
        _wrong_pin_refused(prime, look, failed)
    prime.type_text(pin + "\n")  # nine wrong, then right: unlocks, and the count starts over
    assert wait_unlocked(prime), "the right PIN after 9 wrong ones did not unlock"
    _lock_screen(prime)
    log: list[str] = []
    try:
        for failed in range(1, 11):
            prime.type_text(wrong + "\n")
            if failed < 10:
                _wrong_pin_refused(prime, look, failed)
            else:  # the last one wipes and reboots: no PIN screen to read, so its window is waited out
                assert not wait_unlocked(prime), "a wrong PIN unlocked the device"
            log += prime.logs(0.1)
    except LinkError:
        _reconnect(prime)  # the lockout reboots the unit: its USB link goes and comes back
    wait_ready(prime, 60)
    log += prime.logs(1.0)
    assert any(WIPE_LOG.search(line) for line in log), \
        f"no log record of the seed being erased after 10 wrong PINs; the device logged: {log[-10:]}"
    try:
        _pin_pad_over_link(prime)  # the rebooted unit starts on the swipe hint
    except NotAPinScreen:
        pass  # a wiped unit need not show the PIN pad at all; the PIN is typed regardless
    prime.type_text(pin + "\n")
    assert not wait_unlocked(prime), "the seed survived 10 wrong PINs: the right PIN still unlocks"


def _reconnect(prime, timeout: float = 60.0) -> None:
    """An explicit, expected reconnect after the device rebooted itself (never done silently)."""
    prime.close()
    deadline = time.monotonic() + scaled(timeout)
    while True:
        try:
            prime.open()
            return
        except LinkError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
