"""Suite checks whose waits once ran out on the good build under load, on scripted units (no device, no wait:
a fake clock moves on with every read and sleep).  The lock screen's security-words check
(suites/security/test_secure_element.py): a unit that takes the typed keys late (a loaded host, a robot's
queue, a lagging camera) is waited for and passes; one that shows no words is broken; only words that do
not follow the PIN fail.  The Developer Mode toggle's waits (suites/security/test_lockdown.py) scale with the
host's load."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "suites" / "security"))
with warnings.catch_warnings():  # the suite's marks are registered by the suites' conftest, not here
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    import test_lockdown as lockdown  # noqa: E402
    import test_secure_element as suite  # noqa: E402
from security_helpers import PromptNotSeen  # noqa: E402

PIN = "123456"
KEYS = {str(d): (d, 0) for d in range(10)} | {"\b": (100, 0), "\n": (200, 0)}


class Clock:
    """The suite's ``time``: every read of the screen and every sleep moves it on, so no test waits."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


WORDS = "ability able about above absent absorb abstract absurd abuse access".split()


class LockScreen:
    """A lock screen that takes one typed key every ``reads_per_key`` reads of it (one second each) and
    shows two words for each 4-digit prefix, none below 4 digits: ``words(prefix, entries)``, where
    ``entries`` counts the prefixes typed so far; a lock starts a fresh entry."""

    def __init__(self, clock: Clock, reads_per_key: int, words=lambda prefix, entries: f"abandon {WORDS[int(prefix) % 10]}"):
        self.clock, self.reads_per_key, self.words = clock, reads_per_key, words
        self.queue: list[str] = []
        self.entered = ""
        self.reads = self.entries = 0

    def lock(self) -> None:
        self.queue, self.entered = [], ""

    def tap(self, x: int, y: int) -> None:
        self.queue.append(next(k for k, at in KEYS.items() if at == (x, y)))

    def text(self) -> str:
        self.clock.now += 1.0
        self.reads += 1
        if self.queue and self.reads % self.reads_per_key == 0:
            key = self.queue.pop(0)
            if key == "\b":
                self.entered = self.entered[:-1]
            elif key != "\n":
                self.entered += key
                self.entries += len(self.entered) == 4
        return "Enter PIN " + (self.words(self.entered[:4], self.entries) if len(self.entered) >= 4 else "Security words")


@pytest.fixture
def unit(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(suite, "time", clock)
    monkeypatch.setattr(suite, "scaled", lambda seconds: seconds)  # an idle host: the lag alone is tested
    for name, fake in {"is_locked": lambda prime: True, "wait_unlocked": lambda prime: True,
                       "enter_pin": lambda touch, pad, digits: [touch.tap(*pad.keys[d]) for d in digits],
                       "wait_swipe_hint": lambda look: None,
                       "wait_pin_screen": lambda look, touch: SimpleNamespace(keys=KEYS, delete=KEYS["\b"],
                                                                              enter=KEYS["\n"])}.items():
        monkeypatch.setattr(suite, name, fake)
    return SimpleNamespace(clock=clock, monkeypatch=monkeypatch)


def run_check(unit, screen: LockScreen) -> None:
    unit.monkeypatch.setattr(suite, "show_lock_screen", lambda prime, touch: screen.lock())
    suite.test_security_words_show_on_the_lock_screen(None, screen, None, screen, PIN)


def test_a_unit_taking_keys_late_on_a_loaded_host_is_waited_for(unit, monkeypatch):
    """Four reads per key (4.8 s with the pause between reads) on a host loaded to twice the idle time: each
    prefix's words settle 19 s after its entry began, past the old unscaled 15 s settle window."""
    monkeypatch.setattr(suite, "scaled", lambda seconds: 2 * seconds)
    run_check(unit, LockScreen(unit.clock, reads_per_key=4))


def test_a_unit_showing_no_words_is_broken_not_failed(unit):
    """No words at all (Settings' security words off, KeyOS's default): no verdict on the words."""
    with pytest.raises(PromptNotSeen, match="security words on"):
        run_check(unit, LockScreen(unit.clock, reads_per_key=1, words=lambda prefix, entries: "Security words"))


def test_words_that_ignore_the_pin_fail(unit):
    with pytest.raises(AssertionError, match="do not depend on the PIN"):
        run_check(unit, LockScreen(unit.clock, reads_per_key=1, words=lambda prefix, entries: "abandon ability"))


def test_words_that_change_for_the_same_prefix_fail(unit):
    with pytest.raises(AssertionError, match="same PIN prefix gave different"):
        run_check(unit, LockScreen(unit.clock, reads_per_key=1, words=lambda prefix, entries: f"abandon {WORDS[entries]}"))


class TogglingPrime:
    """GET_DEVELOPER_MODE answers off from ``at`` seconds on (each answer takes one second); the link closes
    then if ``drops``."""

    def __init__(self, clock: Clock, at: float, drops: bool = False):
        self.clock, self.at, self.drops = clock, at, drops

    def developer_mode(self) -> bool:
        self.clock.now += 1.0
        if self.clock.now >= self.at and self.drops:
            raise lockdown.LinkClosed("emulator", "the interface left")
        return self.clock.now < self.at

    def close(self) -> None:
        pass

    def open(self) -> None:  # a fresh open finds no interface once it has left
        if self.clock.now >= self.at and self.drops:
            raise lockdown.LinkError("emulator", "no debug interface")

    def version(self) -> str:
        return "1.0.0"


@pytest.fixture
def loaded(monkeypatch):
    """The lockdown suite on a host loaded to twice the idle time."""
    clock = Clock()
    monkeypatch.setattr(lockdown, "time", clock)
    monkeypatch.setattr(lockdown, "scaled", lambda seconds: 2 * seconds)
    return clock


def test_the_toggle_taking_effect_late_on_a_loaded_host_is_waited_for(loaded):
    """8 s on a host at twice the idle time is within the 5 idle seconds the toggle is given (the old unscaled
    wait failed the good build: "still answers 5 s after Developer Mode was turned off")."""
    assert lockdown.developer_mode_within(TogglingPrime(loaded, at=8.0), False)
    loaded.now = 0.0
    assert lockdown.link_gone_within(TogglingPrime(loaded, at=8.0, drops=True))


def test_the_toggle_never_taking_effect_is_still_seen(loaded):
    assert not lockdown.developer_mode_within(TogglingPrime(loaded, at=1e9), False)
    assert not lockdown.link_gone_within(TogglingPrime(loaded, at=1e9, drops=True))
