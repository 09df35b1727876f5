"""The trusted-display suite's "no prompt is up" (suites/security/security_helpers.py) rests on a reading that shows
it: the screen read, and neither the prompt's title nor its buttons on it. Its buttons read without its title
(the title under glare or a stylus) is no evidence either way: broken, never "no prompt"."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "suites" / "security"))
from security_helpers import PromptNotSeen, assert_no_prompt, wait_prompt_gone  # noqa: E402


class Shown:
    """A screen reader that reads ``texts`` as its lines."""

    def __init__(self, *texts: str):
        self.texts = texts

    def read(self, regions=None):
        return SimpleNamespace(lines=[SimpleNamespace(text=t) for t in self.texts])

    def text(self, region=None) -> str:
        return " ".join(self.texts)


PROMPT = ("Allow Access?", "Spoof wants to access App-scoped seed", "Always Allow", "Not Now", "Never Allow")


def test_no_prompt_is_passed_only_on_a_screen_read_without_it():
    assert_no_prompt(Shown("Enter PIN", *"1234567890"))
    with pytest.raises(AssertionError, match="prompt is on screen"):
        assert_no_prompt(Shown(*PROMPT))
    for unread in [Shown(), Shown(*PROMPT[1:])]:  # nothing read; the prompt with its title unread
        with pytest.raises(PromptNotSeen):
            assert_no_prompt(unread)


def test_a_prompt_whose_title_is_unread_has_not_left():
    with pytest.raises(PromptNotSeen, match="read but not its title"):
        wait_prompt_gone(Shown(*PROMPT[2:]), timeout=0)
    wait_prompt_gone(Shown("Launcher", "Settings"), timeout=0)
